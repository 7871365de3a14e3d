"""How many CPU threads the ops use by default: the CPUs actually free, not the core count.

The rule (:func:`default_cpu_threads`), re-measured at most once a second:

1. ``cpus`` = the CPUs this process may run on (:func:`available_cpus`): the size of its
   affinity set (``os.sched_getaffinity``; ``taskset``, ``docker --cpuset-cpus``), capped by the
   cgroup CPU quota rounded up (cgroup v2 ``cpu.max``, v1 ``cpu.cfs_quota_us`` /
   ``cpu.cfs_period_us``; ``docker --cpus``), as the JVM and Go runtimes round it.
2. ``others`` = how many of those CPUs other processes keep busy (:class:`CpuBudget`): the busy
   time of the affinity set's CPUs in ``/proc/stat`` minus this process's own CPU time
   (``time.process_time``, all its threads), divided by the wall time since the previous
   measurement (between 0.5 and 5 seconds earlier). Without a recent previous measurement (the
   first call, or after a long pause) it is the instantaneous run-queue count of
   ``/proc/loadavg`` (runnable threads of the whole machine) minus this process's runnable
   threads (state ``R`` in ``/proc/self/task/*/stat``). Where ``/proc`` cannot be read,
   ``others`` is 0 (the old default: every CPU).
3. threads = ``cpus - others`` rounded to the nearest integer, at least 1 and at most ``cpus``
   (:func:`threads_for_load`).

The user's setting wins over this rule: :func:`ai4rs.ops.set_cpu_threads` or the environment
variable ``AI4RS_CPU_THREADS`` (a positive integer, read when the ops look up their thread count;
:func:`env_cpu_threads`). Torch's own thread count (``torch.set_num_threads``) stays an upper
bound in every case.

Nothing here blocks: a measurement reads three small ``/proc`` files and compares them with the
previous reading; between measurements the cached count is returned.
"""

import glob
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

ENV_VAR = 'AI4RS_CPU_THREADS'
# a measurement is reused for this many seconds
CACHE_SECONDS = 1.0
# a busy-time difference is used only over a window of this many seconds
MIN_WINDOW, MAX_WINDOW = 0.5, 5.0


# ------------------------------------------------------------------ cgroup quota
def parse_cgroup_v2_cpu_max(text: str) -> float | None:
    """CPUs allowed by a cgroup v2 ``cpu.max`` file (``'$QUOTA $PERIOD'`` in microseconds, or
    ``'max $PERIOD'``); None when unlimited.

    Raises:
        ValueError: if the contents are not of that form.
    """
    fields = text.split()
    if len(fields) not in (1, 2):
        raise ValueError(f'cpu.max: expected "$QUOTA $PERIOD", got {text!r}')
    if fields[0] == 'max':
        return None
    try:
        quota = int(fields[0])
        period = int(fields[1]) if len(fields) == 2 else 100000
    except ValueError as e:
        raise ValueError(f'cpu.max: expected "$QUOTA $PERIOD", got {text!r}') from e
    if quota <= 0 or period <= 0:
        raise ValueError(f'cpu.max: quota and period must be positive, got {text!r}')
    return quota / period


def parse_cgroup_v1_quota(quota_text: str, period_text: str) -> float | None:
    """CPUs allowed by cgroup v1 ``cpu.cfs_quota_us`` and ``cpu.cfs_period_us`` contents
    (microseconds; a quota of -1 means unlimited); None when unlimited.

    Raises:
        ValueError: if either is not an integer, or the period is not positive.
    """
    try:
        quota, period = int(quota_text.strip()), int(period_text.strip())
    except ValueError as e:
        raise ValueError(
            f'cpu.cfs_quota_us / cpu.cfs_period_us: expected integers, '
            f'got {quota_text!r} / {period_text!r}'
        ) from e
    if quota < 0:
        return None
    if quota == 0 or period <= 0:
        raise ValueError(
            f'cpu.cfs_quota_us / cpu.cfs_period_us: expected a positive quota and period, '
            f'got {quota} / {period}'
        )
    return quota / period


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """``/proc/self/cgroup`` lines (``ID:CONTROLLERS:PATH``) as controller -> path; the cgroup
    v2 line (empty controller list) has the key ``''``."""
    paths = {}
    for line in text.splitlines():
        parts = line.strip().split(':', 2)
        if len(parts) != 3:
            continue
        for controller in parts[1].split(','):
            paths[controller] = parts[2]
    return paths


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _candidates(root: str, sub: str, path: str | None) -> list[str]:
    """``root/sub/path`` (this process's own cgroup) then ``root/sub`` (the root seen from
    inside a container, where the path is often that of the host)."""
    base = os.path.join(root, sub) if sub else root
    dirs = []
    if path and path != '/':
        dirs.append(os.path.join(base, path.lstrip('/')))
    dirs.append(base)
    return dirs


def cgroup_cpu_quota(
    root: str = '/sys/fs/cgroup', proc_cgroup: str = '/proc/self/cgroup'
) -> float | None:
    """CPUs allowed by this process's cgroup quota (v2 first, then v1), None when there is no
    quota or no readable cgroup file. Unreadable contents raise (see the parsers)."""
    paths = parse_proc_cgroup(_read(proc_cgroup) or '')
    for d in _candidates(root, '', paths.get('')):
        text = _read(os.path.join(d, 'cpu.max'))
        if text is not None:
            return parse_cgroup_v2_cpu_max(text)
    for sub in ('cpu', 'cpu,cpuacct', 'cpuacct,cpu'):
        for d in _candidates(root, sub, paths.get('cpu')):
            quota = _read(os.path.join(d, 'cpu.cfs_quota_us'))
            period = _read(os.path.join(d, 'cpu.cfs_period_us'))
            if quota is not None and period is not None:
                return parse_cgroup_v1_quota(quota, period)
    return None


def affinity_cpus() -> set[int] | None:
    """The CPUs this process may run on, None where the platform does not say."""
    if hasattr(os, 'sched_getaffinity'):
        try:
            return set(os.sched_getaffinity(0))
        except OSError:
            return None
    return None


def cpus_allowed(num_affinity: int, quota: float | None) -> int:
    """``num_affinity`` capped by ``quota`` CPUs rounded up; at least 1."""
    n = num_affinity if quota is None else min(num_affinity, math.ceil(quota))
    return max(1, n)


def available_cpus() -> int:
    """CPUs this process may use: its affinity set, capped by its cgroup quota (see the module
    docstring). A cgroup file that cannot be parsed is ignored here (the affinity still
    applies)."""
    cpus = affinity_cpus()
    num = len(cpus) if cpus else (os.cpu_count() or 1)
    try:
        quota = cgroup_cpu_quota()
    except ValueError:
        quota = None
    return cpus_allowed(num, quota)


# ------------------------------------------------------------------ load
def parse_proc_stat_busy(text: str, cpus: set[int] | None = None) -> int:
    """Busy jiffies (user + nice + system + irq + softirq + steal; not idle or iowait) summed
    over the ``cpuN`` lines of ``/proc/stat`` whose N is in ``cpus`` (all when None).

    Raises:
        ValueError: if no such line is found.
    """
    busy, found = 0, False
    for line in text.splitlines():
        if not line.startswith('cpu') or line.startswith('cpu '):
            continue
        fields = line.split()
        try:
            cpu = int(fields[0][3:])
        except ValueError:
            continue
        if cpus is not None and cpu not in cpus:
            continue
        values = [int(v) for v in fields[1:9]] + [0] * (8 - len(fields[1:9]))
        user, nice, system, _idle, _iowait, irq, softirq, steal = values
        busy += user + nice + system + irq + softirq + steal
        found = True
    if not found:
        raise ValueError(f'/proc/stat: no cpuN line for CPUs {sorted(cpus or [])}')
    return busy


def parse_loadavg_running(text: str) -> int:
    """The runnable-thread count of ``/proc/loadavg`` (its 4th field, ``running/total``).

    Raises:
        ValueError: if the contents are not of that form.
    """
    fields = text.split()
    try:
        return int(fields[3].split('/')[0])
    except (IndexError, ValueError) as e:
        raise ValueError(f'/proc/loadavg: expected "a b c running/total pid", got {text!r}') from e


def own_running_threads(task_dir: str = '/proc/self/task') -> int:
    """This process's threads in state ``R`` (runnable), read from ``task_dir/*/stat``."""
    n = 0
    for path in glob.glob(os.path.join(task_dir, '*', 'stat')):
        text = _read(path)
        # the state follows the command name, which is in parentheses and may hold spaces
        if text and text[text.rfind(')') + 2 : text.rfind(')') + 3] == 'R':
            n += 1
    return n


def threads_for_load(cpus: int, others: float) -> int:
    """Threads to use on ``cpus`` CPUs of which other processes keep ``others`` busy: the free
    CPUs rounded to the nearest integer (halves up), between 1 and ``cpus``."""
    return max(1, min(cpus, math.floor(cpus - max(0.0, others) + 0.5)))


@dataclass
class _Snapshot:
    wall: float
    busy_seconds: float
    own_seconds: float


class CpuBudget:
    """The default thread count, cached for :data:`CACHE_SECONDS` (see the module docstring).

    Args:
        clock: wall clock in seconds (``time.monotonic``).
        cpus: () -> the CPUs this process may use (:func:`available_cpus`).
        busy_seconds: () -> busy CPU seconds of this process's CPUs so far, or None when unknown.
        own_seconds: () -> this process's CPU seconds so far (``time.process_time``).
        instant_others: () -> runnable threads of other processes now, or None when unknown.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        cpus: Callable[[], int] = available_cpus,
        busy_seconds: Callable[[], float | None] | None = None,
        own_seconds: Callable[[], float] = time.process_time,
        instant_others: Callable[[], float | None] | None = None,
    ):
        self.clock = clock
        self.cpus = cpus
        self.busy_seconds = busy_seconds or _busy_seconds
        self.own_seconds = own_seconds
        self.instant_others = instant_others or _instant_others
        self._lock = threading.Lock()
        self._snapshot: _Snapshot | None = None
        self._cached: tuple[float, int] | None = None
        self.last_others: float | None = None

    def threads(self) -> int:
        """The default thread count, re-measured at most once every :data:`CACHE_SECONDS`."""
        now = self.clock()
        cached = self._cached
        if cached is not None and now - cached[0] < CACHE_SECONDS:
            return cached[1]
        with self._lock:
            cached = self._cached
            if cached is not None and now - cached[0] < CACHE_SECONDS:
                return cached[1]
            cpus = self.cpus()
            others = self._others(now)
            self.last_others = others
            n = cpus if others is None else threads_for_load(cpus, others)
            self._cached = (now, n)
            return n

    def _others(self, now: float) -> float | None:
        busy = self.busy_seconds()
        snap = None if busy is None else _Snapshot(now, busy, self.own_seconds())
        prev, self._snapshot = self._snapshot, snap or self._snapshot
        if snap is not None and prev is not None and MIN_WINDOW <= now - prev.wall <= MAX_WINDOW:
            window = now - prev.wall
            used = (snap.busy_seconds - prev.busy_seconds) - (snap.own_seconds - prev.own_seconds)
            return max(0.0, used / window)
        return self.instant_others()


def _busy_seconds() -> float | None:
    text = _read('/proc/stat')
    if text is None:
        return None
    try:
        jiffies = parse_proc_stat_busy(text, affinity_cpus())
    except ValueError:
        return None
    return jiffies / os.sysconf('SC_CLK_TCK')


def _instant_others() -> float | None:
    text = _read('/proc/loadavg')
    if text is None:
        return None
    try:
        running = parse_loadavg_running(text)
    except ValueError:
        return None
    return max(0, running - own_running_threads())


def env_cpu_threads() -> int | None:
    """The thread count set by ``AI4RS_CPU_THREADS``, None when unset or empty.

    Raises:
        ValueError: if it is set to anything but a positive integer.
    """
    value = os.environ.get(ENV_VAR, '').strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f'{ENV_VAR} must be a positive integer, but got {value!r}')
    return int(value)


_BUDGET = CpuBudget()


def default_cpu_threads() -> int:
    """The number of threads the ops use when the user set nothing: :class:`CpuBudget`'s
    measurement of the free CPUs (cached for a second)."""
    return _BUDGET.threads()


def _reset_after_fork() -> None:
    """A forked child's CPU time starts again at 0: forget the parent's measurements."""
    global _BUDGET
    _BUDGET = CpuBudget()


if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=_reset_after_fork)
