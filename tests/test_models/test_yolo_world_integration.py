"""YOLOWorldDetector with the real YOLO-World parts (YOLOv8CSPDarknet,
MultiModalYOLOBackbone, YOLOWorldPAFPN, YOLOWorldHead) and a CLIP text model:
the whole v2-S state dict against upstream's, a legacy checkpoint key, and a
tiny-width loss / predict / reparameterize round trip.

Skipped while those parts are not registered (they are written in parallel)."""

import json
import os.path as osp

import pytest
import torch

from ai4rs.registry import MODELS
from ai4rs.structures import DetDataSample
from tests.conftest import DATA_DIR

pytest.importorskip('transformers')
PARTS = (
    'YOLOv8CSPDarknet',
    'MultiModalYOLOBackbone',
    'YOLOWorldPAFPN',
    'YOLOWorldHead',
    'YOLOWorldHeadModule',
    'BatchTaskAlignedAssigner',
)


def _missing_parts() -> list[str]:
    import ai4rs.models  # noqa: F401  (registers the parts)
    from ai4rs.registry import TASK_UTILS

    return [p for p in PARTS if MODELS.get(p) is None and TASK_UTILS.get(p) is None]


pytestmark = pytest.mark.skipif(
    bool(_missing_parts()), reason=f'YOLO-World parts not registered: {_missing_parts()}'
)

BN = dict(type='BN', momentum=0.03, eps=0.001)
ACT = dict(type='SiLU', inplace=True)


def detector_cfg(
    deepen: float, widen: float, last: int, clip_dir: str, num_train_classes: int = 80
) -> dict:
    """Upstream's v2 model config (``yolo_world_v2_*_vlpan_bn_*``) with a local CLIP."""
    return dict(
        type='YOLOWorldDetector',
        mm_neck=True,
        num_train_classes=num_train_classes,
        num_test_classes=num_train_classes,
        data_preprocessor=dict(
            type='YOLOWDetDataPreprocessor',
            mean=[0.0, 0.0, 0.0],
            std=[255.0, 255.0, 255.0],
            bgr_to_rgb=True,
        ),
        backbone=dict(
            type='MultiModalYOLOBackbone',
            image_model=dict(
                type='YOLOv8CSPDarknet',
                arch='P5',
                last_stage_out_channels=last,
                deepen_factor=deepen,
                widen_factor=widen,
                norm_cfg=BN,
                act_cfg=ACT,
            ),
            text_model=dict(
                type='HuggingCLIPLanguageBackbone', model_name=clip_dir, frozen_modules=['all']
            ),
        ),
        neck=dict(
            type='YOLOWorldPAFPN',
            guide_channels=512,
            embed_channels=[128, 256, last // 2],
            num_heads=[4, 8, last // 64],
            in_channels=[256, 512, last],
            out_channels=[256, 512, last],
            deepen_factor=deepen,
            widen_factor=widen,
            num_csp_blocks=3,
            norm_cfg=BN,
            act_cfg=ACT,
            block_cfg=dict(type='MaxSigmoidCSPLayerWithTwoConv'),
        ),
        bbox_head=dict(
            type='YOLOWorldHead',
            head_module=dict(
                type='YOLOWorldHeadModule',
                use_bn_head=True,
                embed_dims=512,
                num_classes=num_train_classes,
                in_channels=[256, 512, last],
                widen_factor=widen,
                reg_max=16,
                norm_cfg=BN,
                act_cfg=ACT,
                featmap_strides=[8, 16, 32],
            ),
        ),
        train_cfg=dict(
            assigner=dict(
                type='BatchTaskAlignedAssigner',
                num_classes=num_train_classes,
                use_ciou=True,
                topk=10,
                alpha=0.5,
                beta=6.0,
                eps=1e-9,
            )
        ),
        test_cfg=dict(
            multi_label=True,
            nms_pre=30000,
            score_thr=0.001,
            nms=dict(type='nms', iou_threshold=0.7),
            max_per_img=300,
        ),
    )


def test_v2_s_state_dict_equals_upstream(tmp_path):
    """Keys, shapes, order and parameter counts of v2-S with a ViT-B/32-sized
    CLIP text model equal upstream's; an old checkpoint's position_ids loads."""
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
