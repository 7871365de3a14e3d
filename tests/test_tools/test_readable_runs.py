"""The terminal of train/test starts with a one-line summary; the environment, config and hook
dumps (hundreds of lines) go to the log file only."""

import glob
import os.path as osp
import sys

from tests.conftest import REPO_ROOT, run_cmd

TRAIN = osp.join(REPO_ROOT, 'tools', 'train.py')


def test_train_terminal_summary_and_full_log_file(toy_project):
    proc = run_cmd(
        [
            sys.executable,
            TRAIN,
            'toy_config.py',
            '--work-dir',
            'w',
            '--cfg-options',
            'train_cfg.max_epochs=1',
        ],
        cwd=toy_project,
    )
    terminal = proc.stdout + proc.stderr
    for dump in (
        'System environment:',
        'Runtime environment:',
        'Config:\n',
        'Hooks will be executed in the following order',
    ):
        assert dump not in terminal, dump
    log_file = glob.glob(str(toy_project / 'w' / '*' / '*.log'))[0]
    summary = next(line for line in terminal.splitlines() if 'toy_config.py: work dir' in line)
    assert 'Distributed training: False, GPU number: 1' in summary
    assert f'environment, config and hooks in {log_file}' in summary
    # the summary is among the first lines, before training starts
    lines = terminal.splitlines()
    assert lines.index(summary) < 5
    assert lines.index(summary) < next(i for i, ln in enumerate(lines) if 'Epoch(train)' in ln)
    log = open(log_file).read()
    for dump in ('System environment:', 'Config:\n', 'Hooks will be executed in the following'):
        assert dump in log, dump
    assert 'Epoch(train) [1]' in log and 'Epoch(train) [1]' in terminal
