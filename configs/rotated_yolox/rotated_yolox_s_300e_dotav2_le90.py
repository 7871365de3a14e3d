# Rotated YOLOX-s on DOTA-v2.0 (18 classes: DOTA-v1.5's 16 + airport, helipad), le90, 300 epochs,
# single scale (1024 px patches, gap 200). DOTA-v2.0 has its own images (up to about 20,000 px a
# side: split with fewer processes, nproc 4, for memory) and labels (labelTxt-v2.0); its test
# set is test-dev:
#   python tools/data/dota/split/img_split.py --base-json tools/data/dota/split/split_configs/ss_trainval_v2.json
#   python tools/data/dota/split/img_split.py --base-json tools/data/dota/split/split_configs/ss_test_v2.json
# Everything else is the DOTA-v1.0 recipe's (new classes are appended: class indices such as
# RandomRotate's rect_obj_labels [9, 11] = storage-tank, roundabout are unchanged).
# No published result for this recipe.
_base_ = ['./rotated_yolox_s_300e_dota_le90.py']

data_root = 'data/split_ss_dota_v2/'
dataset_type = 'DOTAv2Dataset'

model = dict(bbox_head=dict(num_classes=18))
train_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
val_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
test_dataloader = dict(
    dataset=dict(
        type=dataset_type, data_root=data_root, data_prefix=dict(img_path='test-dev/images/')
    )
)
test_evaluator = dict(outfile_prefix='./work_dirs/rotated_yolox_s_300e_dotav2_le90/Task1')
