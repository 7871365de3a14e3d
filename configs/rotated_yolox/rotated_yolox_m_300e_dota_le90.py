# Rotated YOLOX-m: deepen 0.67, widen 0.75.
# Published (DOTA test server): AP50 76.70, AP75 54.95, mAP 49.51.
_base_ = './rotated_yolox_s_300e_dota_le90.py'

model = dict(
    backbone=dict(deepen_factor=0.67, widen_factor=0.75),
    neck=dict(in_channels=[192, 384, 768], out_channels=192, num_csp_blocks=2),
    bbox_head=dict(in_channels=192, feat_channels=192),
)
test_evaluator = dict(outfile_prefix='./work_dirs/rotated_yolox_m_300e_dota_le90/Task1')
