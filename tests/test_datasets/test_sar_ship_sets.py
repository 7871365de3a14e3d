"""SSDD and RSDD-SAR in mmrotate 1.x's layouts (COCO json with polygon segmentations): the
documented conversion (tools/dataset_converters/coco2dota.py) and then the project's dataset
configs (configs/_base_/datasets/ssdd.py, rsdd.py) read them as DOTA-style sets of one class."""

import importlib.util
import json
import math
import os.path as osp

import cv2
import numpy as np
import pytest
import torch

from ai4rs.utils.config import load_config
from tests.conftest import REPO_ROOT

LAYOUTS = {
    # name: (train json, train images, train annfiles, test json, test images, test annfiles)
    'ssdd': (
        'train/train.json',
        'train/images',
        'train/annfiles',
        'test/all/test.json',
        'test/all/images',
        'test/all/annfiles',
    ),
    'rsdd': (
        'ImageSets/train.json',
        'JPEGImages',
        'annfiles/train',
        'ImageSets/test.json',
        'JPEGImages',
        'annfiles/test',
    ),
}


def _rect(cx, cy, w, h, t):
    """The 4 corners of a rotated rectangle (t radians, clockwise on screen), flat list."""
    c, s = math.cos(t), math.sin(t)
    pts = []
    for dx, dy in ((-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)):
        pts += [cx + c * dx - s * dy, cy + s * dx + c * dy]
    return pts


def _write_split(root, ann, img_dir, stem, ships):
    """One 96 x 80 jpg and its COCO json with the ships' polygons (5 points: a corner
    repeated, as annotation tools write closed rings)."""
    (root / img_dir).mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(root / img_dir / f'{stem}.jpg'), np.full((80, 96, 3), 40, np.uint8))
    anns = []
    for i, ship in enumerate(ships):
        poly = _rect(*ship)
        anns.append(
            dict(
                id=i + 1,
                image_id=1,
                category_id=1,
                segmentation=[poly + poly[:2]],
                area=ship[2] * ship[3],
                bbox=[min(poly[0::2]), min(poly[1::2]), 1, 1],
                iscrowd=0,
            )
        )
    coco = dict(
        images=[dict(id=1, file_name=f'{stem}.jpg', width=96, height=80)],
        annotations=anns,
        categories=[dict(id=1, name='ship')],
    )
    path = root / ann
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(coco))


@pytest.mark.parametrize('name', sorted(LAYOUTS))
def test_converted_sar_set_reads_as_one_class_dota_set(name, tmp_path):
    from mmengine.registry import DefaultScope

    from ai4rs.evaluation.metrics import DOTAMetric
    from ai4rs.registry import DATASETS
    from ai4rs.utils import register_all_modules

    register_all_modules(init_default_scope=False)
    train_ann, train_img, train_out, test_ann, test_img, test_out = LAYOUTS[name]
    root = tmp_path / name
    ships = {'train': [(30.0, 30.0, 40.0, 12.0, 0.5)], 'test': [(60.0, 40.0, 30.0, 10.0, -0.3)]}
    _write_split(root, train_ann, train_img, 'a', ships['train'])
    _write_split(root, test_ann, test_img, 'b', ships['test'])
    spec = importlib.util.spec_from_file_location(
        'coco2dota', osp.join(REPO_ROOT, 'tools', 'dataset_converters', 'coco2dota.py')
    )
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    for ann, out in ((train_ann, train_out), (test_ann, test_out)):
        tool.main([str(root / ann), str(root / out)])

    cfg = load_config(osp.join(REPO_ROOT, 'configs', '_base_', 'datasets', f'{name}.py'))
    for key, split in (('train_dataloader', 'train'), ('val_dataloader', 'test')):
        ds_cfg = cfg[key].dataset
        ds_cfg.data_root = str(root) + '/'
        with DefaultScope.overwrite_default_scope('ai4rs'):
            dataset = DATASETS.build(ds_cfg)
        assert dataset.metainfo['classes'] == ('ship',)
        assert len(dataset) == 1
        sample = dataset[0]['data_samples']
        gt = sample.gt_instances
        assert gt.labels.tolist() == [0]
        cx, cy, w, h, t = ships[split][0]
        scale = sample.scale_factor  # the 512 resize of the pipeline (train: after loading)
        box = gt.bboxes.tensor[0].double()
        if split == 'train':
            want = torch.tensor([cx * scale[0], cy * scale[1], w * scale[0], h * scale[1], t])
        else:  # val loads the boxes after Resize: original coordinates
            want = torch.tensor([cx, cy, w, h, t])
        if split == 'test':
            torch.testing.assert_close(box, want.double(), atol=1e-3, rtol=0)
        else:  # after a random flip and the (slightly non-uniform) resize: the size
            assert sorted(box[2:4].tolist()) == pytest.approx(sorted(want[2:4].tolist()), rel=2e-3)

    # DOTAMetric on the test split: the ground truth as the prediction scores AP50 = 1
    metric = DOTAMetric(metric='mAP')
    metric.dataset_meta = dict(classes=('ship',))
    from ai4rs.structures.bbox import RotatedBoxes

    pred = dict(
        bboxes=RotatedBoxes(gt.bboxes.tensor.clone()), scores=torch.ones(1), labels=gt.labels
    )
    metric.process({}, [dict(gt_instances=gt.to_dict(), pred_instances=pred, img_id='b')])
    assert metric.evaluate(1)['dota/AP50'] == pytest.approx(1.0)
