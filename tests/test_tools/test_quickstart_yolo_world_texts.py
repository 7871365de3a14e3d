"""``tools/quickstart_yolo_world.py --texts``: checked against the trained names before training.

With the tiny random text model the quick start writes, an untrained text means nothing (the
demo would label shapes with it at random), so it is refused; with a real CLIP
(``--text-model``) it is accepted with a warning.
"""

import importlib.util
import os.path as osp
import sys

import pytest

from tests.conftest import REPO_ROOT, run_cmd

SCRIPT = osp.join(REPO_ROOT, 'tools', 'quickstart_yolo_world.py')


@pytest.fixture(scope='module')
def quickstart():
    spec = importlib.util.spec_from_file_location('quickstart_yolo_world_tool', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_untrained_text_refused_before_anything_is_written(tmp_path):
    proc = run_cmd(
        [
            sys.executable,
            SCRIPT,
            '--texts',
            'purple hexagon',
            '--data-root',
            'd',
            '--work-dir',
            'w',
        ],
        cwd=tmp_path,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "--texts: 'purple hexagon' not among the trained names" in proc.stderr
    assert 'red circle, blue square, green triangle, yellow star' in proc.stderr
    # refused before the dataset, the text model or any training
    assert not (tmp_path / 'd').exists() and not (tmp_path / 'w').exists()


def test_trained_names_in_any_case_and_order_accepted(quickstart, capsys):
    args = quickstart.parse_args(['--texts', 'Yellow  star, blue square'])
    assert args.texts == 'Yellow  star, blue square'
    assert 'warning' not in capsys.readouterr().err
    assert quickstart.untrained_texts(['RED circle', 'red circles', 'dog']) == [
        'red circles',
        'dog',
    ]
    with pytest.raises(SystemExit):
        quickstart.parse_args(['--texts', 'blue square,purple hexagon'])
    assert "'purple hexagon' not among" in capsys.readouterr().err


def test_untrained_text_with_own_clip_warns(quickstart, capsys, tmp_path):
    args = quickstart.parse_args(['--texts', 'purple hexagon', '--text-model', str(tmp_path)])
    assert args.texts == 'purple hexagon'
    err = capsys.readouterr().err
    assert "warning: --texts: 'purple hexagon' not among the trained names" in err
