"""benchmark_load.py runs each workload in a child process, idle and beside spin processes, and
prints one row per (workload, policy) with both times and their ratio, then the loaded ratio of
the all-cores and the 1-thread op."""

import re
import sys

from tests.conftest import REPO_ROOT, run_cmd


def test_rows_for_each_workload_and_policy(tmp_path):
    proc = run_cmd(
        [
            sys.executable,
            f'{REPO_ROOT}/tools/analysis_tools/benchmark_load.py',
            '--workloads',
            'iou1',
            'iouN',
            'quickstart_step',
            '--policies',
            'default',
            'passive',
            '--repeat',
            '1',
            '--load',
            '1',
        ],
        cwd=tmp_path,
        timeout=600,
    )
    rows = re.findall(
        r'^(\w+)\s+(default|passive)\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)$', proc.stdout, re.M
    )
    assert [(w, p) for w, p, *_ in rows] == [
        ('iou1', 'default'),
        ('iou1', 'passive'),
        ('iouN', 'default'),
        ('iouN', 'passive'),
        ('quickstart_step', 'default'),
        ('quickstart_step', 'passive'),
    ]
    for _, _, idle, loaded, ratio in rows:
        idle, loaded, ratio = float(idle), float(loaded), float(ratio)
        assert idle > 0 and loaded > 0
        assert abs(ratio - loaded / idle) <= 0.01 + 0.01 * ratio  # printed with 4 and 2 decimals
    # the loaded 2-thread / 1-thread ratio of the op, per policy
    loaded = {(w, p): float(t) for w, p, _, t, _ in rows}
    for policy in ('default', 'passive'):
        line = re.search(rf'^loaded iouN / iou1 \({policy}\): ([0-9.]+)$', proc.stdout, re.M)
        expected = loaded['iouN', policy] / loaded['iou1', policy]
        assert abs(float(line.group(1)) - expected) <= 0.02 + 0.02 * expected
