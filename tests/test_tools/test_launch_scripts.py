"""tools/dist_*.sh and tools/slurm_*.sh share tools/launch_common.sh; the commands they run.

`python` and `srun` are replaced by stubs on PATH that print their arguments, one per line.
"""

import os
import os.path as osp
import subprocess

import pytest

from tests.conftest import REPO_ROOT

TOOLS = osp.join(REPO_ROOT, 'tools')


@pytest.fixture
def stub_path(tmp_path):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    for name in ('python', 'srun'):
        stub = bin_dir / name
        stub.write_text(
            f'#!/bin/sh\necho "{name}"\nfor a in "$@"; do echo "$a"; done\n'
            'echo "PYTHONPATH=$PYTHONPATH"\n'
        )
        stub.chmod(0o755)
    return str(bin_dir)


def _run(script, args, stub_path, **env):
    full_env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'PORT', 'GPUS')}
    full_env.update(PATH=f'{stub_path}:{os.environ["PATH"]}', **env)
    return subprocess.run(
        ['bash', osp.join(TOOLS, script), *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_dist_scripts(stub_path):
    proc = _run(
        'dist_train.sh',
        ['cfg.py', '2', '--work-dir', 'w w', '--cfg-options', 'a=1'],
        stub_path,
        NNODES='2',
        NODE_RANK='1',
        PORT='1234',
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        'python',
        '-m',
        'torch.distributed.run',
        '--nnodes=2',
        '--node_rank=1',
        '--master_addr=127.0.0.1',
        '--nproc_per_node=2',
        '--master_port=1234',
        f'{TOOLS}/train.py',
        'cfg.py',
        '--work-dir',
        'w w',
        '--cfg-options',
        'a=1',
        '--launcher',
        'pytorch',
        f'PYTHONPATH={REPO_ROOT}',
    ]
    proc = _run('dist_test.sh', ['cfg.py', 'ck.pth', '4', '--out', 'r.pkl'], stub_path)
    lines = proc.stdout.splitlines()
    assert lines[1:3] == ['-m', 'torch.distributed.run'] and '--nproc_per_node=4' in lines
    assert '--master_port=29500' in lines
    assert lines[lines.index(f'{TOOLS}/test.py') :] == [
        f'{TOOLS}/test.py',
        'cfg.py',
        'ck.pth',
        '--out',
        'r.pkl',
        '--launcher',
        'pytorch',
        f'PYTHONPATH={REPO_ROOT}',
    ]


def test_slurm_scripts(stub_path):
    proc = _run(
        'slurm_train.sh',
        ['part', 'job', 'cfg.py', 'work', '--amp'],
        stub_path,
        GPUS='4',
        GPUS_PER_NODE='2',
        SRUN_ARGS='--qos=low --time=1',
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        'srun',
        '-p',
        'part',
        '--job-name=job',
        '--gres=gpu:2',
        '--ntasks=4',
        '--ntasks-per-node=2',
        '--cpus-per-task=5',
        '--kill-on-bad-exit=1',
        '--qos=low',
        '--time=1',
        'python',
        '-u',
        f'{TOOLS}/train.py',
        'cfg.py',
        '--work-dir=work',
        '--amp',
        '--launcher',
        'slurm',
        f'PYTHONPATH={REPO_ROOT}',
    ]
    proc = _run('slurm_test.sh', ['part', 'job', 'cfg.py', 'ck.pth'], stub_path)
    lines = proc.stdout.splitlines()
    assert '--ntasks=8' in lines
    assert lines[lines.index(f'{TOOLS}/test.py') :] == [
        f'{TOOLS}/test.py',
        'cfg.py',
        'ck.pth',
        '--launcher',
        'slurm',
        f'PYTHONPATH={REPO_ROOT}',
    ]


@pytest.mark.parametrize(
    'script,args',
    [
        ('dist_train.sh', ['cfg.py']),
        ('dist_test.sh', ['cfg.py', 'ck.pth']),
        ('slurm_train.sh', ['p', 'j', 'cfg.py']),
        ('slurm_test.sh', ['p', 'j', 'cfg.py']),
    ],
)
def test_missing_arguments_give_usage(stub_path, script, args):
    proc = _run(script, args, stub_path)
    assert proc.returncode == 2
    assert f'usage: bash {osp.join(TOOLS, script)} ' in proc.stderr
    assert 'python' not in proc.stdout and 'srun' not in proc.stdout


def test_run_cmd_launchers_use_the_running_interpreter(tmp_path):
    """The real launcher tests (dist_train.sh on CPU) run ``python`` from PATH: run_cmd makes it
    the interpreter running the tests, even with a PATH that has no (or another) python."""
    import sys

    from tests.conftest import run_cmd

    other = tmp_path / 'other'
    other.mkdir()
    (other / 'python').write_text('#!/bin/sh\necho "another python"\n')
    (other / 'python').chmod(0o755)
    proc = run_cmd(
        ['bash', '-c', 'python -c "import sys, torch; print(sys.prefix)"'],
        cwd=tmp_path,
        env=dict(PATH=f'{other}:/usr/bin:/bin'),
        timeout=120,
    )
    assert proc.stdout.strip() == sys.prefix
