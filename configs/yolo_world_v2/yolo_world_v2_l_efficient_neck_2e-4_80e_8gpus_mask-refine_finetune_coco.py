# YOLO-World v2-L with the efficient neck (the text-guided attention of the neck's CSP layers replaced by
# a plain sigmoid block), otherwise the v2-L AdamW mask-refine recipe.
_base_ = './yolo_world_v2_l_vlpan_bn_2e-4_80e_8gpus_mask-refine_finetune_coco.py'

model = dict(neck=dict(block_cfg=dict(type='EfficientCSPLayerWithTwoConv')))
