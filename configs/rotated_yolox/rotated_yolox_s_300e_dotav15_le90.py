# Rotated YOLOX-s on DOTA-v1.5 (16 classes: DOTA-v1.0's 15 + container-crane), le90, 300 epochs,
# single scale (1024 px patches, gap 200). DOTA-v1.5 has DOTA-v1.0's images with new labels
# (labelTxt-v1.5, small instances annotated too); split with
#   python tools/data/dota/split/img_split.py --base-json tools/data/dota/split/split_configs/ss_trainval_v15.json
#   python tools/data/dota/split/img_split.py --base-json tools/data/dota/split/split_configs/ss_test_v15.json
# Everything else is the DOTA-v1.0 recipe's (the new class is appended, so its class indices,
# e.g. RandomRotate's rect_obj_labels [9, 11] = storage-tank, roundabout, are unchanged).
# No published result for this recipe.
_base_ = ['./rotated_yolox_s_300e_dota_le90.py']

data_root = 'data/split_ss_dota_v15/'
dataset_type = 'DOTAv15Dataset'

model = dict(bbox_head=dict(num_classes=16))
train_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
val_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
test_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
test_evaluator = dict(outfile_prefix='./work_dirs/rotated_yolox_s_300e_dotav15_le90/Task1')
