# Rotated YOLOX-tiny: YOLOX-s with widen factor 0.375.
# Published (DOTA test server): AP50 73.38, AP75 46.58, mAP 44.96.
_base_ = './rotated_yolox_s_300e_dota_le90.py'

model = dict(
    backbone=dict(deepen_factor=0.33, widen_factor=0.375),
    neck=dict(in_channels=[96, 192, 384], out_channels=96),
    bbox_head=dict(in_channels=96, feat_channels=96),
)
test_evaluator = dict(outfile_prefix='./work_dirs/rotated_yolox_t_300e_dota_le90/Task1')
