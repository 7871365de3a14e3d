"""tools/train.py, tools/test.py and tools/dist_train.sh on a tiny project, on CPU.

Every test runs the tools from a temporary working directory (not the
repository), with PYTHONPATH unset. The toy project lives in that directory,
not in ai4rs, and is loaded through ``custom_imports``: the tools must find
``projects.*`` by themselves.
"""

import glob
import json
import os.path as osp
import pickle
import sys

import pytest
import torch

from tests.conftest import REPO_ROOT, free_port, run_cmd

TRAIN = osp.join(REPO_ROOT, 'tools', 'train.py')
TEST = osp.join(REPO_ROOT, 'tools', 'test.py')


def _load(path):
    from ai4rs.utils import load_checkpoint_safely

    return load_checkpoint_safely(path)


def _scalars(work_dir):
    """The records of mmengine's scalars.json files under ``work_dir``, in order."""
    records = []
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            records += [json.loads(line) for line in f if line.strip()]
    return records


def test_train_resume_equals_uninterrupted_training(toy_project):
    # 3 epochs in one go
    run_cmd(
        [
            sys.executable,
            TRAIN,
            'toy_config.py',
            '--work-dir',
            'straight',
            '--cfg-options',
            'train_cfg.max_epochs=3',
        ],
        cwd=toy_project,
    )
    # 2 epochs, then --resume (latest checkpoint of the work dir) to 3
    run_cmd([sys.executable, TRAIN, 'toy_config.py', '--work-dir', 'resumed'], cwd=toy_project)
    assert osp.isfile(toy_project / 'resumed' / 'epoch_2.pth')
    assert not osp.exists(toy_project / 'resumed' / 'epoch_3.pth')
    proc = run_cmd(
        [
            sys.executable,
            TRAIN,
            'toy_config.py',
            '--work-dir',
            'resumed',
            '--resume',
            '--cfg-options',
            'train_cfg.max_epochs=3',
        ],
        cwd=toy_project,
    )
    log = proc.stdout + proc.stderr
    assert 'resumed epoch: 2' in log
    assert 'Epoch(train) [1]' not in log and 'Epoch(train) [3]' in log

    straight = _load(toy_project / 'straight' / 'epoch_3.pth')
    resumed = _load(toy_project / 'resumed' / 'epoch_3.pth')
    assert straight['meta']['epoch'] == resumed['meta']['epoch'] == 3
    # the optimizer's momentum buffers were restored, so the weights are identical
    for key, value in straight['state_dict'].items():
        torch.testing.assert_close(resumed['state_dict'][key], value, rtol=0, atol=1e-6)
    mom_s = [s['momentum_buffer'] for s in straight['optimizer']['state'].values()]
    mom_r = [s['momentum_buffer'] for s in resumed['optimizer']['state'].values()]
    for a, b in zip(mom_s, mom_r):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    # the MultiStepLR state (milestone at epoch 1) was restored with the checkpoint
    assert resumed['optimizer']['param_groups'][0]['lr'] == pytest.approx(0.025)


def test_resume_from_explicit_checkpoint_and_test_tool(toy_project):
    run_cmd(
        [
            sys.executable,
            TRAIN,
            'toy_config.py',
            '--work-dir',
            'w1',
            '--cfg-options',
            'train_cfg.max_epochs=1',
        ],
        cwd=toy_project,
    )
    ckpt = str(toy_project / 'w1' / 'epoch_1.pth')
    proc = run_cmd(
        [
            sys.executable,
            TRAIN,
            'toy_config.py',
            '--work-dir',
            'w2',
            '--resume',
            ckpt,
            '--cfg-options',
            'train_cfg.max_epochs=4',
        ],
        cwd=toy_project,
    )
    assert 'resumed epoch: 1' in proc.stdout + proc.stderr
    final = str(toy_project / 'w2' / 'epoch_4.pth')
    assert osp.isfile(final)

    # evaluate: the toy task is learnt, predictions dumped and drawn
    proc = run_cmd(
        [
            sys.executable,
            TEST,
            'toy_config.py',
            final,
            '--work-dir',
            'w_test',
            '--out',
            'preds.pkl',
            '--show-dir',
            'vis',
        ],
        cwd=toy_project,
    )
    log = proc.stdout + proc.stderr
    assert 'toy/accuracy: 1.0000' in log, log[-3000:]
    with open(toy_project / 'preds.pkl', 'rb') as f:
        preds = pickle.load(f)
    assert len(preds) == 16
    assert {'pred_instances', 'img_path'} <= set(preds[0])
    assert 'gt_instances' not in preds[0]
    drawn = glob.glob(str(toy_project / 'w_test' / '*' / 'vis' / '*.png'))
    assert len(drawn) == 16


def test_amp_training_on_cpu(toy_project):
    run_cmd(
        [
            sys.executable,
            TRAIN,
            'toy_config.py',
            '--work-dir',
            'amp',
            '--amp',
            '--cfg-options',
            'train_cfg.max_epochs=1',
        ],
        cwd=toy_project,
    )
    ckpt = _load(toy_project / 'amp' / 'epoch_1.pth')
    assert 'loss_scaler' in ckpt['optimizer']
    records = [r for r in _scalars(toy_project / 'amp') if 'loss' in r]
    assert records and all(torch.isfinite(torch.tensor(r['loss'])) for r in records)


def test_auto_scale_lr(toy_project):
    # base batch 4; batch 8 doubles the lr from 0.05 to 0.1
    run_cmd(
        [
            sys.executable,
            TRAIN,
            'toy_config.py',
            '--work-dir',
            'scaled',
            '--auto-scale-lr',
            '--cfg-options',
            'train_cfg.max_epochs=1',
            'train_dataloader.batch_size=8',
            'param_scheduler=[]',
        ],
        cwd=toy_project,
    )
    ckpt = _load(toy_project / 'scaled' / 'epoch_1.pth')
    assert ckpt['optimizer']['param_groups'][0]['lr'] == pytest.approx(0.1)


@pytest.mark.slow
def test_dist_train_two_cpu_processes(toy_project):
    proc = run_cmd(
        [
            'bash',
            osp.join(REPO_ROOT, 'tools', 'dist_train.sh'),
            'toy_config.py',
            '2',
            '--work-dir',
            'dist',
        ],
        cwd=toy_project,
        env=dict(PORT=str(free_port())),
    )
    log = proc.stdout + proc.stderr
    assert osp.isfile(toy_project / 'dist' / 'epoch_2.pth')
    assert 'Distributed training: True' in log
    assert 'world_size: 2' in log or "'world_size': 2" in log or 'GPU number: 2' in log, log[-3000:]
    # each of the 2 processes sees half of the 16 images: 2 iterations of batch 4 per epoch
    assert 'Epoch(train) [2][2/2]' in log
    ckpt = _load(toy_project / 'dist' / 'epoch_2.pth')
    assert ckpt['meta']['iter'] == 4


def test_print_config_resolves_base_and_options(toy_project):
    proc = run_cmd(
        [
            sys.executable,
            osp.join(REPO_ROOT, 'tools', 'misc', 'print_config.py'),
            'toy_config.py',
            '--cfg-options',
            'train_cfg.max_epochs=7',
        ],
        cwd=toy_project,
    )
    assert "default_scope = 'ai4rs'" in proc.stdout
    assert 'max_epochs=7' in proc.stdout
    assert "type='RotLocalVisualizer'" in proc.stdout


def test_relative_resume_path_is_looked_up_in_the_work_dir(toy_project):
    run_cmd(
        [sys.executable, TRAIN, 'toy_config.py', '--work-dir', 'w', '--cfg-options']
        + ['train_cfg.max_epochs=1'],
        cwd=toy_project,
    )
    # as docs/train_test.md's example: the file name only, the work dir on the command line
    proc = run_cmd(
        [sys.executable, TRAIN, 'toy_config.py', '--work-dir', 'w', '--resume', 'epoch_1.pth']
        + ['--cfg-options', 'train_cfg.max_epochs=2'],
        cwd=toy_project,
    )
    assert 'resumed epoch: 1' in proc.stdout + proc.stderr
    assert osp.isfile(toy_project / 'w' / 'epoch_2.pth')
    # a missing file: one line naming both places, no traceback
    proc = run_cmd(
        [sys.executable, TRAIN, 'toy_config.py', '--work-dir', 'w', '--resume', 'epoch_9.pth'],
        cwd=toy_project,
        check=False,
    )
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f'error: --resume epoch_9.pth: no such checkpoint (tried {toy_project}/epoch_9.pth '
        f'and {toy_project}/w/epoch_9.pth)'
    )


def test_an_image_given_as_checkpoint_is_not_a_pytorch_checkpoint(toy_project):
    jpeg = toy_project / 'photo.jpg'
    jpeg.write_bytes(b'\xff\xd8\xff\xe0\x00\x10JFIF\x00' + bytes(64))
    proc = run_cmd(
        [sys.executable, TEST, 'toy_config.py', str(jpeg), '--work-dir', 'w'],
        cwd=toy_project,
        check=False,
    )
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f'error: {jpeg} is not a PyTorch checkpoint: it is a JPEG image')
    assert 'execute' not in proc.stderr
