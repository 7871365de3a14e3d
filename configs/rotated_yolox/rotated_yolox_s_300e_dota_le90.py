# Rotated YOLOX-s on DOTA-v1.0, le90, 300 epochs, single scale (1024 px patches, gap 200).
# Published (DOTA test server, trained with 2 GPUs x 4 images): AP50 74.94, AP75 49.49, mAP 46.27.
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_300e_yolo.py',
    '../_base_/datasets/dota.py',
]

angle_version = 'le90'
img_scale = (1024, 1024)
max_epochs = 300
num_last_epochs = 15
interval = 10
norm_cfg = dict(type='BN', momentum=0.03, eps=0.001)
act_cfg = dict(type='Swish')
# train in the channels-last memory format (the Runner converts the model): 0.88x the time of
# a training step at 1024 px on CPU (profile_train_step.py --compare-channels-last, docs/model_zoo.md)
channels_last = True

model = dict(
    type='YOLOX',
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        pad_size_divisor=32,
        # keep the box objects (as mmrotate's rotated configs do): the rotated head takes
        # them, and the ground truth then keeps its box type for DetVisualizationHook
        boxtype2tensor=False,
        batch_augments=[
            dict(
                type='BatchSyncRandomResize',
                random_size_range=(1024, 1024),
                size_divisor=32,
                interval=1,
            )
        ],
    ),
    backbone=dict(
        type='CSPDarknet',
        deepen_factor=0.33,
        widen_factor=0.5,
        out_indices=(2, 3, 4),
        use_depthwise=False,
        spp_kernal_sizes=(5, 9, 13),
        norm_cfg=norm_cfg,
        act_cfg=act_cfg,
    ),
    neck=dict(
        type='YOLOXPAFPN',
        in_channels=[128, 256, 512],
        out_channels=128,
        num_csp_blocks=1,
        use_depthwise=False,
        upsample_cfg=dict(scale_factor=2, mode='nearest'),
        norm_cfg=norm_cfg,
        act_cfg=act_cfg,
    ),
    bbox_head=dict(
        type='RotatedYOLOXHead',
        num_classes=15,
        in_channels=128,
        feat_channels=128,
        stacked_convs=2,
        strides=(8, 16, 32),
        use_depthwise=False,
        norm_cfg=norm_cfg,
        act_cfg=act_cfg,
        angle_version=angle_version,
        angle_coder=dict(type='PseudoAngleCoder'),
        separate_angle=False,
        with_angle_l1=True,
        angle_norm_factor=5,
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True, reduction='sum', loss_weight=1.0),
        loss_bbox=dict(
            type='RotatedIoULoss', mode='square', eps=1e-16, reduction='sum', loss_weight=5.0
        ),
        loss_obj=dict(type='CrossEntropyLoss', use_sigmoid=True, reduction='sum', loss_weight=1.0),
        loss_l1=dict(type='L1Loss', reduction='sum', loss_weight=1.0),
    ),
    train_cfg=dict(
        assigner=dict(
            type='RotatedSimOTAAssigner',
            center_radius=2.5,
            iou_calculator=dict(type='RBboxOverlaps2D'),
        )
    ),
    # one test_cfg for val and test, as upstream (no nms_pre, no max_per_img)
    test_cfg=dict(score_thr=0.01, nms=dict(type='nms_rotated', iou_threshold=0.1)),
)

backend_args = None
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True, box_type='qbox'),
    dict(type='ConvertBoxType', box_type_mapping=dict(gt_bboxes='rbox')),
    dict(type='CachedMosaic', img_scale=img_scale, pad_val=114.0),
    dict(
        type='RandomResize',
        resize_type='Resize',
        scale=(2048, 2048),
        ratio_range=(0.1, 2.0),
        keep_ratio=True,
    ),
    # storage-tank (9) and roundabout (11) are rotated by multiples of 90 degrees only
    dict(type='RandomRotate', prob=0.5, angle_range=180, rect_obj_labels=[9, 11]),
    dict(type='RandomCrop', crop_size=img_scale),
    dict(type='YOLOXHSVRandomAug'),
    dict(type='RandomFlip', prob=0.75, direction=['horizontal', 'vertical', 'diagonal']),
    dict(type='Pad', size=img_scale, pad_val=dict(img=(114, 114, 114))),
    dict(
        type='CachedMixUp',
        img_scale=img_scale,
        ratio_range=(1.0, 1.0),
        max_cached_images=20,
        pad_val=(114, 114, 114),
    ),
    dict(type='PackDetInputs'),
]
# the last `num_last_epochs` epochs: no mosaic / mixup, no upscaling
train_pipeline_stage2 = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True, box_type='qbox'),
    dict(type='ConvertBoxType', box_type_mapping=dict(gt_bboxes='rbox')),
    dict(
        type='RandomResize',
        resize_type='Resize',
        scale=img_scale,
        ratio_range=(0.1, 2.0),
        keep_ratio=True,
    ),
    dict(type='RandomRotate', prob=0.5, angle_range=180, rect_obj_labels=[9, 11]),
    dict(type='RandomCrop', crop_size=img_scale),
    dict(type='YOLOXHSVRandomAug'),
    dict(type='RandomFlip', prob=0.75, direction=['horizontal', 'vertical', 'diagonal']),
    dict(type='Pad', size=img_scale, pad_val=dict(img=(114, 114, 114))),
    dict(type='PackDetInputs'),
]
val_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, box_type='qbox'),
    dict(type='ConvertBoxType', box_type_mapping=dict(gt_bboxes='rbox')),
    dict(type='Pad', size=img_scale, pad_val=dict(img=(114, 114, 114))),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'),
    ),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='Pad', size=img_scale, pad_val=dict(img=(114, 114, 114))),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'),
    ),
]

train_dataloader = dict(
    batch_size=4, num_workers=4, persistent_workers=True, dataset=dict(pipeline=train_pipeline)
)
# validation runs on the trainval patches, as upstream; the DOTA test server gives the real score
val_dataloader = dict(batch_size=4, num_workers=4, dataset=dict(pipeline=val_pipeline))
test_dataloader = dict(
    batch_size=4,
    num_workers=4,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='DOTADataset',
        data_root='data/split_ss_dota/',
        ann_file='',
        data_prefix=dict(img_path='test/images/'),
        test_mode=True,
        pipeline=test_pipeline,
    ),
)

val_evaluator = dict(type='DOTAMetric', metric='mAP')
test_evaluator = dict(
    type='DOTAMetric',
    format_only=True,
    merge_patches=True,
    outfile_prefix='./work_dirs/rotated_yolox_s_300e_dota_le90/Task1',
)

train_cfg = dict(
    max_epochs=max_epochs,
    val_interval=interval,
    dynamic_intervals=[(max_epochs - num_last_epochs, 1)],
)

# SGD 0.01 is for a total batch of 64; auto_scale_lr scales it to the real batch
# (the published run: 2 GPUs x 4 images = 8, lr 0.00125). The upstream config
# inherits gradient clipping (max_norm 35) from schedule_1x through mmengine's
# dict merge; it is kept here, explicitly, to train the same way.
auto_scale_lr = dict(enable=True, base_batch_size=64)
optim_wrapper = dict(clip_grad=dict(max_norm=35, norm_type=2))

default_hooks = dict(
    checkpoint=dict(interval=interval, max_keep_ckpts=8),
    logger=dict(type='LoggerHook', interval=50),
)

custom_hooks = [
    dict(type='YOLOXModeSwitchHook', num_last_epochs=num_last_epochs, priority=48),
    dict(
        type='PipelineSwitchHook',
        switch_epoch=max_epochs - num_last_epochs,
        switch_pipeline=train_pipeline_stage2,
    ),
    dict(type='SyncNormHook', priority=48),
    dict(
        type='EMAHook', ema_type='ExpMomentumEMA', momentum=0.0001, update_buffers=True, priority=49
    ),
]

# Test-time augmentation (tools/test.py --tta): the image and its horizontal and vertical flips,
# at the test scale, merged by rotated NMS (mmrotate's RotatedTTAModel). Flips and no scales:
# an aerial object has no up or left (training flips in all three directions, so every flipped
# object is familiar), a flip maps back exactly, and the patches are cut for this one scale
# (the multi-scale recipe splits the images at several rates instead). RandomFlip comes before
# Pad, so the flip is about the resized image and is undone about the original one.
tta_model = dict(
    type='RotatedTTAModel',
    tta_cfg=dict(nms=dict(type='nms_rotated', iou_threshold=0.1), max_per_img=2000),
)
tta_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(
        type='TestTimeAug',
        transforms=[
            [dict(type='Resize', scale=img_scale, keep_ratio=True)],
            [
                dict(type='RandomFlip', prob=1.0, direction='horizontal'),
                dict(type='RandomFlip', prob=1.0, direction='vertical'),
                dict(type='RandomFlip', prob=0.0),
            ],
            [dict(type='Pad', size=img_scale, pad_val=dict(img=(114, 114, 114)))],
            [
                dict(
                    type='PackDetInputs',
                    meta_keys=(
                        'img_id',
                        'img_path',
                        'ori_shape',
                        'img_shape',
                        'scale_factor',
                        'flip',
                        'flip_direction',
                    ),
                )
            ],
        ],
    ),
]
