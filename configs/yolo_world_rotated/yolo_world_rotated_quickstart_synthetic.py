# The open-vocabulary oriented quick start: a small rotated YOLO-World v2 (S depth, quarter width)
# trained from scratch on the generated DOTA-style data (python tools/quickstart_yolo_world_rotated.py;
# or tools/data/synthetic/generate_dota_like.py data/synthetic_dota, a class-text file, then
# tools/train.py with this config and
# --cfg-options model.backbone.text_model.model_name=YOUR_CLIP_DIR). 256-px images, three classes
# named by their texts, CPU-friendly widths, resize + flips as the rotated YOLOX quick start.
_base_ = ['./yolo_world_rotated_v2_s_vlpan_bn_2e-4_36e_dota_le90.py']

load_from = None
data_root = 'data/synthetic_dota/'
class_text_path = data_root + 'texts/class_texts.json'
classes = ('vehicle', 'pool', 'court')
metainfo = dict(classes=classes, palette=[(220, 60, 60), (60, 120, 230), (60, 200, 90)])
num_classes = len(classes)
img_scale = (256, 256)
max_epochs = 20
train_batch_size_per_gpu = 8
widen_factor = 0.25

model = dict(
    num_train_classes=num_classes,
    num_test_classes=num_classes,
    backbone=dict(image_model=dict(widen_factor=widen_factor)),
    neck=dict(widen_factor=widen_factor),
    bbox_head=dict(head_module=dict(widen_factor=widen_factor, num_classes=num_classes)),
    train_cfg=dict(assigner=dict(num_classes=num_classes)),
    test_cfg=dict(score_thr=0.05, max_per_img=100),
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
            'texts',
        ),
    ),
]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, box_type='qbox'),
    dict(type='ConvertBoxType', box_type_mapping=dict(gt_bboxes='rbox')),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.75, direction=['horizontal', 'vertical', 'diagonal']),
    *text_transform,
]
val_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, box_type='qbox'),
    dict(type='ConvertBoxType', box_type_mapping=dict(gt_bboxes='rbox')),
    dict(type='LoadText'),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'texts'),
    ),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadText'),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'texts'),
    ),
]

train_dataloader = dict(
    batch_size=train_batch_size_per_gpu,
    num_workers=2,
    persistent_workers=False,
    pin_memory=False,
    dataset=dict(
        dataset=dict(
            data_root=data_root,
            metainfo=metainfo,
            ann_file='train/annfiles/',
            data_prefix=dict(img_path='train/images/'),
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
            data_root=data_root,
            metainfo=metainfo,
            ann_file='val/annfiles/',
            data_prefix=dict(img_path='val/images/'),
        ),
        class_text_path=class_text_path,
        pipeline=val_pipeline,
    ),
)
test_dataloader = val_dataloader
val_evaluator = dict(type='DOTAMetric', metric='mAP')
test_evaluator = dict(_delete_=True, type='DOTAMetric', metric='mAP')

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

# a reproducible quick start (CPU results are repeatable; GPU kernels may still vary slightly)
randomness = dict(seed=0, deterministic=False)

# tools/test.py --tta: the image and its horizontal and vertical flips at this 256-px test
# scale, merged by rotated NMS; the texts are loaded once and reach every view
tta_model = dict(
    type='RotatedTTAModel',
    tta_cfg=dict(nms=dict(type='nms_rotated', iou_threshold=0.1), max_per_img=100),
)
tta_pipeline = [
    dict(type='LoadImageFromFile'),
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
                        'texts',
                    ),
                )
            ],
        ],
    ),
]
