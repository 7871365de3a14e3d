"""The YOLO-World v2 recipes in configs/yolo_world_v2/ build exactly upstream's networks.

Each recipe's model (with a CLIP text model of ViT-B/32's dimensions, randomly initialised and
written to a temporary directory) has the state_dict keys, shapes and order, and the parameter
counts, of the upstream config of the same name (tests/data/yolo_world_v2_state_dict_keys.json,
built from upstream's code).
"""

import glob
import json
import os.path as osp

import pytest
from mmengine.config import Config

from ai4rs.registry import MODELS
from tests.conftest import DATA_DIR, REPO_ROOT

pytest.importorskip('transformers')

RECIPES = sorted(
    p
    for p in glob.glob(osp.join(REPO_ROOT, 'configs', 'yolo_world_v2', '*.py'))
    if 'quickstart' not in p and '_rep_' not in p  # Rep recipes: test_yolo_world_rep.py
)
B32_TEXT = dict(
    weights=False,
    hidden_size=512,
    intermediate_size=2048,
    num_hidden_layers=12,
    num_attention_heads=8,
    vocab_size=49408,
)


@pytest.fixture(scope='module')
def b32_clip_dir(tmp_path_factory):
    from ai4rs.testing.tiny_clip import make_tiny_clip

    return make_tiny_clip(tmp_path_factory.mktemp('clip_b32'), **B32_TEXT)


@pytest.fixture(scope='module')
def reference():
    with open(osp.join(DATA_DIR, 'yolo_world_v2_state_dict_keys.json')) as f:
        return json.load(f)


def test_every_published_recipe_is_here():
    names = {osp.splitext(osp.basename(p))[0] for p in RECIPES}
    assert names == {
        'yolo_world_v2_s_vlpan_bn_2e-4_80e_8gpus_mask-refine_finetune_coco',
        'yolo_world_v2_m_vlpan_bn_2e-4_80e_8gpus_mask-refine_finetune_coco',
        'yolo_world_v2_l_vlpan_bn_2e-4_80e_8gpus_mask-refine_finetune_coco',
        'yolo_world_v2_x_vlpan_bn_2e-4_80e_8gpus_mask-refine_finetune_coco',
        'yolo_world_v2_l_efficient_neck_2e-4_80e_8gpus_mask-refine_finetune_coco',
        'yolo_world_v2_l_vlpan_bn_sgd_1e-3_40e_8gpus_finetune_coco',
    }


@pytest.mark.parametrize('path', RECIPES, ids=lambda p: osp.basename(p)[:-3])
def test_recipe_model_equals_upstream(path, b32_clip_dir, reference):
    cfg = Config.fromfile(path)
    cfg.model.backbone.text_model.model_name = b32_clip_dir
    model = MODELS.build(cfg.model)
    ref = dict(reference[osp.splitext(osp.basename(path))[0]])
    params = ref.pop('_params')
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert list(ours) == list(ref)  # same keys in the same order
    assert ours == ref
    assert sum(p.numel() for p in model.parameters()) == params['total']
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == params['trainable']
