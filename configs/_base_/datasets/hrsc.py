# HRSC2016, one class ('ship'; HRSCDataset(classwise=True) for the 31 classes), images
# resized to fit 800 x 512 (as mmrotate's HRSC configs); trained on ImageSets/trainval.txt,
# evaluated on test.txt. Folder layout and the XML fields: docs/datasets.md, "HRSC2016".
dataset_type = 'HRSCDataset'
data_root = 'data/hrsc/'
backend_args = None

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True, box_type='qbox'),
    dict(type='ConvertBoxType', box_type_mapping=dict(gt_bboxes='rbox')),
    dict(type='Resize', scale=(800, 512), keep_ratio=True),
    dict(type='RandomFlip', prob=0.75, direction=['horizontal', 'vertical', 'diagonal']),
    dict(type='PackDetInputs'),
]
val_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=(800, 512), keep_ratio=True),
    # loaded after Resize so that the GT boxes keep the image's coordinates
    dict(type='LoadAnnotations', with_bbox=True, box_type='qbox'),
    dict(type='ConvertBoxType', box_type_mapping=dict(gt_bboxes='rbox')),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'),
    ),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=(800, 512), keep_ratio=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'),
    ),
]
train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=None,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='ImageSets/trainval.txt',
        data_prefix=dict(sub_data_root='FullDataSet/'),
        filter_cfg=dict(filter_empty_gt=True),
        pipeline=train_pipeline,
        backend_args=backend_args,
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
        data_root=data_root,
        ann_file='ImageSets/test.txt',
        data_prefix=dict(sub_data_root='FullDataSet/'),
        test_mode=True,
        pipeline=val_pipeline,
        backend_args=backend_args,
    ),
)
test_dataloader = val_dataloader

# HRSC2016 is reported as mAP07 (VOC07, 11 points) and mAP12 (VOC12, area under the
# precision-recall curve): the same DOTAMetric twice, one per eval_mode, with their own
# prefixes (keys 'hrsc07/AP50', 'hrsc12/AP50', ...; a prefix each, so that no key is
# reported twice)
val_evaluator = [
    dict(type='DOTAMetric', metric='mAP', eval_mode='11points', iou_thrs=0.5, prefix='hrsc07'),
    dict(type='DOTAMetric', metric='mAP', eval_mode='area', iou_thrs=0.5, prefix='hrsc12'),
]
test_evaluator = val_evaluator
