# The open-vocabulary quick start: a small YOLO-World v2 (S depth, quarter width) trained from scratch
# on the generated COCO-format shapes (python tools/quickstart_yolo_world.py; or
# tools/data/coco/make_synthetic_coco.py data/synthetic_coco, then tools/train.py with this config and
# --cfg-options model.backbone.text_model.model_name=YOUR_CLIP_DIR). 256-px images, four classes named
# by their texts, CPU-friendly widths, plain letterbox + flip + HSV augmentation.
_base_ = ['./yolo_world_v2_s_vlpan_bn_2e-4_80e_8gpus_mask-refine_finetune_coco.py']

load_from = None
data_root = 'data/synthetic_coco/'
class_text_path = data_root + 'texts/class_texts.json'
classes = ('red circle', 'blue square', 'green triangle', 'yellow star')
metainfo = dict(
    classes=classes, palette=[(220, 40, 40), (40, 80, 220), (40, 180, 60), (230, 210, 40)]
)
num_classes = len(classes)
img_scale = (256, 256)
# contiguous, as the quick-start results in the docs were trained
channels_last = False
max_epochs = 15
train_batch_size_per_gpu = 8
widen_factor = 0.25
last_stage_out_channels = 1024

model = dict(
    num_train_classes=num_classes,
    num_test_classes=num_classes,
    backbone=dict(image_model=dict(widen_factor=widen_factor)),
    neck=dict(widen_factor=widen_factor),
    bbox_head=dict(head_module=dict(widen_factor=widen_factor, num_classes=num_classes)),
    train_cfg=dict(assigner=dict(num_classes=num_classes)),
    test_cfg=dict(score_thr=0.01, max_per_img=100),
)

text_transform = [
    dict(
        type='RandomLoadText',
        num_neg_samples=(num_classes, num_classes),
        max_num_samples=num_classes,
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
            'scale_factor',
            'pad_param',
            'texts',
        ),
    ),
]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='YOLOv5KeepRatioResize', scale=img_scale),
    dict(type='LetterResize', scale=img_scale, allow_scale_up=True, pad_val=dict(img=114.0)),
    dict(type='YOLOv5HSVRandomAug'),
    dict(type='RandomFlip', prob=0.5),
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
    num_workers=2,
    persistent_workers=False,
    pin_memory=False,
    dataset=dict(
        dataset=dict(
            type='CocoDataset',
            data_root=data_root,
            metainfo=metainfo,
            ann_file='annotations/instances_train.json',
            data_prefix=dict(img='train/'),
            filter_cfg=dict(filter_empty_gt=False, min_size=0),
        ),
        class_text_path=class_text_path,
        pipeline=train_pipeline,
    ),
)
val_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=False,
    pin_memory=False,
    dataset=dict(
        dataset=dict(
            _delete_=True,
            type='CocoDataset',
            data_root=data_root,
            metainfo=metainfo,
            test_mode=True,
            ann_file='annotations/instances_val.json',
            data_prefix=dict(img='val/'),
        ),
        class_text_path=class_text_path,
        pipeline=test_pipeline,
    ),
)
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(lr=2e-3, batch_size_per_gpu=train_batch_size_per_gpu))
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    param_scheduler=dict(max_epochs=max_epochs, warmup_epochs=1, warmup_mim_iter=20),
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=1),
)
custom_hooks = [
    dict(
        type='EMAHook',
        ema_type='ExpMomentumEMA',
        momentum=0.0002,
        update_buffers=True,
        strict_load=False,
        priority=49,
    ),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs, dynamic_intervals=None)
auto_scale_lr = dict(enable=False, base_batch_size=train_batch_size_per_gpu)

# a reproducible quick start, as the rotated one (without a seed mmengine draws one per run)
randomness = dict(seed=0, deterministic=False)

# Test-time augmentation (tools/test.py --tta), mmyolo's choice for its YOLOv5 / YOLOv8 recipes:
# the letterboxed image at the test scale, half and one and a half times it, each as is and
# flipped horizontally (6 views), merged by NMS (IoU 0.65, 300 per image). RandomFlip comes
# after the letterbox; DetTTAModel undoes it about the letterboxed frame (exact with uneven
# padding). The texts reach every view (each view's labels index the same texts).
tta_model = dict(
    type='DetTTAModel',
    tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.65), max_per_img=100),
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
