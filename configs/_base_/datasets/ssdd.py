# SSDD (SAR ship detection, one class 'ship'; mmrotate 1.x's layout: data/ssdd/train/train.json +
# train/images/, data/ssdd/test/all/test.json + test/all/images/, COCO json with polygon segmentations).
# Its polygons are converted once into DOTA label files (min-area rectangles by ai4rs' rule), then read by
# DOTADataset like any DOTA-style set:
#   python tools/dataset_converters/coco2dota.py data/ssdd/train/train.json data/ssdd/train/annfiles
#   python tools/dataset_converters/coco2dota.py data/ssdd/test/all/test.json data/ssdd/test/all/annfiles
# (mmrotate reads the json with mmdet's CocoDataset + ConvertMask2BoxType and reports RotatedCocoMetric's
# COCO-style AP; here DOTAMetric gives VOC07 AP50: docs/datasets.md.)
dataset_type = 'DOTADataset'
data_root = 'data/ssdd/'
backend_args = None
metainfo = dict(classes=('ship',), palette=[(165, 42, 42)])

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True, box_type='qbox'),
    dict(type='ConvertBoxType', box_type_mapping=dict(gt_bboxes='rbox')),
    dict(type='Resize', scale=(512, 512), keep_ratio=True),
    dict(type='RandomFlip', prob=0.75, direction=['horizontal', 'vertical', 'diagonal']),
    dict(type='PackDetInputs'),
]
val_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=(512, 512), keep_ratio=True),
    # loaded after Resize so that the GT boxes keep the image's coordinates
    dict(type='LoadAnnotations', with_bbox=True, box_type='qbox'),
    dict(type='ConvertBoxType', box_type_mapping=dict(gt_bboxes='rbox')),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'),
    ),
]
test_pipeline = val_pipeline
train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=None,
    dataset=dict(
        type=dataset_type,
        metainfo=metainfo,
        data_root=data_root,
        ann_file='train/annfiles/',
        data_prefix=dict(img_path='train/images/'),
        img_suffix='jpg',
        filter_cfg=dict(filter_empty_gt=True),
        pipeline=train_pipeline,
    ),
)
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        metainfo=metainfo,
        data_root=data_root,
        ann_file='test/all/annfiles/',
        data_prefix=dict(img_path='test/all/images/'),
        img_suffix='jpg',
        test_mode=True,
        pipeline=val_pipeline,
    ),
)
test_dataloader = val_dataloader

val_evaluator = dict(type='DOTAMetric', metric='mAP')
test_evaluator = val_evaluator
