"""YOLOWorldDetector with the real YOLO-World parts (YOLOv8CSPDarknet,
MultiModalYOLOBackbone, YOLOWorldPAFPN, YOLOWorldHead) and a CLIP text model:
the whole v2-S state dict against upstream's, a legacy checkpoint key, and a
tiny-width loss / predict / reparameterize round trip. Nothing here is skipped when a part is
missing: an unregistered part fails ``test_every_yolo_world_part_is_registered`` and the
builds below."""

import json
import os.path as osp

import pytest
import torch

from ai4rs.registry import MODELS
from ai4rs.structures import DetDataSample
from tests.conftest import DATA_DIR
from tests.yolo_world_builders import detector_cfg  # noqa: F401  (other tests import it here)

# the YOLO-World parts, by registry: (registry name, type names)
PARTS = (
    (
        'MODELS',
        (
            'YOLOWorldDetector',
            'YOLOWDetDataPreprocessor',
            'MultiModalYOLOBackbone',
            'YOLOv8CSPDarknet',
            'HuggingCLIPLanguageBackbone',
            'YOLOWorldPAFPN',
            'MaxSigmoidCSPLayerWithTwoConv',
            'YOLOWorldHead',
            'YOLOWorldHeadModule',
            'BNContrastiveHead',
            'ContrastiveHead',
            'CrossEntropyLoss',
            'IoULoss',
            'DistributionFocalLoss',
        ),
    ),
    ('TASK_UTILS', ('BatchTaskAlignedAssigner', 'MlvlPointGenerator', 'DistancePointBBoxCoder')),
)


def test_every_yolo_world_part_is_registered():
    """Every type the v2 configs name is in ai4rs' registries after ``import ai4rs.models``
    (a missing registration is a failure here, never a skip).

    Planted bug this test was checked to fail on: the ``@MODELS.register_module()``
    decorator of ``YOLOWorldPAFPN`` removed (so was the round trip below)."""
    import ai4rs.models  # noqa: F401  (registers the parts)
    from ai4rs import registry

    missing = [
        f'{reg}.{name}'
        for reg, names in PARTS
        for name in names
        if getattr(registry, reg).get(name) is None
    ]
    assert not missing, f'YOLO-World parts not registered: {missing}'


def test_v2_s_state_dict_equals_upstream(tmp_path):
    """Keys, shapes, order and parameter counts of v2-S with a ViT-B/32-sized
    CLIP text model equal upstream's; an old checkpoint's position_ids loads."""
    pytest.importorskip('transformers')
    from mmengine.runner.checkpoint import load_state_dict

    from ai4rs.testing.tiny_clip import make_tiny_clip

    clip_dir = make_tiny_clip(
        tmp_path / 'clip_b32',
        weights=False,
        hidden_size=512,
        intermediate_size=2048,
        num_hidden_layers=12,
        num_attention_heads=8,
        vocab_size=49408,
    )
    det = MODELS.build(detector_cfg(0.33, 0.5, 1024, clip_dir))
    with open(osp.join(DATA_DIR, 'yolo_world_v2_state_dict_keys.json')) as f:
        ref = json.load(f)['yolo_world_v2_s_vlpan_bn_2e-4_80e_8gpus_mask-refine_finetune_coco']
    params = ref.pop('_params')
    ours = {k: list(v.shape) for k, v in det.state_dict().items()}
    assert list(ours) == list(ref)
    assert ours == ref
    assert sum(p.numel() for p in det.parameters()) == params['total'] == 76_187_960
    trainable = sum(p.numel() for p in det.parameters() if p.requires_grad)
    assert trainable == params['trainable'] == 12_759_864
    state = dict(det.state_dict())
    state['backbone.text_model.model.text_model.embeddings.position_ids'] = torch.arange(77)[None]
    load_state_dict(det, state, strict=True)  # raises on unexpected keys


def test_tiny_world_detector_round_trip(tiny_clip_dir):
    det = MODELS.build(detector_cfg(0.33, 0.125, 256, tiny_clip_dir, num_train_classes=3))
    det.init_weights()
    g = torch.Generator().manual_seed(0)
    imgs = (torch.rand(2, 3, 64, 64, generator=g) * 255).to(torch.uint8)
    batch = {
        'inputs': imgs,
        'data_samples': {
            'bboxes_labels': torch.tensor(
                [[0.0, 1.0, 8.0, 8.0, 40.0, 30.0], [1.0, 2.0, 10.0, 20.0, 50.0, 60.0]]
            ),
            'texts': [['cat', 'dog', ''], ['dog', 'bird', 'cat']],
        },
    }
    det.train()
    losses = det(**det.data_preprocessor(batch, training=True), mode='loss')
    total = sum(losses.values())
    assert torch.isfinite(total) and total > 0
    total.backward()
    assert all(p.grad is None for p in det.backbone.text_model.parameters())

    det.eval()
    vocab = ['person', 'cat', 'traffic light', 'dog', 'bird']  # not the training vocabulary

    def samples(texts):
        out = []
        for _ in range(2):
            s = DetDataSample(
                metainfo=dict(img_shape=(64, 64), ori_shape=(128, 128), scale_factor=(0.5, 0.5))
            )
            if texts is not None:
                s.texts = texts
            out.append(s)
        return out

    with torch.no_grad():
        data = det.data_preprocessor({'inputs': list(imgs), 'data_samples': samples(vocab)})
        ref = det(**data, mode='predict')
        assert det.bbox_head.num_classes == 5
        cls_scores = det(data['inputs'], data['data_samples'], mode='tensor')[0]
        assert [tuple(c.shape) for c in cls_scores] == [(2, 5, 8, 8), (2, 5, 4, 4), (2, 5, 2, 2)]
        det.reparameterize(vocab, drop_text_model=True)
        assert not any('text_model' in k for k in det.state_dict())
        data = det.data_preprocessor({'inputs': list(imgs), 'data_samples': samples(None)})
        out = det(**data, mode='predict')
    for a, b in zip(out, ref):
        a, b = a.pred_instances, b.pred_instances
        assert len(a) == len(b) > 0 and int(b.labels.max()) < 5
        torch.testing.assert_close(a.scores, b.scores, atol=1e-4, rtol=0)
        torch.testing.assert_close(
            torch.as_tensor(getattr(a.bboxes, 'tensor', a.bboxes)),
            torch.as_tensor(getattr(b.bboxes, 'tensor', b.bboxes)),
            atol=1e-4,
            rtol=0,
        )
        assert torch.equal(a.labels, b.labels)
