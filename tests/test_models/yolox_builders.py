"""Builders of rotated YOLOX models for the tests (t/s/m as upstream, and a tiny one)."""

import torch

NUM_CLASSES = 15

# (deepen_factor, widen_factor, neck in_channels, neck/head channels, csp blocks)
SIZES = {
    't': (0.33, 0.375, [96, 192, 384], 96, 1),
    's': (0.33, 0.5, [128, 256, 512], 128, 1),
    'm': (0.67, 0.75, [192, 384, 768], 192, 2),
    'tiny': (0.33, 0.125, [32, 64, 128], 16, 1),
}


def rotated_yolox_cfg(size: str, num_classes: int = NUM_CLASSES, **head_kwargs) -> dict:
    """The model part of configs/rotated_yolox/rotated_yolox_{size}_300e_dota_le90.py."""
    deepen, widen, neck_in, ch, csp = SIZES[size]
    norm_cfg = dict(type='BN', momentum=0.03, eps=0.001)
    head = dict(
        type='RotatedYOLOXHead',
        angle_version='le90',
        separate_angle=False,
        with_angle_l1=True,
        angle_norm_factor=5,
        angle_coder=dict(type='PseudoAngleCoder'),
        loss_angle=None,
        num_classes=num_classes,
        in_channels=ch,
        feat_channels=ch,
        stacked_convs=2,
        strides=(8, 16, 32),
        use_depthwise=False,
        norm_cfg=norm_cfg,
        act_cfg=dict(type='Swish'),
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True, reduction='sum', loss_weight=1.0),
        loss_bbox=dict(
            type='RotatedIoULoss', mode='square', eps=1e-16, reduction='sum', loss_weight=5.0
        ),
        loss_obj=dict(type='CrossEntropyLoss', use_sigmoid=True, reduction='sum', loss_weight=1.0),
        loss_l1=dict(type='L1Loss', reduction='sum', loss_weight=1.0),
    )
    head.update(head_kwargs)
    return dict(
        type='YOLOX',
        data_preprocessor=dict(
            type='DetDataPreprocessor',
            pad_size_divisor=32,
            batch_augments=[
                dict(
                    type='BatchSyncRandomResize',
                    random_size_range=(1024, 1024),
                    size_divisor=32,
                    interval=10,
                )
            ],
        ),
        backbone=dict(
            type='CSPDarknet',
            deepen_factor=deepen,
            widen_factor=widen,
            out_indices=(2, 3, 4),
            use_depthwise=False,
            spp_kernal_sizes=(5, 9, 13),
            norm_cfg=norm_cfg,
            act_cfg=dict(type='Swish'),
        ),
        neck=dict(
            type='YOLOXPAFPN',
            in_channels=neck_in,
            out_channels=ch,
            num_csp_blocks=csp,
            use_depthwise=False,
            upsample_cfg=dict(scale_factor=2, mode='nearest'),
            norm_cfg=norm_cfg,
            act_cfg=dict(type='Swish'),
        ),
        bbox_head=head,
        train_cfg=dict(assigner=dict(type='RotatedSimOTAAssigner', center_radius=2.5)),
        test_cfg=dict(score_thr=0.01, nms=dict(type='nms_rotated', iou_threshold=0.1)),
    )


def build_rotated_yolox(size: str, seed: int = 0, **head_kwargs):
    from ai4rs.registry import MODELS

    torch.manual_seed(seed)
    model = MODELS.build(rotated_yolox_cfg(size, **head_kwargs))
    model.init_weights()
    return model
