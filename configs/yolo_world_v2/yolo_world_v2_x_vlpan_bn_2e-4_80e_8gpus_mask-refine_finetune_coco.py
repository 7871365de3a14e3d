# YOLO-World v2-X fine-tuned on COCO: AdamW 2e-4, 80 epochs, mask refinement, 8 GPUs x 16 images.
# Published by upstream (COCO val2017): AP 54.7, AP50 71.6, AP75 59.6 (zero-shot 46.8).
# The v2-L recipe at widen factor 1.25 (upstream's X differs from its L only there and in the
# pretrained checkpoint).
_base_ = './yolo_world_v2_l_vlpan_bn_2e-4_80e_8gpus_mask-refine_finetune_coco.py'

load_from = 'pretrained_models/yolo_world_x_clip_t2i_bn_2e-3adamw_32xb16-100e_obj365v1_goldg_cc250k_train_lviseval-8698fbfa.pth'  # noqa: E501
widen_factor = 1.25

model = dict(
    backbone=dict(image_model=dict(widen_factor=widen_factor)),
    neck=dict(widen_factor=widen_factor),
    bbox_head=dict(head_module=dict(widen_factor=widen_factor)),
)
