"""tools/dist_train.sh, tools/test.py and get_flops.py on rotated YOLOX configs, on CPU."""

import os.path as osp
import re
import sys

import pytest

from ai4rs.datasets.preparation.synthetic_dota import generate_dataset
from tests.conftest import REPO_ROOT, free_port, run_cmd

QUICKSTART = osp.join(
    REPO_ROOT, 'configs', 'rotated_yolox', 'rotated_yolox_quickstart_synthetic.py'
)


@pytest.mark.slow
def test_dist_train_two_cpu_processes_on_quickstart_config(tmp_path):
    data = tmp_path / 'data'
    generate_dataset(str(data), num_train=16, num_val=4)
    opts = [f'{k}_dataloader.dataset.data_root={data}/' for k in ('train', 'val', 'test')]
    opts += [
        'train_cfg.max_epochs=1',
        'train_cfg.val_interval=1',
        'train_dataloader.batch_size=4',
        'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'val_dataloader.num_workers=0',
        'val_dataloader.persistent_workers=False',
        'default_hooks.checkpoint.interval=1',
    ]
    proc = run_cmd(
        [
            'bash',
            osp.join(REPO_ROOT, 'tools', 'dist_train.sh'),
            QUICKSTART,
            '2',
            '--work-dir',
            str(tmp_path / 'work'),
            '--cfg-options',
            *opts,
        ],
        cwd=tmp_path,
        env=dict(PORT=str(free_port())),
    )
    log = proc.stdout + proc.stderr
    assert 'Distributed training: True' in log
    # 16 images, 2 processes x 4 images: 2 iterations per epoch
    assert 'Epoch(train) [1][2/2]' in log
    assert re.search(r'dota/AP50: [0-9.]+', log)
    ckpt = tmp_path / 'work' / 'epoch_1.pth'
    assert ckpt.is_file()
    # the distributed checkpoint loads in tools/test.py (one process) and in
    # tools/dist_test.sh (two processes), which evaluate the same
    test_opts = [
        '--cfg-options',
        f'test_dataloader.dataset.data_root={data}/',
        'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False',
    ]
    proc = run_cmd(
        [
            sys.executable,
            osp.join(REPO_ROOT, 'tools', 'test.py'),
            QUICKSTART,
            str(ckpt),
            '--work-dir',
            str(tmp_path / 'test'),
            *test_opts,
        ],
        cwd=tmp_path,
    )
    single = re.search(r'dota/AP50: ([0-9.]+)', proc.stdout + proc.stderr).group(1)
    proc = run_cmd(
        [
            'bash',
            osp.join(REPO_ROOT, 'tools', 'dist_test.sh'),
            QUICKSTART,
            str(ckpt),
            '2',
            '--work-dir',
            str(tmp_path / 'dist_test'),
            *test_opts,
        ],
        cwd=tmp_path,
        env=dict(PORT=str(free_port())),
    )
    double = re.search(r'dota/AP50: ([0-9.]+)', proc.stdout + proc.stderr).group(1)
    assert single == double


@pytest.mark.parametrize('name,params', [('t', 5037231), ('s', 8943487), ('m', 25289439)])
def test_get_flops_reports_upstream_parameter_counts(name, params):
    cfg = osp.join(REPO_ROOT, 'configs', 'rotated_yolox', f'rotated_yolox_{name}_300e_dota_le90.py')
    proc = run_cmd(
        [
            sys.executable,
            osp.join(REPO_ROOT, 'tools', 'analysis_tools', 'get_flops.py'),
            cfg,
            '--shape',
            '128',
        ],
        cwd=REPO_ROOT,
    )
    assert f'Params: {params:,}' in proc.stdout
    flops = float(re.search(r'Flops: ([0-9.]+) G', proc.stdout).group(1))
    assert flops > 0
