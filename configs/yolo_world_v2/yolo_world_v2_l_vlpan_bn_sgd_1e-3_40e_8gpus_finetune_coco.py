# YOLO-World v2-L fine-tuned on COCO with SGD 1e-3 for 40 epochs, without mask refinement or copy-paste
# (mosaic is closed for the last 30 epochs). Published by upstream (COCO val2017): AP 52.8, AP50 69.5,
# AP75 57.8.
_base_ = './yolo_world_v2_l_vlpan_bn_2e-4_80e_8gpus_mask-refine_finetune_coco.py'

max_epochs = 40
close_mosaic_epochs = 30
base_lr = 1e-3
weight_decay = 0.0005

pre_transform = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True)]
last_transform = _base_.last_transform[1:]  # no gt_masks to remove
text_transform = _base_.text_transform
img_scale = _base_.img_scale
affine_scale = _base_.affine_scale
mosaic_affine_transform = [
    dict(type='MultiModalMosaic', img_scale=img_scale, pad_val=114.0, pre_transform=pre_transform),
    dict(
        type='YOLOv5RandomAffine',
        max_rotate_degree=0.0,
        max_shear_degree=0.0,
        max_aspect_ratio=100.0,
        scaling_ratio_range=(1 - affine_scale, 1 + affine_scale),
        border=(-img_scale[0] // 2, -img_scale[1] // 2),
        border_val=(114, 114, 114),
    ),
]
train_pipeline = [
    *pre_transform,
    *mosaic_affine_transform,
    dict(
        type='YOLOv5MultiModalMixUp',
        prob=_base_.mixup_prob,
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
        max_aspect_ratio=100,
        border_val=(114, 114, 114),
    ),
    *last_transform,
    *text_transform,
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

optim_wrapper = dict(
    optimizer=dict(
        _delete_=True,
        type='SGD',
        lr=base_lr,
        momentum=0.937,
        nesterov=True,
        weight_decay=weight_decay,
        batch_size_per_gpu=_base_.train_batch_size_per_gpu,
    )
)
default_hooks = dict(param_scheduler=dict(max_epochs=max_epochs))
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
    dynamic_intervals=[(max_epochs - close_mosaic_epochs, _base_.val_interval_stage2)],
)
