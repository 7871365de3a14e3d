"""The DOTA-v1.5 / v2.0 rotated YOLOX recipes: their classes, data and split configs, and one
training iteration + validation through their own pipelines on DOTA-format files written here
(objects of the classes v1.0 does not have among them)."""

import json
import math
import os.path as osp
from pprint import pformat

import cv2
import numpy as np
import pytest
from mmengine.config import Config

from ai4rs.utils.config import load_config
from tests.conftest import REPO_ROOT
from tests.test_datasets.test_dior_hrsc import Recorder, shrink

RECIPES = {
    'v15': ('rotated_yolox_s_300e_dotav15_le90.py', 16, 'DOTAv15Dataset', ['container-crane']),
    'v2': ('rotated_yolox_s_300e_dotav2_le90.py', 18, 'DOTAv2Dataset', ['airport', 'helipad']),
}
SHRINK_1024 = {(1024, 1024): (64, 64), (2048, 2048): (128, 128)}


def _write_split(root, names):
    """trainval/images + annfiles: 2 images of 64 px, 2 objects each (one of ``names``)."""
    rng = np.random.default_rng(0)
    for folder in ('images', 'annfiles'):
        (root / 'trainval' / folder).mkdir(parents=True)
    for i in range(2):
        img = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
        cv2.imwrite(str(root / 'trainval' / 'images' / f'p{i}.png'), img)
        lines = [
            f'10 10 30 10 30 24 10 24 {names[i % len(names)]} 0',
            '36 30 56 34 54 46 34 42 plane 0',
        ]
        (root / 'trainval' / 'annfiles' / f'p{i}.txt').write_text('\n'.join(lines) + '\n')


@pytest.mark.parametrize('version', sorted(RECIPES))
def test_dota_version_recipe_trains_one_iteration_and_validates(version, tmp_path, monkeypatch):
    from ai4rs.datasets.dota import DOTA_V1_CLASSES
    from ai4rs.engine.runner import build_runner
    from ai4rs.registry import DATASETS
    from ai4rs.utils import register_all_modules

    name, num_classes, dataset_type, new_classes = RECIPES[version]
    register_all_modules(init_default_scope=False)
    monkeypatch.setattr(Config, 'pretty_text', property(lambda self: pformat(self.to_dict())))
    cfg = load_config(osp.join(REPO_ROOT, 'configs', 'rotated_yolox', name))
    assert cfg.model.bbox_head.num_classes == num_classes
    classes = DATASETS.get(dataset_type).METAINFO['classes']
    assert len(classes) == num_classes and tuple(classes[:15]) == tuple(DOTA_V1_CLASSES)
    extra = ['container-crane'] + (['airport', 'helipad'] if version == 'v2' else [])
    assert list(classes[15:]) == extra
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[key].dataset.type == dataset_type
    # the split configs the recipe names exist and write where the recipe reads
    for split in ('trainval', 'test'):
        path = osp.join(
            REPO_ROOT, 'tools/data/dota/split/split_configs', f'ss_{split}_{version}.json'
        )
        with open(path) as f:
            split_cfg = json.load(f)
        assert split_cfg['save_dir'].startswith(cfg.train_dataloader.dataset.data_root)
    # the class texts of the version, in class order
    texts_file = {'v15': 'dota_v15_class_texts.json', 'v2': 'dota_v2_class_texts.json'}[version]
    with open(osp.join(REPO_ROOT, 'configs/_base_/texts', texts_file)) as f:
        assert len(json.load(f)) == num_classes

    data_root = tmp_path / 'data'
    _write_split(data_root, new_classes)
    cfg.work_dir = str(tmp_path / 'work')
    for key in ('train_dataloader', 'val_dataloader'):
        loader = cfg[key]
        loader.batch_size, loader.num_workers = 2, 0
        loader.persistent_workers = False
        loader.dataset.data_root = str(data_root) + '/'
        cfg[key] = shrink(loader.to_dict(), SHRINK_1024)
    cfg.model = shrink(cfg.model.to_dict(), SHRINK_1024)
    cfg.custom_hooks = shrink([h.to_dict() for h in cfg.custom_hooks], SHRINK_1024)
    cfg.train_cfg.max_epochs = 1
    cfg.train_cfg.val_interval = 1
    cfg.train_cfg.dynamic_intervals = None
    cfg.default_hooks.checkpoint.save_last = False
    cfg.model.test_cfg.score_thr = 0.0
    cfg.randomness = dict(seed=0)
    cfg.visualizer.name = f'visualizer:{tmp_path}'
    runner = build_runner(cfg)
    recorder = Recorder()
    runner.register_hook(recorder)
    runner.train()
    assert runner.iter == 1
    assert all(math.isfinite(v) for v in recorder.outputs.values()), recorder.outputs
    labels = set()
    for sample in recorder.batch['data_samples']:
        assert sample.gt_instances.bboxes.tensor.shape[1] == 5
        labels |= set(sample.gt_instances.labels.tolist())
    # the new classes' objects get their own labels, past v1.0's 15 (the augmentation may
    # crop some objects away)
    assert labels <= {0} | {classes.index(c) for c in new_classes}
    assert max(labels) >= 15
    assert 0.0 <= recorder.metrics['dota/AP50'] <= 1.0
