# YOLO-World v2-S, reparameterized fine-tuning on COCO (upstream's
# finetune_coco/yolo_world_v2_s_rep_vlpan_bn_2e-4_80e_8gpus_mask-refine_finetune_coco.py):
# the 80 COCO class texts are folded into the weights, so no text model is built and the
# detector trains and runs as a closed-set YOLOv8 (labels 0..79 = the texts, in order).
# Make the checkpoint first (docs/yolo_world.md, "Reparameterized fine-tuning"):
#   python tools/model_converters/reparameterize_yolo_world.py \
#       pretrained_models/yolo_world_s_clip_t2i_bn_2e-3adamw_32xb16-100e_obj365v1_goldg_train-55b943ea.pth \
#       --texts configs/_base_/texts/coco_class_texts.json \
#       --config configs/yolo_world_v2/yolo_world_v2_s_vlpan_bn_2e-4_80e_8gpus_mask-refine_finetune_coco.py \
#       --out pretrained_models/yolo_world_v2_s_rep_conv_coco.pth
# Everything else (schedule, augmentation, evaluation) is the non-Rep recipe's.
_base_ = './yolo_world_v2_s_vlpan_bn_2e-4_80e_8gpus_mask-refine_finetune_coco.py'

load_from = 'pretrained_models/yolo_world_v2_s_rep_conv_coco.pth'
num_classes = 80  # the number of texts folded in by the converter

model = dict(
    type='SimpleYOLOWorldDetector',
    reparameterized=True,
    num_train_classes=num_classes,
    num_test_classes=num_classes,
    data_preprocessor=dict(type='YOLOv5DetDataPreprocessor'),
    backbone=dict(text_model=None, with_text_model=False),
    neck=dict(
        guide_channels=num_classes,
        block_cfg=dict(type='RepConvMaxSigmoidCSPLayerWithTwoConv'),
    ),
    bbox_head=dict(
        head_module=dict(
            type='RepYOLOWorldHeadModule', num_guide=num_classes, num_classes=num_classes
        )
    ),
    train_cfg=dict(assigner=dict(num_classes=num_classes)),
)

# ======================== closed-set data (no texts) ========================
# the non-Rep pipelines with the multi-modal mixing replaced by the plain one and no text
# loading: the labels are the dataset's category indices
pre_transform = _base_.pre_transform
img_scale = _base_.img_scale
meta_keys = ('img_id', 'img_path', 'ori_shape', 'img_shape', 'flip', 'flip_direction')
mosaic_affine_transform = [
    dict(type='Mosaic', img_scale=img_scale, pad_val=114.0, pre_transform=pre_transform),
    dict(type='YOLOv5CopyPaste', prob=_base_.copypaste_prob),
    dict(
        type='YOLOv5RandomAffine',
        max_rotate_degree=0.0,
        max_shear_degree=0.0,
        max_aspect_ratio=_base_.max_aspect_ratio,
        scaling_ratio_range=(1 - _base_.affine_scale, 1 + _base_.affine_scale),
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
        type='YOLOv5MixUp',
        prob=_base_.mixup_prob,
        pre_transform=[*pre_transform, *mosaic_affine_transform],
    ),
    *_base_.last_transform,
    dict(type='PackDetInputs', meta_keys=meta_keys),
]
train_pipeline_stage2 = [
    *[
        t
        for t in _base_.train_pipeline_stage2
        if t['type'] not in ('RandomLoadText', 'PackDetInputs')
    ],
    dict(type='PackDetInputs', meta_keys=meta_keys),
]
test_pipeline = [
    *[t for t in _base_.test_pipeline if t['type'] not in ('LoadText', 'PackDetInputs')],
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'pad_param'),
    ),
]
train_dataloader = dict(
    collate_fn=dict(type='yolow_collate'),
    dataset=dict(_delete_=True, **_base_.train_dataloader.dataset.dataset, pipeline=train_pipeline),
)
val_dataloader = dict(
    dataset=dict(_delete_=True, **_base_.val_dataloader.dataset.dataset, pipeline=test_pipeline)
)
test_dataloader = val_dataloader
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
