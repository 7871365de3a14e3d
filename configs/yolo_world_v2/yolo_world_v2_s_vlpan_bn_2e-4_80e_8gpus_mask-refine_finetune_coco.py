# YOLO-World v2-S fine-tuned on COCO: AdamW 2e-4, 80 epochs, mask refinement, 8 GPUs x 16 images.
# Published by upstream (COCO val2017): AP 46.1, AP50 62.0, AP75 49.9 (zero-shot before fine-tuning 37.5).
# The whole recipe is in this file; the m / l / x / efficient-neck / SGD recipes inherit from it.
_base_ = ['../_base_/default_runtime.py']

# ======================== settings you are likely to change ========================
# Pretrained checkpoint (upstream's O365 + GoldG pre-training), downloaded by you to this path:
load_from = 'pretrained_models/yolo_world_s_clip_t2i_bn_2e-3adamw_32xb16-100e_obj365v1_goldg_train-55b943ea.pth'  # noqa: E501
# CLIP text model: a local directory (e.g. made with `huggingface-cli download
# openai/clip-vit-base-patch32 --local-dir pretrained_models/clip-vit-base-patch32`) or a hub id
# already in the local Hugging Face cache. Nothing is downloaded at run time.
text_model_name = 'openai/clip-vit-base-patch32'
data_root = 'data/coco/'
train_ann_file = 'annotations/instances_train2017.json'
train_data_prefix = 'train2017/'
val_ann_file = 'annotations/instances_val2017.json'
val_data_prefix = 'val2017/'
class_text_path = '{{ fileDirname }}/../_base_/texts/coco_class_texts.json'
train_batch_size_per_gpu = 16
train_num_workers = 8
# train in the channels-last memory format (the Runner converts the model): 0.96x the time of a
# 640-px training step on CPU, the forward 0.86x (profile_train_step.py --compare-channels-last)
channels_last = True
persistent_workers = False

# ======================== recipe ========================
num_classes = 80
num_training_classes = 80
max_epochs = 80
close_mosaic_epochs = 10
save_epoch_intervals = 5
val_interval_stage2 = 1
text_channels = 512
base_lr = 2e-4
weight_decay = 0.05
img_scale = (640, 640)  # (width, height)

deepen_factor = 0.33
widen_factor = 0.5
last_stage_out_channels = 1024
neck_embed_channels = [128, 256, last_stage_out_channels // 2]
neck_num_heads = [4, 8, last_stage_out_channels // 2 // 32]
strides = [8, 16, 32]
norm_cfg = dict(type='BN', momentum=0.03, eps=0.001)
act_cfg = dict(type='SiLU', inplace=True)

affine_scale = 0.5
max_aspect_ratio = 100
min_area_ratio = 0.01
use_mask2refine = True
mixup_prob = 0.15
copypaste_prob = 0.3

model = dict(
    type='YOLOWorldDetector',
    mm_neck=True,
    num_train_classes=num_training_classes,
    num_test_classes=num_classes,
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
            last_stage_out_channels=last_stage_out_channels,
            deepen_factor=deepen_factor,
            widen_factor=widen_factor,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
        ),
        text_model=dict(
            type='HuggingCLIPLanguageBackbone', model_name=text_model_name, frozen_modules=['all']
        ),
    ),
    neck=dict(
        type='YOLOWorldPAFPN',
        deepen_factor=deepen_factor,
        widen_factor=widen_factor,
        in_channels=[256, 512, last_stage_out_channels],
        out_channels=[256, 512, last_stage_out_channels],
        num_csp_blocks=3,
        norm_cfg=norm_cfg,
        act_cfg=act_cfg,
        guide_channels=text_channels,
        embed_channels=neck_embed_channels,
        num_heads=neck_num_heads,
        block_cfg=dict(type='MaxSigmoidCSPLayerWithTwoConv'),
    ),
    bbox_head=dict(
        type='YOLOWorldHead',
        head_module=dict(
            type='YOLOWorldHeadModule',
            use_bn_head=True,
            embed_dims=text_channels,
            num_classes=num_training_classes,
            in_channels=[256, 512, last_stage_out_channels],
            widen_factor=widen_factor,
            reg_max=16,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
            featmap_strides=strides,
        ),
        prior_generator=dict(type='MlvlPointGenerator', offset=0.5, strides=strides),
        bbox_coder=dict(type='DistancePointBBoxCoder'),
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True, reduction='none', loss_weight=0.5),
        loss_bbox=dict(
            type='IoULoss',
            iou_mode='ciou',
            bbox_format='xyxy',
            reduction='sum',
            loss_weight=7.5,
            return_iou=False,
        ),
        loss_dfl=dict(type='DistributionFocalLoss', reduction='mean', loss_weight=1.5 / 4),
    ),
    train_cfg=dict(
        assigner=dict(
            type='BatchTaskAlignedAssigner',
            num_classes=num_training_classes,
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

# ======================== data ========================
pre_transform = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True, mask2bbox=use_mask2refine),
]
albu_train_transforms = [
    dict(type='Blur', p=0.01),
    dict(type='MedianBlur', p=0.01),
    dict(type='ToGray', p=0.01),
    dict(type='CLAHE', p=0.01),
]
last_transform = [
    dict(type='RemoveDataElement', keys=['gt_masks']),
    dict(
        type='Albu',
        transforms=albu_train_transforms,
        bbox_params=dict(
            type='BboxParams',
            format='pascal_voc',
            label_fields=['gt_bboxes_labels', 'gt_ignore_flags'],
        ),
        keymap={'img': 'image', 'gt_bboxes': 'bboxes'},
    ),
    dict(type='YOLOv5HSVRandomAug'),
    dict(type='RandomFlip', prob=0.5),
]
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
mosaic_affine_transform = [
    dict(type='MultiModalMosaic', img_scale=img_scale, pad_val=114.0, pre_transform=pre_transform),
    dict(type='YOLOv5CopyPaste', prob=copypaste_prob),
    dict(
        type='YOLOv5RandomAffine',
        max_rotate_degree=0.0,
        max_shear_degree=0.0,
        max_aspect_ratio=max_aspect_ratio,
        scaling_ratio_range=(1 - affine_scale, 1 + affine_scale),
        border=(-img_scale[0] // 2, -img_scale[1] // 2),
        border_val=(114, 114, 114),
        min_area_ratio=min_area_ratio,
        use_mask_refine=use_mask2refine,
    ),
]
train_pipeline = [
    *pre_transform,
    *mosaic_affine_transform,
    dict(
        type='YOLOv5MultiModalMixUp',
        prob=mixup_prob,
        pre_transform=[*pre_transform, *mosaic_affine_transform],
    ),
    *last_transform,
    *text_transform,
]
train_pipeline_stage2 = [
    *pre_transform,
    dict(type='YOLOv5KeepRatioResize', scale=img_scale),
    dict(type='LetterResize', scale=img_scale, allow_scale_up=True, pad_val=dict(img=114.0)),
    dict(
        type='YOLOv5RandomAffine',
        max_rotate_degree=0.0,
        max_shear_degree=0.0,
        scaling_ratio_range=(1 - affine_scale, 1 + affine_scale),
        max_aspect_ratio=max_aspect_ratio,
        border_val=(114, 114, 114),
        min_area_ratio=min_area_ratio,
        use_mask_refine=use_mask2refine,
    ),
    *last_transform,
    *text_transform,
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='YOLOv5KeepRatioResize', scale=img_scale),
    dict(type='LetterResize', scale=img_scale, allow_scale_up=False, pad_val=dict(img=114)),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='LoadText'),
    dict(
        type='PackDetInputs',
        meta_keys=(
            'img_id',
            'img_path',
            'ori_shape',
            'img_shape',
            'scale_factor',
            'pad_param',
            'texts',
        ),
    ),
]

train_dataloader = dict(
    batch_size=train_batch_size_per_gpu,
    num_workers=train_num_workers,
    persistent_workers=persistent_workers,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='yolow_collate'),
    dataset=dict(
        type='MultiModalDataset',
        dataset=dict(
            type='YOLOv5CocoDataset',
            data_root=data_root,
            ann_file=train_ann_file,
            data_prefix=dict(img=train_data_prefix),
            filter_cfg=dict(filter_empty_gt=False, min_size=32),
        ),
        class_text_path=class_text_path,
        pipeline=train_pipeline,
    ),
)
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=persistent_workers,
    pin_memory=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='MultiModalDataset',
        dataset=dict(
            type='YOLOv5CocoDataset',
            data_root=data_root,
            ann_file=val_ann_file,
            data_prefix=dict(img=val_data_prefix),
            test_mode=True,
            filter_cfg=dict(filter_empty_gt=False, min_size=32),
            batch_shapes_cfg=None,
        ),
        class_text_path=class_text_path,
        pipeline=test_pipeline,
    ),
)
test_dataloader = val_dataloader

val_evaluator = dict(
    type='CocoMetric', proposal_nums=(100, 1, 10), ann_file=data_root + val_ann_file, metric='bbox'
)
test_evaluator = val_evaluator

# ======================== schedule ========================
optim_wrapper = dict(
    type='OptimWrapper',
    clip_grad=dict(max_norm=10.0),
    optimizer=dict(
        type='AdamW',
        lr=base_lr,
        weight_decay=weight_decay,
        batch_size_per_gpu=train_batch_size_per_gpu,
    ),
    paramwise_cfg=dict(
        custom_keys={
            'backbone.text_model': dict(lr_mult=0.01),
            'logit_scale': dict(weight_decay=0.0),
        }
    ),
    constructor='YOLOWv5OptimizerConstructor',
)
param_scheduler = None
default_hooks = dict(
    param_scheduler=dict(
        type='YOLOv5ParamSchedulerHook',
        scheduler_type='linear',
        lr_factor=0.01,
        max_epochs=max_epochs,
    ),
    checkpoint=dict(
        type='CheckpointHook', interval=save_epoch_intervals, save_best=None, max_keep_ckpts=-1
    ),
    visualization=dict(type='DetVisualizationHook'),
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
    type='EpochBasedTrainLoop',
    max_epochs=max_epochs,
    val_interval=5,
    dynamic_intervals=[(max_epochs - close_mosaic_epochs, val_interval_stage2)],
)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

# 8 GPUs x 16 images; --auto-scale-lr scales the learning rate for another total batch size
auto_scale_lr = dict(enable=False, base_batch_size=8 * train_batch_size_per_gpu)
visualizer = dict(
    type='DetLocalVisualizer', vis_backends=[dict(type='LocalVisBackend')], name='visualizer'
)

# Test-time augmentation (tools/test.py --tta), mmyolo's choice for its YOLOv5 / YOLOv8 recipes:
# the letterboxed image at the test scale, half and one and a half times it, each as is and
# flipped horizontally (6 views), merged by NMS (IoU 0.65, 300 per image). RandomFlip comes
# after the letterbox; DetTTAModel undoes it about the letterboxed frame (exact with uneven
# padding). The texts reach every view (each view's labels index the same texts).
tta_model = dict(
    type='DetTTAModel',
    tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.65), max_per_img=300),
)
tta_img_scales = [
    img_scale,
    (img_scale[0] // 2, img_scale[1] // 2),
    (img_scale[0] * 3 // 2, img_scale[1] * 3 // 2),
]
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='TestTimeAug',
        transforms=[
            [
                dict(
                    type='Compose',
                    transforms=[
                        dict(type='YOLOv5KeepRatioResize', scale=s),
                        dict(
                            type='LetterResize',
                            scale=s,
                            allow_scale_up=False,
                            pad_val=dict(img=114),
                        ),
                    ],
                )
                for s in tta_img_scales
            ],
            [dict(type='RandomFlip', prob=1.0), dict(type='RandomFlip', prob=0.0)],
            [dict(type='LoadAnnotations', with_bbox=True)],
            [dict(type='LoadText')],
            [
                dict(
                    type='PackDetInputs',
                    meta_keys=(
                        'img_id',
                        'img_path',
                        'ori_shape',
                        'img_shape',
                        'scale_factor',
                        'pad_param',
                        'flip',
                        'flip_direction',
                        'texts',
                    ),
                )
            ],
        ],
    ),
]
