# Rotated YOLOX-s on multi-scale DOTA patches: split with
#   python tools/data/dota/split/img_split.py --base-json tools/data/dota/split/split_configs/ms_trainval.json
#   python tools/data/dota/split/img_split.py --base-json tools/data/dota/split/split_configs/ms_test.json
# (rates 0.5 / 1.0 / 1.5, gap 500) into data/split_ms_dota/. Not trained by us: no published number.
_base_ = './rotated_yolox_s_300e_dota_le90.py'

data_root = 'data/split_ms_dota/'
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = dict(dataset=dict(data_root=data_root))
test_evaluator = dict(outfile_prefix='./work_dirs/rotated_yolox_s_300e_dota_ms_le90/Task1')
