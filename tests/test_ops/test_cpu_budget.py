"""The ops' default thread count: cgroup quotas, affinity, the load rule, its cache, and the
user's setting winning over it."""

import importlib
import os
import threading

import numpy as np
import pytest
import torch

from ai4rs.ops import box_iou_rotated, cpu_budget, cpu_tasks, set_cpu_threads
from tests.test_ops.rbox_shapely_reference import random_rboxes

CPU = torch.device('cpu')
iou_module = importlib.import_module('ai4rs.ops.box_iou_rotated')


# ------------------------------------------------------------------ cgroup files
def test_cgroup_v2_cpu_max():
    assert cpu_budget.parse_cgroup_v2_cpu_max('150000 100000\n') == 1.5
    assert cpu_budget.parse_cgroup_v2_cpu_max('max 100000\n') is None
    assert cpu_budget.parse_cgroup_v2_cpu_max('50000') == 0.5  # period defaults to 100 ms
    for bad in ('', 'abc 100000', '0 100000', '1 2 3'):
        with pytest.raises(ValueError, match='cpu.max'):
            cpu_budget.parse_cgroup_v2_cpu_max(bad)


def test_cgroup_v1_quota():
    assert cpu_budget.parse_cgroup_v1_quota('-1\n', '100000\n') is None
    assert cpu_budget.parse_cgroup_v1_quota('250000\n', '100000\n') == 2.5
    with pytest.raises(ValueError, match='cfs_quota_us'):
        cpu_budget.parse_cgroup_v1_quota('lots', '100000')
    with pytest.raises(ValueError, match='0 / 100000'):
        cpu_budget.parse_cgroup_v1_quota('0', '100000')


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_quota_read_from_files(tmp_path):
    proc = tmp_path / 'proc_cgroup'
    root = tmp_path / 'cgroup'
    # nothing there: no quota
    assert cpu_budget.cgroup_cpu_quota(str(root), str(proc)) is None
    # v1, at the root of the cpu hierarchy (inside a container)
    _write(root / 'cpu' / 'cpu.cfs_quota_us', '150000\n')
    _write(root / 'cpu' / 'cpu.cfs_period_us', '100000\n')
    assert cpu_budget.cgroup_cpu_quota(str(root), str(proc)) == 1.5
    # v1, this process's own cgroup (named in /proc/self/cgroup) comes first
    _write(proc, '4:memory:/a\n3:cpu,cpuacct:/job/7\n0::/\n')
    _write(root / 'cpu' / 'job' / '7' / 'cpu.cfs_quota_us', '-1\n')
    _write(root / 'cpu' / 'job' / '7' / 'cpu.cfs_period_us', '100000\n')
    assert cpu_budget.cgroup_cpu_quota(str(root), str(proc)) is None
    # v2 wins over v1; the own cgroup's file first, then the root's
    _write(root / 'cpu.max', '300000 100000\n')
    assert cpu_budget.cgroup_cpu_quota(str(root), str(proc)) == 3.0
    _write(proc, '0::/user.slice/job\n')
    _write(root / 'user.slice' / 'job' / 'cpu.max', 'max 100000\n')
    assert cpu_budget.cgroup_cpu_quota(str(root), str(proc)) is None
    # bad contents are an error naming the file
    _write(root / 'user.slice' / 'job' / 'cpu.max', 'half\n')
    with pytest.raises(ValueError, match="cpu.max.*'half"):
        cpu_budget.cgroup_cpu_quota(str(root), str(proc))


def test_parse_proc_cgroup():
    paths = cpu_budget.parse_proc_cgroup('12:cpu,cpuacct:/docker/ab\n1:name=systemd:/\n0::/x\n')
    assert paths == {'cpu': '/docker/ab', 'cpuacct': '/docker/ab', 'name=systemd': '/', '': '/x'}


# ------------------------------------------------------------------ affinity
def test_cpus_allowed_caps_the_affinity_by_the_quota_rounded_up():
    assert cpu_budget.cpus_allowed(8, None) == 8
    assert cpu_budget.cpus_allowed(8, 1.5) == 2
    assert cpu_budget.cpus_allowed(8, 0.2) == 1
    assert cpu_budget.cpus_allowed(2, 4.0) == 2


def test_available_cpus_follows_affinity_and_quota(monkeypatch):
    monkeypatch.setattr(cpu_budget, 'cgroup_cpu_quota', lambda: None)
    if hasattr(os, 'sched_getaffinity'):
        assert cpu_budget.available_cpus() == len(os.sched_getaffinity(0))
    monkeypatch.setattr(cpu_budget, 'affinity_cpus', lambda: {3, 5, 6})
    assert cpu_budget.available_cpus() == 3
    monkeypatch.setattr(cpu_budget, 'cgroup_cpu_quota', lambda: 1.2)
    assert cpu_budget.available_cpus() == 2


@pytest.mark.skipif(not hasattr(os, 'sched_setaffinity'), reason='no sched_setaffinity')
def test_available_cpus_sees_a_narrowed_affinity_set(monkeypatch):
    monkeypatch.setattr(cpu_budget, 'cgroup_cpu_quota', lambda: None)
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    try:
        assert cpu_budget.available_cpus() == 1
    finally:
        os.sched_setaffinity(0, before)


# ------------------------------------------------------------------ load
PROC_STAT = """cpu  100 0 0 0 0 0 0 0 0 0
cpu0 10 1 2 500 7 3 4 5 0 0
cpu1 20 0 0 900 0 0 0 0 0 0
cpu2 30 1 1 100 0 0 0 0 0 0
intr 1 2 3
"""


def test_proc_stat_busy_counts_only_the_given_cpus_and_no_idle_time():
    # cpu0: 10 + 1 + 2 + 3 + 4 + 5 (idle 500 and iowait 7 left out)
    assert cpu_budget.parse_proc_stat_busy(PROC_STAT, {0}) == 25
    assert cpu_budget.parse_proc_stat_busy(PROC_STAT, {0, 2}) == 25 + 32
    assert cpu_budget.parse_proc_stat_busy(PROC_STAT) == 25 + 20 + 32
    with pytest.raises(ValueError, match=r'\[7\]'):
        cpu_budget.parse_proc_stat_busy(PROC_STAT, {7})


def test_loadavg_running_and_own_running_threads(tmp_path):
    assert cpu_budget.parse_loadavg_running('1.10 1.29 2.69 3/118 27295\n') == 3
    with pytest.raises(ValueError, match='loadavg'):
        cpu_budget.parse_loadavg_running('1.10 1.29\n')
    for tid, comm, state in ((1, 'python', 'R'), (2, 'a) b (c', 'R'), (3, 'ai4rs-op_0', 'S')):
        _write(tmp_path / str(tid) / 'stat', f'{tid} ({comm}) {state} 1 2 3 4\n')
    assert cpu_budget.own_running_threads(str(tmp_path)) == 2


@pytest.mark.parametrize(
    'cpus, others, expected',
    [(2, 0.0, 2), (2, 0.4, 2), (2, 0.5, 2), (2, 0.6, 1), (2, 2.0, 1), (2, 7.0, 1), (8, 2.3, 6),
     (8, -1.0, 8), (1, 0.0, 1)],
)  # fmt: skip
def test_threads_for_load(cpus, others, expected):
    assert cpu_budget.threads_for_load(cpus, others) == expected


class FakeMachine:
    """Readings of a machine with ``cpus`` CPUs, counting how often each is read."""

    def __init__(self, cpus=4):
        self.now, self.busy, self.own, self.instant = 100.0, 0.0, 0.0, 0.0
        self.cpus_value = cpus
        self.reads = 0

    def budget(self):
        def busy():
            self.reads += 1
            return self.busy

        return cpu_budget.CpuBudget(
            clock=lambda: self.now,
            cpus=lambda: self.cpus_value,
            busy_seconds=busy,
            own_seconds=lambda: self.own,
            instant_others=lambda: self.instant,
        )


def test_first_measurement_uses_the_run_queue_then_busy_time_minus_own_time():
    m = FakeMachine(cpus=4)
    budget = m.budget()
    m.instant = 3
    assert budget.threads() == 1  # 4 CPUs, 3 runnable threads elsewhere
    # 1.5 s later: 6 busy CPU-seconds of which 3 are this process's own -> 2 CPUs busy elsewhere
    m.now += 1.5
    m.busy += 6.0
    m.own += 3.0
    m.instant = 0
    assert budget.threads() == 2
    assert budget.last_others == pytest.approx(2.0)
    # this process keeping every CPU busy alone leaves all 4 to it
    m.now += 1.0
    m.busy += 4.0
    m.own += 4.0
    assert budget.threads() == 4


def test_measurements_are_cached_for_a_second():
    m = FakeMachine(cpus=4)
    budget = m.budget()
    assert budget.threads() == 4
    assert m.reads == 1
    m.instant = 4
    m.busy += 100.0
    for dt in (0.1, 0.5, 0.99):
        m.now = 100.0 + dt
        assert budget.threads() == 4  # the cached value, nothing read
    assert m.reads == 1
    m.now = 101.0
    assert budget.threads() == 1
    assert m.reads == 2


def test_a_stale_window_falls_back_to_the_run_queue():
    m = FakeMachine(cpus=4)
    budget = m.budget()
    budget.threads()
    m.now += 60.0  # a minute without op calls: the busy-time average would be stale
    m.busy += 240.0
    m.instant = 1
    assert budget.threads() == 3
    assert budget.last_others == 1


def test_unknown_load_uses_every_cpu():
    budget = cpu_budget.CpuBudget(
        clock=lambda: 0.0, cpus=lambda: 3, busy_seconds=lambda: None, instant_others=lambda: None
    )
    assert budget.threads() == 3


def test_the_real_budget_is_within_the_available_cpus():
    n = cpu_budget.CpuBudget().threads()
    assert 1 <= n <= cpu_budget.available_cpus()


# ------------------------------------------------------------------ the ops' setting
@pytest.fixture
def two_torch_threads(monkeypatch):
    monkeypatch.delenv(cpu_budget.ENV_VAR, raising=False)
    prev = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        yield
    finally:
        torch.set_num_threads(prev)
        set_cpu_threads(None)


def test_the_ops_follow_the_measured_default(two_torch_threads, monkeypatch):
    monkeypatch.setattr(cpu_tasks, 'default_cpu_threads', lambda: 1)
    assert cpu_tasks.op_threads(CPU) == 1
    idents = set()
    cpu_tasks.run_tasks(lambda i: idents.add(threading.get_ident()), 8, CPU)
    assert idents == {threading.get_ident()}  # one thread: no worker took a task
    monkeypatch.setattr(cpu_tasks, 'default_cpu_threads', lambda: 6)
    assert cpu_tasks.op_threads(CPU) == 2  # torch's count stays the upper bound
    assert cpu_tasks.op_threads(torch.device('meta')) == 1


def test_the_explicit_setting_wins(two_torch_threads, monkeypatch):
    monkeypatch.setattr(cpu_tasks, 'default_cpu_threads', lambda: 1)
    monkeypatch.setenv(cpu_budget.ENV_VAR, '2')
    assert cpu_tasks.op_threads(CPU) == 2
    set_cpu_threads(1)
    assert cpu_tasks.op_threads(CPU) == 1  # set_cpu_threads wins over the environment
    set_cpu_threads(None)
    monkeypatch.delenv(cpu_budget.ENV_VAR)
    set_cpu_threads(2)
    assert cpu_tasks.op_threads(CPU) == 2  # and over the measured default


@pytest.mark.parametrize('value', ['0', '-2', 'two', '1.5'])
def test_a_bad_environment_value_is_an_error_naming_it(two_torch_threads, monkeypatch, value):
    monkeypatch.setenv(cpu_budget.ENV_VAR, value)
    with pytest.raises(ValueError, match=f"AI4RS_CPU_THREADS.*'{value}'"):
        cpu_tasks.op_threads(CPU)


def test_without_a_per_thread_setting_the_measured_default_never_switches_torch(
    two_torch_threads, monkeypatch
):
    # torch.set_num_threads around every op call made training ~15x slower: only the user's cap
    monkeypatch.setattr(cpu_tasks, '_omp_set_num_threads', None)
    monkeypatch.setattr(cpu_tasks, 'default_cpu_threads', lambda: 1)
    with cpu_tasks.limited_cpu_threads(CPU):
        assert torch.get_num_threads() == 2
    monkeypatch.setenv(cpu_budget.ENV_VAR, '1')
    with cpu_tasks.limited_cpu_threads(CPU):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2


def test_iou_is_bitwise_the_same_at_1_and_2_threads_and_by_default(two_torch_threads, monkeypatch):
    # small chunks: many row blocks, so the 2-thread run splits them between two threads
    monkeypatch.setattr(iou_module, '_MASK_CHUNK', 500)
    monkeypatch.setattr(iou_module, '_KERNEL_CHUNK', 64)
    calls = []

    def spy(task, num_tasks, device, parallel=True):
        calls.append((num_tasks, cpu_tasks.op_threads(device)))
        cpu_tasks.run_tasks(task, num_tasks, device, parallel)

    monkeypatch.setattr(iou_module, 'run_tasks', spy)
    rng = np.random.default_rng(3)
    a = torch.as_tensor(random_rboxes(rng, 100, span=60), dtype=torch.float32)
    b = torch.as_tensor(random_rboxes(rng, 80, span=60), dtype=torch.float32)
    results, used = [], []
    for value in ('1', '2', None):
        if value is None:
            monkeypatch.delenv(cpu_budget.ENV_VAR)
        else:
            monkeypatch.setenv(cpu_budget.ENV_VAR, value)
        calls.clear()
        results.append(box_iou_rotated(a, b))
        # the first (outermost) call: its row blocks, on how many threads
        assert calls[0][0] > 4
        used.append(calls[0][1])
    assert torch.equal(results[0], results[1])
    assert torch.equal(results[0], results[2])
    assert (results[0] > 0).sum() > 500
    assert used[:2] == [1, 2]
