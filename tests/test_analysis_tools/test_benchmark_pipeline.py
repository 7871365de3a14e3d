"""tools/analysis_tools/benchmark_pipeline.py: the v2-L recipe's real train pipeline on generated
COCO data, Albu dropped without albumentations."""

import importlib.util
import os.path as osp

import numpy as np

from ai4rs.utils.cli import load_config
from tests.conftest import REPO_ROOT

V2_L = osp.join(
    REPO_ROOT,
    'configs',
    'yolo_world_v2',
    'yolo_world_v2_l_vlpan_bn_2e-4_80e_8gpus_mask-refine_finetune_coco.py',
)


def load_tool():
    path = osp.join(REPO_ROOT, 'tools', 'analysis_tools', 'benchmark_pipeline.py')
    spec = importlib.util.spec_from_file_location('ai4rs_benchmark_pipeline_tool', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_drop_transforms_also_inside_mixing_pre_transforms():
    tool = load_tool()
    inner = [dict(type='LoadImageFromFile'), dict(type='Albu'), dict(type='RandomFlip')]
    pipeline = [
        dict(type='Albu'),
        dict(type='YOLOv5MixUp', pre_transform=inner),
        dict(type='PackDetInputs'),
    ]
    kept, dropped = tool.drop_transforms(pipeline, 'Albu')
    assert dropped == 2
    assert [s['type'] for s in kept] == ['YOLOv5MixUp', 'PackDetInputs']
    assert [s['type'] for s in kept[0]['pre_transform']] == ['LoadImageFromFile', 'RandomFlip']
    assert len(pipeline[1]['pre_transform']) == 3  # the input is not modified


def test_benchmark_runs_the_v2_l_recipe_pipeline(tmp_path, capsys):
    tool = load_tool()
    cfg = load_config(V2_L)
    dataset_cfg = tool.point_to_synthetic(tool.train_dataset_cfg(cfg), str(tmp_path / 'd'))
    types = [s['type'] for s in dataset_cfg['pipeline']]
    # the recipe's own stage-1 pipeline, pointed at the generated set
    for name in (
        'MultiModalMosaic',
        'YOLOv5CopyPaste',
        'YOLOv5RandomAffine',
        'YOLOv5MultiModalMixUp',
        'YOLOv5HSVRandomAug',
        'RandomLoadText',
    ):
        assert name in types
    affine = dataset_cfg['pipeline'][types.index('YOLOv5RandomAffine')]
    assert affine['use_mask_refine'] is True
    assert np.allclose(affine['scaling_ratio_range'], (0.1, 1.9))  # L: affine_scale 0.9
    assert dataset_cfg['dataset']['data_root'] == str(tmp_path / 'd')
    assert ('Albu' in types) == tool.albumentations_installed()

    fps = tool.main(
        [V2_L, '--num-images', '4', '--img-size', '96', '--num-iters', '3', '--warmup', '1']
    )
    out = capsys.readouterr().out
    assert fps > 0
    assert f'train pipeline {fps:.2f} images/s per worker' in out
    assert ('Albu step(s) dropped' in out) == (not tool.albumentations_installed())
