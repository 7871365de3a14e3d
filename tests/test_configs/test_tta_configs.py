"""Every rotated YOLOX, YOLO-World v2 and rotated YOLO-World recipe has a ``tta_model`` and a
``tta_pipeline`` that fit its own test pipeline.

A config that inherits its ``tta_pipeline`` keeps the base's values, so a recipe that changes
its test scale (the 256-px quick starts, the 800-px DIOR / HRSC recipes) must define its own:
the first view's scale must be the test pipeline's. The views must record the flip
(``flip``, ``flip_direction``), carry the texts when the test pipeline does, and load the
annotations when the test pipeline does (the metric then reads them).
"""

import glob
import os.path as osp

import pytest
from mmengine.dataset import Compose
from mmengine.registry import init_default_scope

from ai4rs.registry import MODELS
from ai4rs.utils.config import load_config
from tests.conftest import REPO_ROOT

FAMILIES = ('rotated_yolox', 'yolo_world_v2', 'yolo_world_rotated')
CONFIGS = sorted(
    p for family in FAMILIES for p in glob.glob(osp.join(REPO_ROOT, 'configs', family, '*.py'))
)


def _types(pipeline) -> list:
    return [t['type'] for t in pipeline]


def _first_scale(pipeline):
    """The scale of the first resize of a pipeline (a ``Compose`` is looked into)."""
    for t in pipeline:
        if t['type'] == 'Compose':
            return _first_scale(t['transforms'])
        if 'scale' in t:
            return tuple(t['scale'])
    return None


def _tta_views(cfg):
    (tta,) = [t for t in cfg.tta_pipeline if t['type'] == 'TestTimeAug']
    return tta['transforms']


def test_every_recipe_is_checked():
    names = {osp.basename(p) for p in CONFIGS}
    assert len(CONFIGS) >= 15
    assert {
        'rotated_yolox_quickstart_synthetic.py',
        'yolo_world_v2_quickstart_synthetic.py',
        'yolo_world_rotated_quickstart_synthetic.py',
    } <= names


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_tta_fits_the_test_pipeline(path):
    cfg = load_config(path)
    assert MODELS.get(cfg.tta_model['type']) is not None
    assert cfg.tta_model['tta_cfg']['nms']['iou_threshold'] > 0
    test_pipeline = cfg.test_dataloader.dataset.pipeline
    stages = _tta_views(cfg)
    # the first stage is the resize: its first view is at the test scale
    assert _first_scale(stages[0][:1]) == _first_scale(test_pipeline)
    # flips, before any Pad (a flip after it would be about the padded image)
    flat = [t['type'] for stage in stages for t in stage[:1]]
    assert 'RandomFlip' in flat
    if 'Pad' in flat:
        assert flat.index('RandomFlip') < flat.index('Pad')
    (pack,) = stages[-1]
    assert pack['type'] == 'PackDetInputs'
    assert {'flip', 'flip_direction', 'ori_shape', 'scale_factor'} <= set(pack['meta_keys'])
    test_pack = test_pipeline[-1]
    if 'texts' in test_pack.get('meta_keys', ()):
        assert 'texts' in pack['meta_keys']
        assert 'LoadText' in _types(cfg.tta_pipeline) + flat
    if 'pad_param' in test_pack.get('meta_keys', ()):
        assert 'pad_param' in pack['meta_keys']
    if 'LoadAnnotations' in _types(test_pipeline):
        assert 'LoadAnnotations' in flat
    # the pipeline builds (ai4rs' transforms: the runner's default scope)
    init_default_scope('ai4rs')
    Compose(cfg.tta_pipeline)
