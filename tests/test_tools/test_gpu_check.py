"""tools/misc/gpu_check.py (the one prepared GPU run) and the quick starts' ``--amp``, as far
as a machine without CUDA can check them: options, the no-CUDA exit, the step runner
(statuses, time limits, budget, AP50), and the AMP quick starts on the CPU (bfloat16)."""

import importlib.util
import os.path as osp
import re
import sys

import pytest
import torch

from tests.conftest import REPO_ROOT, run_cmd

GPU_CHECK = osp.join(REPO_ROOT, 'tools', 'misc', 'gpu_check.py')


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_help_and_dry_run_list_the_steps_in_order(tmp_path):
    assert '--wheels' in run_cmd([sys.executable, GPU_CHECK, '--help'], cwd=tmp_path).stdout
    out = run_cmd(
        [sys.executable, GPU_CHECK, '--dry-run', '--epochs', '3', '--world-epochs', '2'],
        cwd=tmp_path,
    ).stdout
    names = re.findall(r'^(\w+) \(limit \d+ s\):', out, re.M)
    assert names == [
        'env',
        'tests',
        'benchmark_ops',
        'inference_eager',
        'inference_mode',
        'inference_bf16',
        'quickstart_amp',
        'quickstart_yolo_world_amp',
    ]
    lines = {n: line for n, line in zip(names, re.split(r'^\w+ \(limit', out, flags=re.M)[1:])}
    assert 'AI4RS_TEST_DEVICES=cuda' in lines['tests'] and '-k cuda' in lines['tests']
    assert '--amp' in lines['quickstart_amp'] and '--epochs 3' in lines['quickstart_amp']
    assert '--epochs 2' in lines['quickstart_yolo_world_amp']
    for name in ('inference_eager', 'inference_mode', 'inference_bf16'):
        assert 'benchmark.py' in lines[name] and '--device cuda' in lines[name]
    assert '--inference-mode' in lines['inference_mode'] and '--bf16' in lines['inference_bf16']
    assert '--inference-mode' not in lines['inference_eager'] + lines['inference_bf16']
    only = run_cmd([sys.executable, GPU_CHECK, '--dry-run', '--only', 'tests'], cwd=tmp_path).stdout
    assert re.findall(r'^(\w+) \(limit', only, re.M) == ['env', 'tests']


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the exit without CUDA')
def test_says_so_and_exits_2_without_a_gpu(tmp_path):
    proc = run_cmd(
        [sys.executable, GPU_CHECK],
        cwd=tmp_path,
        env={'OUT': str(tmp_path)},
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2
    assert 'no CUDA device' in proc.stdout and 'nothing run' in proc.stdout
    assert 'no CUDA device' in (tmp_path / 'gpu_check.log').read_text()
    assert not (tmp_path / 'gpu_check_summary.json').exists()


def test_step_runner_statuses_limits_budget_and_ap50(tmp_path):
    gc = _load(GPU_CHECK, 'gpu_check_under_test')
    log = gc.Log(str(tmp_path / 'log' / 'gpu_check.log'))
    py = sys.executable
    # a step that leaves a child behind: the whole process group is killed at the limit
    sleeper = (
        'import subprocess, sys, time; subprocess.Popen([sys.executable, "-c", '
        '"import time; time.sleep(60)"]); print("started", flush=True); time.sleep(60)'
    )
    step_list = [
        ('env', [py, '-c', 'print("env fine")'], {}),
        ('tests', [py, '-c', 'import sys; print("boom"); sys.exit(3)'], {}),
        ('benchmark_ops', [py, '-c', sleeper], {}),
        (
            'quickstart_amp',
            [py, '-c', 'import os; print("AP50: " + os.environ["X"])'],
            {'X': '0.8125'},
        ),
        (
            'quickstart_yolo_world_amp',
            [py, '-c', 'print("==== 3 passed, 1 skipped in 0.50s ====")'],
            {},
        ),
    ]
    limits = dict(
        env=30, tests=30, benchmark_ops=2, quickstart_amp=30, quickstart_yolo_world_amp=30
    )
    results = gc.run_all(step_list, {}, budget=20, log=log, limits=limits)
    by_name = {r['name']: r for r in results}
    assert by_name['env']['status'] == 'ok' and by_name['env']['tail'] == ['env fine']
    assert by_name['tests']['status'] == 'failed (rc 3)'
    assert by_name['benchmark_ops']['status'] == 'timeout after 2 s'
    assert by_name['benchmark_ops']['seconds'] < 10
    assert by_name['quickstart_amp']['ap50'] == 0.8125
    assert by_name['quickstart_yolo_world_amp']['status'] == 'ok'
    summary = '\n'.join(gc.summary_lines(results))
    assert re.search(r'quickstart_amp\s+ok\s+[0-9.]+\s+0\.8125', summary)
    assert summary.splitlines()[-1].endswith('3 passed, 1 skipped in 0.50s')
    # a budget that is used up leaves the remaining steps not run
    results = gc.run_all(step_list[:1] + step_list[3:], {}, budget=0, log=log, limits=limits)
    assert [r['status'] for r in results] == ['not run (no time left)'] * 3
    # ai4rs not importable (env failed): nothing else is run
    failing_env = [('env', [py, '-c', 'raise ImportError("no mmengine")'], {})]
    results = gc.run_all(failing_env + step_list[3:], {}, budget=60, log=log, limits=limits)
    assert results[0]['status'] == 'failed (rc 1)'
    assert [r['status'] for r in results[1:]] == ['not run (env failed)'] * 2
    log.close()
    text = (tmp_path / 'log' / 'gpu_check.log').read_text()
    assert 'boom' in text and 'AP50: 0.8125' in text and 'started' in text


def test_quickstart_epochs_give_valid_schedules():
    qs = _load(osp.join(REPO_ROOT, 'tools', 'quickstart.py'), 'quickstart_under_test')
    default = qs.build_config(qs.parse_args([]))
    assert [s.end for s in default.param_scheduler] == [2, 20]
    assert default.optim_wrapper.type == 'OptimWrapper'
    for epochs in (1, 2, 3):
        cfg = qs.build_config(qs.parse_args(['--epochs', str(epochs), '--amp']))
        assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
        scheds = cfg.param_scheduler
        assert scheds[-1].end == epochs
        for s in scheds:
            assert s.begin < s.end  # mmengine rejects end <= begin
        if len(scheds) == 2:
            assert scheds[0].end == scheds[1].begin and scheds[1].T_max == epochs - scheds[0].end
    assert len(qs.build_config(qs.parse_args(['--epochs', '1'])).param_scheduler) == 1


def _amp_logged(work_dir) -> bool:
    logs = list(work_dir.glob('*/*.log'))
    return bool(logs) and "type='AmpOptimWrapper'" in logs[0].read_text()


@pytest.mark.slow
@pytest.mark.parametrize('script', ['quickstart.py', 'quickstart_yolo_world.py'])
def test_quickstart_with_amp_on_cpu(tmp_path, script):
    """One epoch of each quick start under bfloat16 autocast (ai4rs's CPU AmpOptimWrapper)
    on 8 images: trains, evaluates, prints AP50 (after one warm-up epoch the YOLO-World model
    finds nothing, which is AP50 0: CocoMetric returns no metrics then)."""
    if script == 'quickstart_yolo_world.py':
        pytest.importorskip('transformers')
    proc = run_cmd(
        [
            sys.executable,
            osp.join(REPO_ROOT, 'tools', script),
            '--amp',
            '--epochs',
            '1',
            '--num-train',
            '8',
            '--num-val',
            '4',
            '--work-dir',
            str(tmp_path / 'work'),
            '--data-root',
            str(tmp_path / 'data'),
        ],
        cwd=tmp_path,
    )
    assert re.search(r'^AP50: [0-9.]+$', proc.stdout, re.M)
    assert _amp_logged(tmp_path / 'work')
    assert osp.isfile(tmp_path / 'work' / 'epoch_1.pth')
