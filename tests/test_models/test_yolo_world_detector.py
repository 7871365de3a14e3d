"""YOLOWorldDetector with small stand-ins for the backbone, neck and head that
follow the YOLO-World interfaces, and the tiny CLIP text model: loss with the
batch texts, predict with any vocabulary, tensor mode, reparameterize."""

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmengine.structures import InstanceData
from torch import nn

from ai4rs.registry import MODELS
from ai4rs.structures import DetDataSample
from tests.conftest import REPO_ROOT

pytest.importorskip('transformers')

STRIDES = (8, 16, 32)
EMBED = 512


@MODELS.register_module(name='_StandInMultiModalBackbone', force=True)
class StandInMultiModalBackbone(BaseModule):
    """MultiModalYOLOBackbone's interface: forward(image, texts) ->
    (img_feats, txt_feats); forward_image; forward_text; with_text_model."""

    def __init__(self, text_model: dict, with_text_model: bool = True) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            [
                nn.Conv2d(3 if i == 0 else 8, 8, 3, stride=2 if i == 0 else 2, padding=1)
                for i in range(5)
            ]
        )
        self.with_text_model = with_text_model
        self.text_model = MODELS.build(text_model) if with_text_model else None

    def forward_image(self, image):
        feats, x = [], image
        for i, conv in enumerate(self.convs):
            x = F.relu(conv(x))
            if i >= 2:
                feats.append(x)
        return tuple(feats)

    def forward_text(self, texts):
        return self.text_model(texts)

    def forward(self, image, texts):
        img_feats = self.forward_image(image)
        if texts is not None and self.with_text_model:
            return img_feats, self.text_model(texts)
        return img_feats, None


@MODELS.register_module(name='_StandInTextNeck', force=True)
class StandInTextNeck(BaseModule):
    """YOLOWorldPAFPN's interface: forward(img_feats, txt_feats) -> img_feats."""

    def __init__(self) -> None:
        super().__init__()
        self.guide = nn.Linear(EMBED, 8)

    def forward(self, img_feats, txt_feats):
        guide = self.guide(txt_feats).max(dim=1).values[..., None, None]  # (B, 8, 1, 1)
        return tuple(f * torch.sigmoid(guide) for f in img_feats)


@MODELS.register_module(name='_StandInWorldHead', force=True)
class StandInWorldHead(BaseModule):
    """YOLOWorldHead's interface: forward / loss / predict with (img_feats,
    txt_feats, txt_masks); contrastive logits against the text embeddings and
    distance boxes. It records ``num_classes`` as seen by each call."""

    def __init__(self, num_classes: int = 80, train_cfg=None, test_cfg=None) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.embed = nn.ModuleList(nn.Conv2d(8, EMBED, 1) for _ in STRIDES)
        self.reg = nn.ModuleList(nn.Conv2d(8, 4, 1) for _ in STRIDES)
        self.logit_scale = nn.Parameter(torch.tensor(2.0))
        self.test_cfg = test_cfg or {}
        self.seen_num_classes = []

    def forward(self, img_feats, txt_feats, txt_masks=None):
        cls, reg = [], []
        for feat, embed, regc in zip(img_feats, self.embed, self.reg):
            region = F.normalize(embed(feat), dim=1)
            logits = torch.einsum('bchw,bkc->bkhw', region, txt_feats) * self.logit_scale.exp()
            cls.append(logits)
            reg.append(F.softplus(regc(feat)))
        return cls, reg

    def loss(self, img_feats, txt_feats, txt_masks, batch_data_samples):
        assert txt_feats.shape[1] == self.num_classes
        self.seen_num_classes.append(self.num_classes)
        cls, reg = self.forward(img_feats, txt_feats, txt_masks)
        if isinstance(batch_data_samples, dict):
            gt = batch_data_samples['bboxes_labels']
        else:
            rows = []
            for i, sample in enumerate(batch_data_samples):
                inst = sample.gt_instances
                idx = torch.full((len(inst.labels), 1), float(i))
                rows.append(torch.cat([idx, inst.labels[:, None].float(), inst.bboxes], 1))
            gt = torch.cat(rows)
        loss_cls, loss_bbox = 0.0, 0.0
        for logits, dist, stride in zip(cls, reg, STRIDES):
            target = torch.zeros_like(logits)
            for b, label, x1, y1, x2, y2 in gt.tolist():
                cx, cy = int((x1 + x2) / 2 // stride), int((y1 + y2) / 2 // stride)
                target[int(b), int(label), cy, cx] = 1
                px, py = (cx + 0.5) * stride, (cy + 0.5) * stride
                want = torch.tensor([px - x1, py - y1, x2 - px, y2 - py]) / stride
                loss_bbox = loss_bbox + (dist[int(b), :, cy, cx] - want).abs().sum()
            loss_cls = loss_cls + F.binary_cross_entropy_with_logits(logits, target)
        return {'loss_cls': loss_cls, 'loss_bbox': loss_bbox / max(len(gt), 1)}

    def predict(self, img_feats, txt_feats, txt_masks, batch_data_samples, rescale=True):
        assert txt_feats.shape[1] == self.num_classes
        self.seen_num_classes.append(self.num_classes)
        cls, reg = self.forward(img_feats, txt_feats, txt_masks)
        results = []
        for b, sample in enumerate(batch_data_samples):
            boxes, scores = [], []
            for logits, dist, stride in zip(cls, reg, STRIDES):
                h, w = logits.shape[-2:]
                ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
                pts = torch.stack([(xs + 0.5) * stride, (ys + 0.5) * stride], -1).reshape(-1, 2)
                d = dist[b].permute(1, 2, 0).reshape(-1, 4) * stride
                boxes.append(torch.cat([pts - d[:, :2], pts + d[:, 2:]], 1))
                scores.append(logits[b].sigmoid().reshape(self.num_classes, -1).t())
            boxes, scores = torch.cat(boxes), torch.cat(scores)
            flat = scores.flatten()
            top = flat.topk(min(20, flat.numel())).indices
            inst = InstanceData(
                bboxes=boxes[top // self.num_classes],
                scores=flat[top],
                labels=top % self.num_classes,
            )
            if rescale:
                inst.bboxes = inst.bboxes / inst.bboxes.new_tensor(sample.scale_factor).repeat(2)
            results.append(inst)
        return results


def build_detector(clip_dir, **text_kwargs):
    text_model = dict(type='HuggingCLIPLanguageBackbone', model_name=clip_dir, **text_kwargs)
    return MODELS.build(
        dict(
            type='YOLOWorldDetector',
            mm_neck=True,
            num_train_classes=3,
            num_test_classes=3,
            data_preprocessor=dict(
                type='YOLOWDetDataPreprocessor',
                mean=[0.0, 0.0, 0.0],
                std=[255.0, 255.0, 255.0],
                bgr_to_rgb=True,
            ),
            backbone=dict(type='_StandInMultiModalBackbone', text_model=text_model),
            neck=dict(type='_StandInTextNeck'),
            bbox_head=dict(type='_StandInWorldHead', num_classes=80),
            train_cfg=dict(),
            test_cfg=dict(score_thr=0.0),
        )
    )


TRAIN_TEXTS = [['cat', 'dog', ''], ['dog', 'bird', 'cat']]


def list_batch(texts, with_gt=True):
    torch.manual_seed(0)
    samples = []
    for i, t in enumerate(texts):
        sample = DetDataSample(
            metainfo=dict(
                img_shape=(64, 64),
                ori_shape=(128, 128),
                scale_factor=(0.5, 0.5),
                batch_input_shape=(64, 64),
            )
        )
        if t is not None:
            sample.texts = list(t)
        if with_gt:
            sample.gt_instances = InstanceData(
                bboxes=torch.tensor([[8.0, 8.0, 40.0, 30.0]]) + i, labels=torch.tensor([i])
            )
        samples.append(sample)
    return torch.rand(len(texts), 3, 64, 64), samples


def collated_batch():
    imgs = (torch.rand(2, 3, 64, 64) * 255).to(torch.uint8)
    bboxes_labels = torch.tensor(
        [[0.0, 1.0, 8.0, 8.0, 40.0, 30.0], [1.0, 2.0, 10.0, 20.0, 50.0, 60.0]]
    )
    return {'inputs': imgs, 'data_samples': {'bboxes_labels': bboxes_labels, 'texts': TRAIN_TEXTS}}


def test_loss_with_collated_batch_texts(tiny_clip_dir):
    det = build_detector(tiny_clip_dir)
    det.train()
    calls = []
    det.backbone.text_model.model.register_forward_pre_hook(lambda m, a: calls.append(1))
    data = det.data_preprocessor(collated_batch(), training=True)
    losses = det(**data, mode='loss')
    assert det.bbox_head.num_classes == 3 and det.bbox_head.seen_num_classes == [3]
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    # gradients reach the image side; the frozen text model gets none
    assert det.backbone.convs[0].weight.grad.abs().sum() > 0
    assert det.neck.guide.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in det.backbone.text_model.parameters())
    # a second step with the same vocabulary does not re-run CLIP (per-string cache)
    det(**det.data_preprocessor(collated_batch(), training=True), mode='loss')
    assert len(calls) == 1


def test_extract_feat_and_loss_with_list_samples(tiny_clip_dir):
    det = build_detector(tiny_clip_dir)
    inputs, samples = list_batch(TRAIN_TEXTS)
    img_feats, txt_feats, txt_masks = det.extract_feat(inputs, samples)
    assert [tuple(f.shape) for f in img_feats] == [(2, 8, 8, 8), (2, 8, 4, 4), (2, 8, 2, 2)]
    assert txt_feats.shape == (2, 3, EMBED) and txt_masks is None
    # the text features are the text model's embeddings of each image's own texts
    torch.testing.assert_close(txt_feats, det.backbone.text_model(TRAIN_TEXTS))
    torch.testing.assert_close(txt_feats[0, 1], txt_feats[1, 0])  # 'dog' in both
    losses = det.loss(inputs, samples)
    assert torch.isfinite(sum(losses.values()))


def test_predict_any_vocabulary_labels_follow_texts(tiny_clip_dir):
    det = build_detector(tiny_clip_dir).eval()
    vocab = ['person', 'cat', 'traffic light', 'dog', 'bird']
    inputs, samples = list_batch([vocab, vocab], with_gt=False)
    with torch.no_grad():
        out = det.predict(inputs, samples)
    assert det.bbox_head.num_classes == 5  # number of prompts, not num_train/test_classes
    pred = out[0].pred_instances
    assert pred.labels.max() < 5 and len(pred.scores) == 20
    # reversed vocabulary: same detections, labels mapped to the new text positions
    _, rev_samples = list_batch([vocab[::-1]] * 2, with_gt=False)
    with torch.no_grad():
        rev = det.predict(inputs, rev_samples)[0].pred_instances
    order = pred.scores.argsort(descending=True)
    rev_order = rev.scores.argsort(descending=True)
    torch.testing.assert_close(rev.scores[rev_order], pred.scores[order])
    assert torch.equal(rev.labels[rev_order], 4 - pred.labels[order])
    # rescale: boxes divided by the scale factor 0.5
    with torch.no_grad():
        raw = det.predict(inputs, list_batch([vocab] * 2, with_gt=False)[1], rescale=False)
    torch.testing.assert_close(raw[0].pred_instances.bboxes * 2, pred.bboxes)


def test_tensor_mode_raw_outputs_per_level(tiny_clip_dir):
    det = build_detector(tiny_clip_dir).eval()
    inputs, samples = list_batch([['cat', 'dog', 'bird', 'fish']] * 2, with_gt=False)
    with torch.no_grad():
        cls, reg = det(inputs, samples, mode='tensor')
    assert [tuple(c.shape) for c in cls] == [(2, 4, 8, 8), (2, 4, 4, 4), (2, 4, 2, 2)]
    assert [tuple(r.shape) for r in reg] == [(2, 4, 8, 8), (2, 4, 4, 4), (2, 4, 2, 2)]


def test_no_texts_and_no_vocabulary_is_an_error(tiny_clip_dir):
    det = build_detector(tiny_clip_dir).eval()
    inputs, samples = list_batch([None, None], with_gt=False)
    with pytest.raises(TypeError, match='reparameterize'):
        det.predict(inputs, samples)
    with pytest.raises(TypeError, match='reparameterize'):
        det(inputs, None, mode='tensor')


def test_reparameterize_equals_text_model_path(tiny_clip_dir):
    vocab = ['person', 'cat', 'traffic light', 'dog']
    det = build_detector(tiny_clip_dir).eval()
    inputs, with_texts = list_batch([vocab, vocab], with_gt=False)
    with torch.no_grad():
        ref = det.predict(inputs, with_texts)
        ref_cls, ref_reg = det(inputs, with_texts, mode='tensor')
    det.reparameterize(vocab)
    assert det.texts == [vocab] and det.text_feats.shape == (1, 4, EMBED)
    assert 'text_feats' not in det.state_dict()
    calls = []
    det.backbone.text_model.model.register_forward_pre_hook(lambda m, a: calls.append(1))
    _, no_texts = list_batch([None, None], with_gt=False)
    with torch.no_grad():
        out = det.predict(inputs, no_texts)
        cls, reg = det(inputs, None, mode='tensor')
    assert not calls  # image-only: the text model is not run
    for a, b in zip(out, ref):
        torch.testing.assert_close(
            a.pred_instances.scores, b.pred_instances.scores, atol=1e-4, rtol=0
        )
        torch.testing.assert_close(
            a.pred_instances.bboxes, b.pred_instances.bboxes, atol=1e-4, rtol=0
        )
        assert torch.equal(a.pred_instances.labels, b.pred_instances.labels)
    for a, b in zip(cls + reg, ref_cls + ref_reg):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=0)


def test_reparameterize_forms_and_drop_text_model(tiny_clip_dir):
    det = build_detector(tiny_clip_dir).eval()
    vocab = ['cat', 'dog']
    det.reparameterize([['cat'], ['dog']])  # upstream demo form
    assert det.texts == [vocab]
    feats = det.text_feats.clone()
    det.reparameterize([vocab], drop_text_model=True)
    torch.testing.assert_close(det.text_feats, feats)
    assert det.backbone.text_model is None and not det.backbone.with_text_model
    assert not any(k.startswith('backbone.text_model') for k in det.state_dict())
    inputs, samples = list_batch([None, None], with_gt=False)
    with torch.no_grad():
        out = det.predict(inputs, samples)
    assert out[0].pred_instances.labels.max() < 2
    # texts equal to the baked vocabulary are fine without a text model ...
    _, same = list_batch([vocab, vocab], with_gt=False)
    with torch.no_grad():
        det.predict(inputs, same)
    # ... other texts need one
    _, other = list_batch([['cat', 'bird']] * 2, with_gt=False)
    with pytest.raises(RuntimeError, match='no text model'):
        det.predict(inputs, other)
    with pytest.raises(RuntimeError, match='no text'):
        det.reparameterize(['bird'])
    with pytest.raises(ValueError, match='texts must be'):
        build_detector(tiny_clip_dir).reparameterize([['a', 'b'], ['c', 'd']])


def test_import_without_transformers():
    """With transformers unavailable, ai4rs imports and rotated YOLOX builds and
    runs; building the CLIP backbone names the missing extra."""
    code = (
        'import sys\n'
        'sys.modules["transformers"] = None\n'
        'sys.path.insert(0, "tests/test_models")\n'
        'import torch, ai4rs, ai4rs.models\n'
        'from yolox_builders import build_rotated_yolox\n'
        'det = build_rotated_yolox("tiny").eval()\n'
        'outs = det(torch.zeros(1, 3, 64, 64), mode="tensor")\n'
        'print("YOLOX", len(outs))\n'
        'from ai4rs.registry import MODELS\n'
        'try:\n'
        '    MODELS.build(dict(type="HuggingCLIPLanguageBackbone", model_name="x"))\n'
        'except ImportError as e:\n'
        '    print("ERR", e)\n'
    )
    out = subprocess.run(
        [sys.executable, '-c', code],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={'PYTHONPATH': REPO_ROOT, 'OMP_NUM_THREADS': '1', 'PATH': '/usr/bin:/bin'},
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert 'YOLOX 4' in out.stdout
    assert 'ERR' in out.stdout and 'ai4rs[multimodal]' in out.stdout
