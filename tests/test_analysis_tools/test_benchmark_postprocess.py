"""tools/analysis_tools/benchmark_postprocess.py: exactly N boxes per image enter NMS by
construction, and every stage is timed and printed."""

import importlib.util
import os.path as osp
import sys

import torch

from tests.conftest import REPO_ROOT

TOOL = osp.join(REPO_ROOT, 'tools', 'analysis_tools', 'benchmark_postprocess.py')
ROTATED = osp.join(REPO_ROOT, 'configs', 'rotated_yolox', 'rotated_yolox_quickstart_synthetic.py')
WORLD = osp.join(REPO_ROOT, 'configs', 'yolo_world_v2', 'yolo_world_v2_quickstart_synthetic.py')


def _tool():
    sys.path.insert(0, osp.dirname(TOOL))
    try:
        spec = importlib.util.spec_from_file_location('benchmark_postprocess_tool', TOOL)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(osp.dirname(TOOL))
    return module


def test_plant_scores_lets_exactly_n_priors_pass_with_one_class_each():
    tool = _tool()
    gen = torch.Generator().manual_seed(0)
    ctr = torch.rand(2, 500, 2, generator=gen) * 300
    boxes = torch.cat([ctr, torch.full((2, 500, 2), 10.0), torch.zeros(2, 500, 1)], -1)
    scores = torch.rand(2, 500, 6, generator=gen)  # most above the threshold before planting
    planted = tool.plant_scores(boxes, scores, 0.3, 64)
    above = planted > 0.3
    assert above.any(-1).sum(-1).tolist() == [64, 64]
    assert int(above.sum(-1).max()) == 1
    assert bool((planted[~above] <= 0.15).all())
    # the chosen priors are clustered: each lies at most as far from its nearest chosen
    # neighbour as the median prior from its own nearest neighbour among all priors
    chosen = above.any(-1)[0]
    d_chosen = torch.cdist(ctr[0, chosen], ctr[0, chosen]).fill_diagonal_(1e9).min(1).values
    d_all = torch.cdist(ctr[0], ctr[0]).fill_diagonal_(1e9).min(1).values
    assert float(d_chosen.median()) <= float(d_all.median())


def test_rotated_yolox_run_puts_n_boxes_into_nms_and_prints_every_stage(capsys):
    t, info = _tool().main(
        [ROTATED, '--shape', '128', '--boxes', '100', '--batch-size', '2', '--iters', '1']
    )
    assert info['entered'] == [100, 100]
    assert 0 < info['kept'] <= 200
    assert set(t) == {'network', 'select', 'nms', 'rest', 'per-image', 'batched'}
    assert all(v > 0 for v in t.values()), t
    out = capsys.readouterr().out
    assert 'input 128x128, batch 2' in out
    for row in ('| network forward |', '| NMS |', '| post-processing, postprocess_batch |'):
        assert row in out


def test_yolo_world_run_with_a_local_text_model(tiny_clip_dir, capsys):
    t, info = _tool().main(
        [WORLD, '--shape', '96', '--boxes', '50', '--num-texts', '5', '--iters', '1']
        + ['--text-model', tiny_clip_dir]
    )
    assert info['entered'] == [50]
    assert '5 classes' in capsys.readouterr().out
