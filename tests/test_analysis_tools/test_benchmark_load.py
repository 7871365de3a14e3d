"""benchmark_load.py runs each workload in a child process, idle and beside spin processes, and
prints one row per (workload, policy) with both times and their ratio, then the loaded ratio of
the all-cores and the 1-thread op."""

import os
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
        r'^(\w+)\s+(default|passive)\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)(?:  \(idle: .*\))?$',
        proc.stdout,
        re.M,
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


def test_default_threads_beside_a_torch_job(tmp_path):
    # the ops' default (iouD) against the explicit 1 thread, beside a one-thread PyTorch job
    proc = run_cmd(
        [
            sys.executable,
            f'{REPO_ROOT}/tools/analysis_tools/benchmark_load.py',
            '--workloads',
            'iou1',
            'iouD',
            '--policies',
            'passive',
            '--repeat',
            '1',
            '--load',
            '1',
            '--load-kind',
            'torch',
        ],
        cwd=tmp_path,
        timeout=600,
    )
    assert 'load: one PyTorch job on 1 threads' in proc.stdout
    rows = re.findall(
        r'^(iou1|iouD)\s+passive\s+([0-9.]+)\s+([0-9.]+)\s+[0-9.]+'
        r'  \(idle: threads ([0-9-]+); loaded: threads ([0-9-]+)\)$',
        proc.stdout,
        re.M,
    )
    assert [r[0] for r in rows] == ['iou1', 'iouD']
    # set_cpu_threads(1) holds the 1-thread run to one thread; the default stays within the cores
    assert rows[0][3:] == ('1', '1')
    for chosen in rows[1][3:]:
        assert 1 <= int(chosen.split('-')[0]) <= int(chosen.split('-')[-1]) <= os.cpu_count()
    times = {w: (float(idle), float(loaded)) for w, idle, loaded, *_ in rows}
    pattern = r'^iouD / iou1 \(passive\): idle ([0-9.]+), loaded ([0-9.]+)$'
    line = re.search(pattern, proc.stdout, re.M)
    for got, i in zip(line.groups(), (0, 1)):
        expected = times['iouD'][i] / times['iou1'][i]
        assert abs(float(got) - expected) <= 0.02 + 0.02 * expected
