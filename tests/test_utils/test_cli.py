"""The tools share one parser piece (ai4rs.utils.cli) for config, --cfg-options and launcher."""

import argparse
import glob
import os
import os.path as osp

import pytest

from ai4rs.utils.cli import (
    add_config_arguments,
    add_runner_arguments,
    add_shape_argument,
    parse_tool_args,
    runner_config_from_args,
    shape_from_args,
)
from tests.conftest import REPO_ROOT

QUICKSTART = osp.join(
    REPO_ROOT, 'configs', 'rotated_yolox', 'rotated_yolox_quickstart_synthetic.py'
)


def _tool_sources():
    paths = glob.glob(osp.join(REPO_ROOT, 'tools', '**', '*.py'), recursive=True)
    paths += glob.glob(osp.join(REPO_ROOT, 'demo', '*.py'))
    return {osp.relpath(p, REPO_ROOT): open(p).read() for p in paths}


def test_no_tool_defines_the_shared_options_itself():
    """No tool declares the shared options (an ``add_argument`` of them) or parses configs
    itself; passing ``--cfg-options`` on to a child process is fine."""
    import re

    for name, text in _tool_sources().items():
        for option in ('--cfg-options', '--launcher', '--local_rank'):
            declared = re.search(r"add_argument\(\s*'" + re.escape(option) + "'", text)
            assert declared is None, f'{name} defines {option} itself: use ai4rs.utils.cli'
        for name_used in ('DictAction', 'Config.fromfile'):
            assert name_used not in text, f'{name} uses {name_used} itself: use ai4rs.utils.cli'


def test_runner_arguments_and_config(monkeypatch, tmp_path):
    monkeypatch.setenv('LOCAL_RANK', '0')  # restored (removed) after the test
    monkeypatch.delenv('LOCAL_RANK')
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    add_runner_arguments(parser)
    args = parse_tool_args(
        parser,
        [
            QUICKSTART,
            '--work-dir',
            str(tmp_path),
            '--allow-partial-load',
            '--launcher',
            'pytorch',
            '--local_rank',
            '3',
            '--cfg-options',
            'train_cfg.max_epochs=7',
            'train_dataloader.dataset.pipeline.3.scale=(64,64)',
        ],
    )
    assert osp.basename(args.config) == osp.basename(QUICKSTART)
    assert os.environ['LOCAL_RANK'] == '3'
    cfg = runner_config_from_args(args)
    assert cfg.work_dir == str(tmp_path) and cfg.launcher == 'pytorch'
    assert cfg.allow_partial_load is True
    assert cfg.train_cfg.max_epochs == 7
    assert cfg.train_dataloader.dataset.pipeline[3].scale == (64, 64)
    assert cfg.default_hooks.checkpoint_fit.type == 'CheckpointFitHook'


def test_shape_argument():
    parser = argparse.ArgumentParser()
    add_shape_argument(parser, default=(32, 48))
    assert shape_from_args(parser.parse_args([])) == (32, 48)
    assert shape_from_args(parser.parse_args(['--shape', '64'])) == (64, 64)
    with pytest.raises(SystemExit, match='one or two positive integers'):
        shape_from_args(parser.parse_args(['--shape', '1', '2', '3']))
