"""YOLOWorldDetector built from the real parts at tiny widths (YOLOv8CSPDarknet +
MultiModalYOLOBackbone, YOLOWorldPAFPN, YOLOWorldHead, BatchTaskAlignedAssigner: upstream's
v2 model config, tests/yolo_world_builders.py) and the tiny CLIP text model: loss with the
batch texts, predict with any vocabulary, the rescale to original pixels through the
letterbox, tensor mode, reparameterize, and import without transformers.

Planted bugs these tests were checked to fail on (one at a time, then reverted):

- ``BaseDenseHead._bbox_post_process`` without the rescale (boxes left in network-input
  pixels), and without the letterbox ``translate_`` (padding not subtracted):
  ``test_predict_rescale_maps_input_pixels_through_the_letterbox``;
- ``HuggingCLIPLanguageBackbone.forward`` reshaping the flat (B * K) embeddings as (K, B)
  then transposing (texts mixed across images):
  ``test_extract_feat_text_features_are_each_images_own_texts``,
  ``test_predict_any_vocabulary_labels_follow_texts``.
"""

import copy
import subprocess
import sys

import pytest
import torch
from mmengine.structures import InstanceData

from ai4rs.structures import DetDataSample
from tests.conftest import REPO_ROOT

pytest.importorskip('transformers')

EMBED = 512
TRAIN_TEXTS = [['cat', 'dog', ''], ['dog', 'bird', 'cat']]
# a 96 x 128 (H x W) image letterboxed to 64 x 64: resized by 0.5 to 48 x 64, 8 rows of
# padding above and below
LETTERBOX = dict(
    img_shape=(64, 64),
    ori_shape=(96, 128),
    scale_factor=(0.5, 0.5),
    pad_param=[8.0, 8.0, 0.0, 0.0],
    batch_input_shape=(64, 64),
)


@pytest.fixture(scope='module')
def built(tiny_clip_dir):
    """One tiny detector, its BatchNorms calibrated on a random batch (score_thr 0 and no
    cap: every (cell, text) pair NMS keeps is a detection); each test takes a deep copy."""
    from tests.yolo_world_builders import build_tiny_detector, calibrate_batchnorm

    det = build_tiny_detector(tiny_clip_dir, score_thr=0.0, max_per_img=500)
    # upstream's init (box bias 1.0 on every bin) makes every distance the mean bin, 7.5
    # strides, so every box covers the 64 px input and is decided by clipping; a peak at
    # bin 1 makes boxes of a few strides, many of them inside the image. The contrast biases
    # (upstream: larger for coarser levels) all -2: the best scores are not all stride 32's.
    head = det.bbox_head.head_module
    with torch.no_grad():
        for reg, contrast in zip(head.reg_preds, head.cls_contrasts):
            reg[-1].weight.mul_(0.1)
            reg[-1].bias.copy_(torch.tensor([0.0, 6.0] + [0.0] * 14).repeat(4))
            contrast.bias.fill_(-2.0)
    calibrate_batchnorm(det)
    return det


@pytest.fixture
def det(built):
    return copy.deepcopy(built)


def list_batch(texts, with_gt=True, meta=LETTERBOX):
    g = torch.Generator().manual_seed(0)
    samples = []
    for i, t in enumerate(texts):
        sample = DetDataSample(metainfo=dict(meta))
        if t is not None:
            sample.texts = list(t)
        if with_gt:
            sample.gt_instances = InstanceData(
                bboxes=torch.tensor([[8.0, 8.0, 40.0, 30.0]]) + i, labels=torch.tensor([i])
            )
        samples.append(sample)
    return torch.rand(len(texts), 3, 64, 64, generator=g), samples


def collated_batch():
    g = torch.Generator().manual_seed(1)
    imgs = (torch.rand(2, 3, 64, 64, generator=g) * 255).to(torch.uint8)
    bboxes_labels = torch.tensor(
        [[0.0, 1.0, 8.0, 8.0, 40.0, 30.0], [1.0, 2.0, 10.0, 20.0, 50.0, 60.0]]
    )
    return {'inputs': imgs, 'data_samples': {'bboxes_labels': bboxes_labels, 'texts': TRAIN_TEXTS}}


def reference_text_embeddings(clip_dir, texts):
    """(B, K, 512) L2-normalised ``text_embeds`` of each image's texts, straight from
    transformers (CLIP's EOS-pooled projection), one string at a time."""
    from transformers import AutoTokenizer, CLIPTextModelWithProjection

    tokenizer = AutoTokenizer.from_pretrained(clip_dir)
    model = CLIPTextModelWithProjection.from_pretrained(clip_dir).eval()
    out = []
    with torch.no_grad():
        for image_texts in texts:
            rows = []
            for text in image_texts:
                emb = model(**tokenizer([text], return_tensors='pt')).text_embeds[0]
                rows.append(emb / emb.norm())
            out.append(torch.stack(rows))
    return torch.stack(out)


def test_loss_with_collated_batch_texts(det):
    det.train()
    calls = []
    det.backbone.text_model.model.register_forward_pre_hook(lambda m, a: calls.append(1))
    data = det.data_preprocessor(collated_batch(), training=True)
    losses = det(**data, mode='loss')
    assert set(losses) == {'loss_cls', 'loss_bbox', 'loss_dfl'}
    assert det.bbox_head.num_classes == 3  # num_train_classes
    total = sum(losses.values())
    assert torch.isfinite(total) and all(v.item() > 0 for v in losses.values())
    total.backward()
    # gradients reach the image side (backbone stem, the neck's text guide, the head); the
    # frozen text model gets none
    grads = {n: p.grad for n, p in det.named_parameters()}
    assert grads['backbone.image_model.stem.conv.weight'].abs().sum() > 0
    guide = [n for n in grads if n.startswith('neck.') and 'guide_fc.weight' in n]
    assert guide and all(grads[n].abs().sum() > 0 for n in guide)
    assert grads['bbox_head.head_module.reg_preds.0.2.weight'].abs().sum() > 0
    assert all(p.grad is None for p in det.backbone.text_model.parameters())
    # a second step with the same vocabulary does not re-run CLIP (per-string cache)
    det(**det.data_preprocessor(collated_batch(), training=True), mode='loss')
    assert len(calls) == 1
    # the loss is the one of the texts given: other texts, other class loss
    other = collated_batch()
    other['data_samples']['texts'] = [['bird', 'cat', 'dog'], ['cat', '', 'dog']]
    other_losses = det(**det.data_preprocessor(other, training=True), mode='loss')
    assert other_losses['loss_cls'].item() != pytest.approx(losses['loss_cls'].item(), rel=1e-6)


def test_extract_feat_text_features_are_each_images_own_texts(det, tiny_clip_dir):
    det.train()
    inputs, samples = list_batch(TRAIN_TEXTS)
    img_feats, txt_feats, txt_masks = det.extract_feat(inputs, samples)
    channels = [32, 64, 32]  # make_divisible((256, 512, 256) * 0.125)
    assert [tuple(f.shape) for f in img_feats] == [
        (2, c, 64 // s, 64 // s) for c, s in zip(channels, (8, 16, 32))
    ]
    assert txt_feats.shape == (2, 3, EMBED) and txt_masks is None
    expected = reference_text_embeddings(tiny_clip_dir, TRAIN_TEXTS)
    torch.testing.assert_close(txt_feats, expected, atol=1e-5, rtol=0)
    losses = det.loss(inputs, samples)  # the list-of-samples form of the ground truth
    assert torch.isfinite(sum(losses.values()))


def assert_same_detections(a, texts_a, b, texts_b):
    """The same detections, each attached to the same text (label indexes may differ):
    per text, scores (best first) and their boxes equal within float tolerance."""
    for text in texts_a:
        sel_a = torch.tensor([texts_a[int(lb)] == text for lb in a.labels], dtype=torch.bool)
        sel_b = torch.tensor([texts_b[int(lb)] == text for lb in b.labels], dtype=torch.bool)
        scores_a, order_a = a.scores[sel_a].sort(descending=True)
        scores_b, order_b = b.scores[sel_b].sort(descending=True)
        torch.testing.assert_close(scores_a, scores_b, atol=1e-5, rtol=0)
        torch.testing.assert_close(
            a.bboxes.tensor[sel_a][order_a], b.bboxes.tensor[sel_b][order_b], atol=1e-3, rtol=0
        )


def test_predict_any_vocabulary_labels_follow_texts(det):
    det.eval()
    vocab = ['person', 'cat', 'traffic light', 'dog', 'bird']
    other = ['bird', 'horse', 'person', 'cat', 'fish']
    inputs, samples = list_batch([vocab, other], with_gt=False)
    with torch.no_grad():
        out = det.predict(inputs, samples)
    assert det.bbox_head.num_classes == 5  # number of prompts, not num_train/test_classes
    pred = out[0].pred_instances
    assert len(pred) > 20 and int(pred.labels.max()) < 5
    assert int(out[1].pred_instances.labels.max()) < 5
    # reversed vocabulary: the same detections, each attached to the same text
    _, rev_samples = list_batch([vocab[::-1], other[::-1]], with_gt=False)
    with torch.no_grad():
        rev = det.predict(inputs, rev_samples)
    for a, b, texts in zip(out, rev, (vocab, other)):
        assert_same_detections(a.pred_instances, texts, b.pred_instances, texts[::-1])
    # image 1 alone with its vocabulary: the same detections as in the mixed batch (its
    # texts are its own, not image 0's)
    with torch.no_grad():
        alone = det.predict(inputs[1:], list_batch([other], with_gt=False)[1])
    assert_same_detections(alone[0].pred_instances, other, out[1].pred_instances, other)


def test_predict_rescale_maps_input_pixels_through_the_letterbox(det):
    """rescale=True boxes equal rescale=False boxes (network-input pixels) mapped by hand:
    x = (x_in - left) / 0.5, y = (y_in - top) / 0.5 with top = 8, left = 0, then clipped to
    the 96 x 128 original; a missing rescale or a missing padding shift both differ."""
    det.eval()
    vocab = ['cat', 'dog', 'bird']
    inputs, samples = list_batch([vocab, vocab], with_gt=False)
    with torch.no_grad():
        rescaled = det.predict(inputs, copy.deepcopy(samples), rescale=True)
        raw = det.predict(inputs, copy.deepcopy(samples), rescale=False)
    moved = 0
    for r, n in zip(rescaled, raw):
        r, n = r.pred_instances, n.pred_instances
        assert len(r) == len(n) > 0
        by_hand = n.bboxes.tensor.clone()
        by_hand[:, 1::2] -= 8.0
        by_hand /= 0.5
        by_hand[:, 0::2] = by_hand[:, 0::2].clamp(0, 128)
        by_hand[:, 1::2] = by_hand[:, 1::2].clamp(0, 96)
        order_r, order_n = r.scores.argsort(descending=True), n.scores.argsort(descending=True)
        torch.testing.assert_close(r.scores[order_r], n.scores[order_n])
        torch.testing.assert_close(r.bboxes.tensor[order_r], by_hand[order_n], atol=1e-4, rtol=0)
        # boxes strictly inside the original image are not decided by clipping
        inside = (by_hand[:, :2] > 0).all(1) & (by_hand[:, 2] < 128) & (by_hand[:, 3] < 96)
        moved += int(inside.sum())
    assert moved > 0


def test_tensor_mode_raw_outputs_per_level(det):
    det.eval()
    inputs, samples = list_batch([['cat', 'dog', 'bird', 'fish']] * 2, with_gt=False)
    with torch.no_grad():
        cls, reg = det(inputs, samples, mode='tensor')
    assert [tuple(c.shape) for c in cls] == [(2, 4, 8, 8), (2, 4, 4, 4), (2, 4, 2, 2)]
    assert [tuple(r.shape) for r in reg] == [(2, 4, 8, 8), (2, 4, 4, 4), (2, 4, 2, 2)]
    # distances are expectations over {0, ..., 15} strides
    assert all(((r >= 0) & (r <= 15)).all() for r in reg)


def test_no_texts_and_no_vocabulary_is_an_error(det):
    det.eval()
    inputs, samples = list_batch([None, None], with_gt=False)
    with pytest.raises(TypeError, match='reparameterize'):
        det.predict(inputs, samples)
    with pytest.raises(TypeError, match='reparameterize'):
        det(inputs, None, mode='tensor')


def test_reparameterize_equals_text_model_path(det):
    vocab = ['person', 'cat', 'traffic light', 'dog']
    det.eval()
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
        a, b = a.pred_instances, b.pred_instances
        torch.testing.assert_close(a.scores, b.scores, atol=1e-4, rtol=0)
        torch.testing.assert_close(a.bboxes.tensor, b.bboxes.tensor, atol=1e-4, rtol=0)
        assert torch.equal(a.labels, b.labels)
    for a, b in zip(cls + reg, ref_cls + ref_reg):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=0)


def test_reparameterize_forms_and_drop_text_model(det, built):
    det.eval()
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
    assert len(out[0].pred_instances) > 0 and out[0].pred_instances.labels.max() < 2
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
        copy.deepcopy(built).reparameterize([['a', 'b'], ['c', 'd']])


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
