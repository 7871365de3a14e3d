"""A rotated YOLOX overfits one image until every object is found: AP50 = 1.0."""
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope

from ai4rs.datasets.preparation.synthetic_dota import generate_dataset
from ai4rs.evaluation.functional import eval_rbbox_map
from ai4rs.registry import DATASETS, MODELS
from ai4rs.utils import register_all_modules
from tests.conftest import REPO_ROOT

CONFIG = osp.join(REPO_ROOT, 'configs', 'rotated_yolox', 'rotated_yolox_quickstart_synthetic.py')


@pytest.mark.slow
def test_overfit_one_image_to_ap50_of_one(tmp_path):
    register_all_modules(init_default_scope=False)
    generate_dataset(str(tmp_path), num_train=1, num_val=0, img_size=192, seed=5)
    cfg = Config.fromfile(CONFIG)
    dataset_cfg = cfg.val_dataloader.dataset  # no random augmentation
    dataset_cfg.update(data_root=str(tmp_path) + '/', ann_file='train/annfiles/',
                       data_prefix=dict(img_path='train/images/'))
    dataset_cfg.pipeline[1] = dict(type='Resize', scale=(192, 192), keep_ratio=True)
    with DefaultScope.overwrite_default_scope('ai4rs'):
        dataset = DATASETS.build(dataset_cfg)
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
    item = dataset[0]
    gt = item['data_samples'].gt_instances
    assert len(gt) >= 3
    model.init_weights()
    model.bbox_head.use_l1 = True
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(150):
        data = model.data_preprocessor(pseudo_collate([item]), True)
        losses = model(**data, mode='loss')
        loss = sum(v for k, v in losses.items() if 'loss' in k)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        pred = model.test_step(pseudo_collate([item]))[0].pred_instances
    boxes = pred.bboxes.tensor.numpy()
    dets = [np.concatenate([boxes[pred.labels.numpy() == c],
                            pred.scores.numpy()[pred.labels.numpy() == c, None]], 1)
            for c in range(3)]
    ann = dict(bboxes=gt.bboxes.tensor.numpy(), labels=gt.labels.numpy(),
               bboxes_ignore=np.zeros((0, 5)), labels_ignore=np.zeros(0, np.int64))
    mean_ap, results = eval_rbbox_map([dets], [ann], iou_thr=0.5, logger='silent')
    assert mean_ap == 1.0, [(r['num_gts'], r['ap']) for r in results]
