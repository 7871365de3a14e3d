# Open-vocabulary oriented detection on DOTA-v1.0 (le90, 1024-px split): the v2-S recipe
# (yolo_world_rotated_v2_s_vlpan_bn_2e-4_36e_dota_le90.py) with YOLO-World v2-M's network
# (deepen 0.67, widen 0.75, last stage 768 channels; neck attention sized from it, as
# configs/yolo_world_v2/yolo_world_v2_m_vlpan_*.py), fine-tuned from upstream's YOLO-World v2-M
# COCO checkpoint. Data, augmentation, schedule and batch (8 GPUs x 8 images: YOLO-World keeps
# one per-GPU batch for S, M and L) are the S recipe's; YOLO-World's M-specific augmentation
# strengths (affine scale 0.9, copy-paste 0.1, mix-up 0.1) belong to its YOLOv5 affine
# pipeline, which the rotated recipes do not use. ai4rs's choices (no upstream recipe exists),
# not a published result.
_base_ = ['./yolo_world_rotated_v2_s_vlpan_bn_2e-4_36e_dota_le90.py']

# upstream's YOLO-World v2-M fine-tuned on COCO (every layer but the angle branch loads)
load_from = (
    'pretrained_models/yolo_world_v2_m_vlpan_bn_2e-4_80e_8gpus_mask-refine_finetune_coco.pth'  # noqa: E501
)

deepen_factor = 0.67
widen_factor = 0.75
last_stage_out_channels = 768
neck_embed_channels = [128, 256, last_stage_out_channels // 2]
neck_num_heads = [4, 8, last_stage_out_channels // 2 // 32]

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
