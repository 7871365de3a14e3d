# Open-vocabulary oriented detection on DOTA-v1.0 (le90, 1024-px split): YOLO-World v2-S whose head
# predicts rotated boxes (RotatedYOLOWorldHead), fine-tuned from upstream's YOLO-World v2-S COCO
# checkpoint. Classes are named by the texts of class_text_path; the model detects whatever texts
# it is given at test time. See docs/yolo_world_rotated.md.
#
# Data: tools/data/dota/ splits DOTA into 1024-px patches (data/split_ss_dota/, as the rotated
# YOLOX recipes). Training: the rotated YOLOX augmentation (cached mosaic, random resize, rotation,
# crop, HSV, flips, cached mix-up; plain resize/rotate/crop for the last epochs) followed by
# YOLO-World's text sampling; YOLO-World's AdamW fine-tuning (2e-4, weight decay 0.05, text model
# frozen) for 36 epochs with the last 6 without mosaic / mix-up. These are ai4rs's choices
# (no upstream recipe exists); they are not a published result.
_base_ = ['../yolo_world_v2/yolo_world_v2_s_vlpan_bn_2e-4_80e_8gpus_mask-refine_finetune_coco.py']

# ======================== settings you are likely to change ========================
# upstream's YOLO-World v2-S fine-tuned on COCO (its weights load into every layer but the angle
# branch; tools/train.py prints the load report)
load_from = (
    'pretrained_models/yolo_world_v2_s_vlpan_bn_2e-4_80e_8gpus_mask-refine_finetune_coco.pth'  # noqa: E501
)
data_root = 'data/split_ss_dota/'
class_text_path = '{{ fileDirname }}/../_base_/texts/dota_v1_class_texts.json'
train_batch_size_per_gpu = 8
train_num_workers = 8
# contiguous: channels-last measured 1.01x a 1024-px training step on CPU (docs/model_zoo.md)
channels_last = False

# ======================== recipe ========================
angle_version = 'le90'
num_classes = 15
num_training_classes = 15
max_epochs = 36
close_mosaic_epochs = 6
save_epoch_intervals = 6
img_scale = (1024, 1024)
base_lr = 2e-4
strides = [8, 16, 32]
text_channels = 512
widen_factor = 0.5
last_stage_out_channels = 1024
norm_cfg = dict(type='BN', momentum=0.03, eps=0.001)
act_cfg = dict(type='SiLU', inplace=True)

model = dict(
    num_train_classes=num_training_classes,
    num_test_classes=num_classes,
    data_preprocessor=dict(
        type='YOLOWDetDataPreprocessor',
        mean=[0.0, 0.0, 0.0],
        std=[255.0, 255.0, 255.0],
        bgr_to_rgb=True,
        pad_size_divisor=32,
        # rotated ground truth stays a RotatedBoxes object (as the rotated YOLOX recipes)
        boxtype2tensor=False,
    ),
    bbox_head=dict(
        _delete_=True,
        type='RotatedYOLOWorldHead',
        head_module=dict(
            type='RotatedYOLOWorldHeadModule',
            use_bn_head=True,
            embed_dims=text_channels,
            num_classes=num_training_classes,
            in_channels=[256, 512, last_stage_out_channels],
            widen_factor=widen_factor,
            reg_max=16,
            angle_out_dim=1,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
            featmap_strides=strides,
        ),
        prior_generator=dict(type='MlvlPointGenerator', offset=0.5, strides=strides),
        bbox_coder=dict(type='DistanceAnglePointCoder', angle_version=angle_version),
        angle_version=angle_version,
        angle_coder=dict(type='PseudoAngleCoder'),
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True, reduction='none', loss_weight=0.5),
        loss_bbox=dict(type='RotatedIoULoss', mode='linear', reduction='sum', loss_weight=7.5),
        loss_dfl=dict(type='DistributionFocalLoss', reduction='mean', loss_weight=1.5 / 4),
    ),
    train_cfg=dict(
        _delete_=True,
        assigner=dict(
            type='BatchRotatedTaskAlignedAssigner',
            num_classes=num_training_classes,
            topk=10,
            alpha=0.5,
            beta=6.0,
            eps=1e-9,
        ),
    ),
    test_cfg=dict(
        _delete_=True,
        multi_label=True,
        nms_pre=30000,
        score_thr=0.01,
        nms=dict(type='nms_rotated', iou_threshold=0.1),
        max_per_img=2000,
    ),
)

# ======================== data ========================
backend_args = None
text_transform = [
    dict(
        type='RandomLoadText',
        num_neg_samples=(num_classes, num_classes),
        max_num_samples=num_training_classes,
        padding_to_max=True,
        padding_value='',
    ),
    dict(
        type='PackDetInputs',
        meta_keys=(
            'img_id',
            'img_path',
            'ori_shape',
            'img_shape',
            'flip',
            'flip_direction',
            'texts',
        ),
    ),
]
load_rotated = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True, box_type='qbox'),
    dict(type='ConvertBoxType', box_type_mapping=dict(gt_bboxes='rbox')),
]
train_pipeline = [
    *load_rotated,
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
    *text_transform,
]
train_pipeline_stage2 = [
    *load_rotated,
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
    *text_transform,
]
val_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, box_type='qbox'),
    dict(type='ConvertBoxType', box_type_mapping=dict(gt_bboxes='rbox')),
    dict(type='Pad', size=img_scale, pad_val=dict(img=(114, 114, 114))),
    dict(type='LoadText'),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'texts'),
    ),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='Pad', size=img_scale, pad_val=dict(img=(114, 114, 114))),
    dict(type='LoadText'),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'texts'),
    ),
]

train_dataloader = dict(
    _delete_=True,
    batch_size=train_batch_size_per_gpu,
    num_workers=train_num_workers,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='MultiModalDataset',
        dataset=dict(
            type='DOTADataset',
            data_root=data_root,
            ann_file='trainval/annfiles/',
            data_prefix=dict(img_path='trainval/images/'),
            filter_cfg=dict(filter_empty_gt=True),
        ),
        class_text_path=class_text_path,
        pipeline=train_pipeline,
    ),
)
val_dataloader = dict(
    _delete_=True,
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='MultiModalDataset',
        dataset=dict(
            type='DOTADataset',
            data_root=data_root,
            ann_file='trainval/annfiles/',
            data_prefix=dict(img_path='trainval/images/'),
            test_mode=True,
        ),
        class_text_path=class_text_path,
        pipeline=val_pipeline,
    ),
)
# DOTA's test split has no labels: inference writes the Task1 submission (merged patches)
test_dataloader = dict(
    _delete_=True,
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='MultiModalDataset',
        dataset=dict(
            type='DOTADataset',
            data_root=data_root,
            ann_file='',
            data_prefix=dict(img_path='test/images/'),
            test_mode=True,
        ),
        class_text_path=class_text_path,
        pipeline=test_pipeline,
    ),
)
val_evaluator = dict(_delete_=True, type='DOTAMetric', metric='mAP')
test_evaluator = dict(
    _delete_=True,
    type='DOTAMetric',
    format_only=True,
    merge_patches=True,
    outfile_prefix='{work_dir}/{timestamp}/Task1',
)

# ======================== schedule ========================
optim_wrapper = dict(
    optimizer=dict(lr=base_lr, batch_size_per_gpu=train_batch_size_per_gpu),
)
default_hooks = dict(
    param_scheduler=dict(max_epochs=max_epochs),
    checkpoint=dict(interval=save_epoch_intervals, max_keep_ckpts=3),
)
custom_hooks = [
    dict(
        type='EMAHook',
        ema_type='ExpMomentumEMA',
        momentum=0.0001,
        update_buffers=True,
        strict_load=False,
        priority=49,
    ),
    dict(
        type='PipelineSwitchHook',
        switch_epoch=max_epochs - close_mosaic_epochs,
        switch_pipeline=train_pipeline_stage2,
    ),
]
train_cfg = dict(
    max_epochs=max_epochs,
    val_interval=save_epoch_intervals,
    dynamic_intervals=[(max_epochs - close_mosaic_epochs, 2)],
)
# 8 GPUs x 8 images
auto_scale_lr = dict(enable=False, base_batch_size=8 * train_batch_size_per_gpu)

# Test-time augmentation (tools/test.py --tta): the image and its horizontal and vertical flips,
# at the test scale, merged by rotated NMS (mmrotate's RotatedTTAModel), as the rotated YOLOX
# recipes: an aerial object has no up or left (training flips in all three directions) and a
# flip maps back exactly. RandomFlip comes before Pad; the texts are loaded once and reach
# every view (each view's labels index the same texts).
tta_model = dict(
    type='RotatedTTAModel',
    tta_cfg=dict(nms=dict(type='nms_rotated', iou_threshold=0.1), max_per_img=2000),
)
tta_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadText'),
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
                        'texts',
                    ),
                )
            ],
        ],
    ),
]
