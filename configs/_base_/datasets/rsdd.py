# RSDD-SAR (SAR ship detection, one class 'ship'; mmrotate 1.x's layout: data/rsdd/JPEGImages/,
# data/rsdd/ImageSets/train.json and test.json, COCO json with polygon segmentations).
# Its polygons are converted once into DOTA label files (min-area rectangles by ai4rs' rule), then read by
# DOTADataset like any DOTA-style set, as SSDD (this file changes only the layout of ssdd.py):
#   python tools/dataset_converters/coco2dota.py data/rsdd/ImageSets/train.json data/rsdd/annfiles/train
#   python tools/dataset_converters/coco2dota.py data/rsdd/ImageSets/test.json data/rsdd/annfiles/test
# (mmrotate reads the json with mmdet's CocoDataset + ConvertMask2BoxType and reports RotatedCocoMetric's
# COCO-style AP; here DOTAMetric gives VOC07 AP50: docs/datasets.md.)
_base_ = ['./ssdd.py']

data_root = 'data/rsdd/'
train_dataloader = dict(
    dataset=dict(
        data_root=data_root, ann_file='annfiles/train/', data_prefix=dict(img_path='JPEGImages/')
    )
)
val_dataloader = dict(
    dataset=dict(
        data_root=data_root, ann_file='annfiles/test/', data_prefix=dict(img_path='JPEGImages/')
    )
)
test_dataloader = val_dataloader
