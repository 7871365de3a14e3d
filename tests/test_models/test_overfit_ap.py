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
    dataset_cfg.update(
        data_root=str(tmp_path) + '/',
        ann_file='train/annfiles/',
        data_prefix=dict(img_path='train/images/'),
    )
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
    # Train until every object is found, checking every 25 steps from step 150 on, with a
    # generous cap: where exactly a run crosses the line depends on the last bits of the
    # CPU's floating point (150 fixed steps passed on one machine and not on another).
    history = []
    for step in range(1, MAX_STEPS + 1):
        model.train()
        data = model.data_preprocessor(pseudo_collate([item]), True)
        losses = model(**data, mode='loss')
        loss = sum(v for k, v in losses.items() if 'loss' in k)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step >= 150 and step % 25 == 0:
            mean_ap, per_class = _ap50(model, item, gt)
            history.append((step, mean_ap, per_class))
            if mean_ap == 1.0:
                break
    print(f'overfit: AP50 = 1.0 reached at step {history[-1][0]}', history)
    assert history[-1][1] == 1.0, history


MAX_STEPS = 600


def _ap50(model, item, gt):
    """AP50 of the model's predictions on the training image, and (GT count, AP) per class."""
    model.eval()
    with torch.no_grad():
        pred = model.test_step(pseudo_collate([item]))[0].pred_instances
    boxes = pred.bboxes.tensor.numpy()
    labels = pred.labels.numpy()
    dets = [
        np.concatenate([boxes[labels == c], pred.scores.numpy()[labels == c, None]], 1)
        for c in range(3)
    ]
    ann = dict(
        bboxes=gt.bboxes.tensor.numpy(),
        labels=gt.labels.numpy(),
        bboxes_ignore=np.zeros((0, 5)),
        labels_ignore=np.zeros(0, np.int64),
    )
    mean_ap, results = eval_rbbox_map([dets], [ann], iou_thr=0.5, logger='silent')
    return mean_ap, [(r['num_gts'], round(float(r['ap']), 3)) for r in results]
