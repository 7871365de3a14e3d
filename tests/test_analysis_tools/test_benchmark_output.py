"""tools/analysis_tools/benchmark.py prints its result, not mmengine's per-parameter init report.

Without ``--checkpoint`` the model is randomly initialised; mmengine's ``init_weights`` reports
every parameter's initialisation at INFO (about 1,000 lines for the quick-start model) when the
logger has no log file, as in this tool.
"""

import os.path as osp
import re
import sys

import pytest

from tests.conftest import REPO_ROOT, run_cmd

BENCHMARK = osp.join(REPO_ROOT, 'tools', 'analysis_tools', 'benchmark.py')
CONFIG = osp.join(REPO_ROOT, 'configs', 'rotated_yolox', 'rotated_yolox_quickstart_synthetic.py')


@pytest.mark.slow
def test_benchmark_prints_its_result_without_init_report(tmp_path):
    proc = run_cmd(
        [
            sys.executable,
            BENCHMARK,
            CONFIG,
            '--shape',
            '64',
            '64',
            '--num-iters',
            '1',
            '--warmup',
            '0',
        ],
        cwd=tmp_path,
        timeout=300,
    )
    lines = (proc.stdout + proc.stderr).splitlines()
    assert re.fullmatch(
        r'rotated_yolox_quickstart_synthetic\.py: [0-9.]+ images/s on cpu \(input 64x64, '
        r'batch 1, 1 iterations, \d+ CPU threads\)',
        proc.stdout.strip(),
    ), proc.stdout
    assert not [line for line in lines if 'torch.Size(' in line or 'Initialized by' in line]
    assert len(lines) < 10, lines[:20]
