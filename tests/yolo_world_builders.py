"""Configs and builders of the real YOLO-World v2 detector for the tests: upstream's v2
model config (``yolo_world_v2_*_vlpan_bn_*``: YOLOv8CSPDarknet + MultiModalYOLOBackbone,
YOLOWorldPAFPN, YOLOWorldHead, BatchTaskAlignedAssigner) with a local CLIP text model, and
the tiny version the fast tests run (deepen 0.33, widen 0.125, last stage 256: levels of
32, 64 and 32 channels at strides 8, 16, 32; the tiny CLIP of ``ai4rs/testing/tiny_clip.py``)."""

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


TINY = dict(deepen=0.33, widen=0.125, last=256)


def tiny_detector_cfg(clip_dir: str, num_train_classes: int = 3, **test_cfg) -> dict:
    """:func:`detector_cfg` at the tiny size; ``test_cfg`` entries override the recipe's."""
    cfg = detector_cfg(
        TINY['deepen'], TINY['widen'], TINY['last'], str(clip_dir), num_train_classes
    )
    cfg['test_cfg'].update(test_cfg)
    return cfg


def build_tiny_detector(clip_dir: str, seed: int = 0, **kwargs):
    """The tiny real detector, initialised (``init_weights``) from ``seed``."""
    import torch

    from ai4rs.registry import MODELS
    from ai4rs.utils import register_all_modules

    register_all_modules(init_default_scope=False)
    torch.manual_seed(seed)
    det = MODELS.build(tiny_detector_cfg(clip_dir, **kwargs))
    det.init_weights()
    return det


def calibrate_batchnorm(det, seed: int = 0, size: int = 64) -> None:
    """Set every BatchNorm's running statistics to those of one random batch (one
    training-mode forward pass with momentum 1), then eval mode.

    Freshly initialised, the eval-mode BatchNorms are identities and the features shrink by
    about 100x per stage at these widths (1e-10 at the last level): every cell then gets the
    same logits and the same box. Calibrated, the features keep unit scale and the outputs
    vary over the image, as a trained model's do."""
    import torch
    from torch.nn.modules.batchnorm import _BatchNorm

    g = torch.Generator().manual_seed(seed)
    images = torch.rand(4, 3, size, size, generator=g)
    texts = [['cat', 'dog', 'bird']] * 4
    norms = [m for m in det.modules() if isinstance(m, _BatchNorm)]
    saved = [m.momentum for m in norms]
    det.train()
    with torch.no_grad():
        for m in norms:
            m.momentum = 1.0
        img_feats, txt_feats = det.backbone(images, texts)
        img_feats = det.neck(img_feats, txt_feats)
        det.bbox_head.head_module(img_feats, txt_feats)
        for m, momentum in zip(norms, saved):
            m.momentum = momentum
    det.eval()
