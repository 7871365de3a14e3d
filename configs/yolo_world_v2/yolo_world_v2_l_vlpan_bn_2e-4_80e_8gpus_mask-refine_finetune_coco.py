# YOLO-World v2-L fine-tuned on COCO: AdamW 2e-4, 80 epochs, mask refinement, 8 GPUs x 16 images.
# Published by upstream (COCO val2017): AP 53.9, AP50 70.9, AP75 58.8 (zero-shot 45.1).
_base_ = './yolo_world_v2_s_vlpan_bn_2e-4_80e_8gpus_mask-refine_finetune_coco.py'

load_from = 'pretrained_models/yolo_world_l_clip_t2i_bn_2e-3adamw_32xb16-100e_obj365v1_goldg_cc3mlite_train-ca93cd1f.pth'  # noqa: E501
deepen_factor = 1.0
widen_factor = 1.0
last_stage_out_channels = 512
neck_embed_channels = [128, 256, last_stage_out_channels // 2]
neck_num_heads = [4, 8, last_stage_out_channels // 2 // 32]
affine_scale = 0.9
mixup_prob = 0.15
copypaste_prob = 0.3

model = dict(
    backbone=dict(
        image_model=dict(
            last_stage_out_channels=last_stage_out_channels,
            deepen_factor=deepen_factor,
            widen_factor=widen_factor,
        )
    ),
    neck=dict(
        deepen_factor=deepen_factor,
        widen_factor=widen_factor,
        in_channels=[256, 512, last_stage_out_channels],
        out_channels=[256, 512, last_stage_out_channels],
        embed_channels=neck_embed_channels,
        num_heads=neck_num_heads,
    ),
    bbox_head=dict(
        head_module=dict(widen_factor=widen_factor, in_channels=[256, 512, last_stage_out_channels])
    ),
)

# the pipelines depend on the augmentation strengths above, so they are rebuilt here
pre_transform = _base_.pre_transform
last_transform = _base_.last_transform
text_transform = _base_.text_transform
img_scale = _base_.img_scale
mosaic_affine_transform = [
    dict(type='MultiModalMosaic', img_scale=img_scale, pad_val=114.0, pre_transform=pre_transform),
    dict(type='YOLOv5CopyPaste', prob=copypaste_prob),
    dict(
        type='YOLOv5RandomAffine',
        max_rotate_degree=0.0,
        max_shear_degree=0.0,
        max_aspect_ratio=_base_.max_aspect_ratio,
        scaling_ratio_range=(1 - affine_scale, 1 + affine_scale),
        border=(-img_scale[0] // 2, -img_scale[1] // 2),
        border_val=(114, 114, 114),
        min_area_ratio=_base_.min_area_ratio,
        use_mask_refine=_base_.use_mask2refine,
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
        max_aspect_ratio=_base_.max_aspect_ratio,
        border_val=(114, 114, 114),
        min_area_ratio=_base_.min_area_ratio,
        use_mask_refine=_base_.use_mask2refine,
    ),
    *last_transform,
    *text_transform,
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
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
        switch_epoch=_base_.max_epochs - _base_.close_mosaic_epochs,
        switch_pipeline=train_pipeline_stage2,
    ),
]
