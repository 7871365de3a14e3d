# The quick start: a small rotated YOLOX trained on the generated DOTA-style data
# (python tools/quickstart.py, or tools/data/synthetic/generate_dota_like.py
# data/synthetic_dota, then tools/train.py with this config). 256-px images,
# three classes, CPU-friendly widths.
_base_ = ['./rotated_yolox_s_300e_dota_le90.py']

data_root = 'data/synthetic_dota/'
classes = ('vehicle', 'pool', 'court')
metainfo = dict(classes=classes, palette=[(220, 60, 60), (60, 120, 230), (60, 200, 90)])
img_scale = (256, 256)
# contiguous, as the quick-start results in the docs were trained (channels-last measured 0.88x
# a training step on a quiet CPU, 1.17x on a loaded one: docs/model_zoo.md)
channels_last = False
max_epochs = 20
num_last_epochs = 4
interval = 10

model = dict(
    data_preprocessor=dict(batch_augments=None),
    backbone=dict(deepen_factor=0.33, widen_factor=0.25),
    neck=dict(in_channels=[64, 128, 256], out_channels=64),
    bbox_head=dict(num_classes=len(classes), in_channels=64, feat_channels=64),
    test_cfg=dict(score_thr=0.05, nms=dict(type='nms_rotated', iou_threshold=0.1)),
)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, box_type='qbox'),
    dict(type='ConvertBoxType', box_type_mapping=dict(gt_bboxes='rbox')),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.75, direction=['horizontal', 'vertical', 'diagonal']),
    dict(type='PackDetInputs'),
]
train_pipeline_stage2 = train_pipeline
val_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, box_type='qbox'),
    dict(type='ConvertBoxType', box_type_mapping=dict(gt_bboxes='rbox')),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'),
    ),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'),
    ),
]

train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='train/annfiles/',
        data_prefix=dict(img_path='train/images/'),
        pipeline=train_pipeline,
    ),
)
val_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='val/annfiles/',
        data_prefix=dict(img_path='val/images/'),
        pipeline=val_pipeline,
    ),
)
test_dataloader = val_dataloader
val_evaluator = dict(type='DOTAMetric', metric='mAP')
# replaces (not merges into) the DOTA recipe's format-only test evaluator
test_evaluator = dict(_delete_=True, type='DOTAMetric', metric='mAP')

train_cfg = dict(max_epochs=max_epochs, val_interval=interval, dynamic_intervals=None)
base_lr = 0.01
optim_wrapper = dict(optimizer=dict(lr=base_lr))
auto_scale_lr = dict(enable=False, base_batch_size=8)
param_scheduler = [
    dict(type='QuadraticWarmupLR', by_epoch=True, begin=0, end=2, convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        eta_min=base_lr * 0.05,
        begin=2,
        T_max=max_epochs - 2,
        end=max_epochs,
        by_epoch=True,
        convert_to_iter_based=True,
    ),
]
default_hooks = dict(
    checkpoint=dict(interval=interval, max_keep_ckpts=1),
    logger=dict(type='LoggerHook', interval=10),
)
custom_hooks = [
    dict(type='YOLOXModeSwitchHook', num_last_epochs=num_last_epochs, priority=48),
    dict(type='SyncNormHook', priority=48),
    dict(
        type='EMAHook', ema_type='ExpMomentumEMA', momentum=0.0002, update_buffers=True, priority=49
    ),
]

# a reproducible quick start (CPU results are repeatable; GPU kernels may still vary slightly)
randomness = dict(seed=0, deterministic=False)

# tools/test.py --tta: the image and its horizontal and vertical flips (the recipe's choice, for
# this 256-px test scale), merged by rotated NMS at the model's IoU threshold
tta_model = dict(
    type='RotatedTTAModel',
    tta_cfg=dict(nms=dict(type='nms_rotated', iou_threshold=0.1), max_per_img=2000),
)
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='TestTimeAug',
        transforms=[
            [dict(type='Resize', scale=img_scale, keep_ratio=True)],
            [
                dict(type='RandomFlip', prob=1.0, direction='horizontal'),
                dict(type='RandomFlip', prob=1.0, direction='vertical'),
                dict(type='RandomFlip', prob=0.0),
            ],
            [dict(type='LoadAnnotations', with_bbox=True, box_type='qbox')],
            [dict(type='ConvertBoxType', box_type_mapping=dict(gt_bboxes='rbox'))],
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
