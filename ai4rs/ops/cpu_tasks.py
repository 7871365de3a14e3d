"""How the ops use CPU threads: a thread cap, and independent tasks on single-threaded workers.

Why tasks: the ops are sequences of many medium-sized vectorised steps. Run with torch's
intra-op threads, every step ends at an OpenMP barrier, and on a machine whose cores are
shared with other busy processes one descheduled thread stalls every barrier: the 2-thread
rotated IoU measured slower than the 1-thread one under such a load. Here an op cuts its work
into independent tasks (e.g. row blocks of an IoU matrix); each of ``n`` threads (the calling
thread and ``n - 1`` pooled workers) takes the next task when it is done with its last one and
runs it with a single OpenMP thread (and a single MKL thread, which torch's sin / cos use).
There is no barrier inside a task, and a thread that gets descheduled only delays its own task
while the others take the rest.

Results never depend on the thread count: the cut into tasks depends only on the input sizes
and every task is computed the same way whichever thread runs it.
"""

import contextlib
import ctypes
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import torch

from .cpu_budget import default_cpu_threads, env_cpu_threads

# Intra-op CPU threads the ops may use; None (default) = ``AI4RS_CPU_THREADS``, else the free
# CPUs (:func:`ai4rs.ops.cpu_budget.default_cpu_threads`).
_CPU_THREADS: int | None = None
_OPENMP = 'OpenMP' in torch.__config__.parallel_info()
_OMP_LIBS = ('libgomp', 'libiomp5', 'libomp')
_MKL_LIBS = ('libtorch_cpu', 'libmkl_rt', 'libmkl_core')


def set_cpu_threads(num: int | None) -> None:
    """Set how many CPU threads ai4rs's ops may use (at most ``torch.get_num_threads()``).

    None (the default) leaves the choice to the environment variable ``AI4RS_CPU_THREADS`` when
    set, else to the number of CPUs actually free (the affinity set and cgroup quota less the
    CPUs other processes keep busy, re-measured at most once a second; see
    :mod:`ai4rs.ops.cpu_budget`). A number set here wins over both.

    The setting is process-wide; it is applied per op call to the calling thread only (its
    OpenMP team size and MKL thread count during the call, and the number of task threads), so
    it never changes torch's own setting or other threads' work. Where the OpenMP runtime's
    per-thread setting is not found, ``torch.set_num_threads`` is switched around each call
    instead. Results never depend on this setting.

    Raises:
        ValueError: if ``num`` is neither None nor a positive int.
    """
    if num is not None and (isinstance(num, bool) or not isinstance(num, int) or num < 1):
        raise ValueError(f'num must be None or a positive int, but got {num!r}')
    global _CPU_THREADS
    _CPU_THREADS = num


def _loaded_libraries() -> list[str]:
    """Paths of the shared libraries loaded in this process (empty where /proc is missing)."""
    try:
        with open('/proc/self/maps') as f:
            return sorted({line.split()[-1] for line in f if '/' in line})
    except OSError:
        return []


def _find_function(
    libraries: list[str], lib_prefixes: tuple[str, ...], name: str, restype
) -> Callable | None:
    """``name`` from one of ``libraries`` whose file name starts with one of ``lib_prefixes``,
    taking one int, or None if there is none."""
    for path in libraries:
        if os.path.basename(path).startswith(lib_prefixes):
            try:
                func = getattr(ctypes.CDLL(path), name)
            except (OSError, AttributeError):
                continue
            func.argtypes = [ctypes.c_int]
            func.restype = restype
            return func
    return None


_libraries = _loaded_libraries() if _OPENMP or torch.backends.mkl.is_available() else []
# The team size of the calling thread only (torch.set_num_threads also changes the default of
# threads started later, and MKL's process-wide count).
_omp_set_num_threads = (
    _find_function(_libraries, _OMP_LIBS, 'omp_set_num_threads', None) if _OPENMP else None
)
# MKL's vector math (torch's CPU sin / cos) keeps its own thread count; this one is per thread
# (the C interface, taking an int; the lower-case names are the Fortran ones, taking a pointer).
_mkl_set_num_threads_local = (
    _find_function(_libraries, _MKL_LIBS, 'MKL_Set_Num_Threads_Local', ctypes.c_int)
    if torch.backends.mkl.is_available()
    else None
)
_local = threading.local()
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()


def op_threads(device: torch.device, measured: bool = True) -> int:
    """How many threads an op on ``device`` may use: 1 off the CPU (and inside a task), else
    torch's thread count capped by :func:`set_cpu_threads`, else by ``AI4RS_CPU_THREADS``, else
    (when ``measured``) by :func:`ai4rs.ops.cpu_budget.default_cpu_threads` (the free CPUs).

    Raises:
        ValueError: if ``AI4RS_CPU_THREADS`` is set to anything but a positive integer.
    """
    if device.type != 'cpu' or getattr(_local, 'in_task', False):
        return 1
    n = torch.get_num_threads()
    if n <= 1:
        return 1
    cap = _CPU_THREADS
    if cap is None:
        cap = env_cpu_threads()
    if cap is None and measured:
        cap = default_cpu_threads()
    return n if cap is None else min(n, cap)


def _set_team(num: int, mkl_num: int | None = None) -> int:
    """Set the calling thread's OpenMP team size to ``num`` and its MKL thread count to
    ``mkl_num`` (default ``num``; 0 = MKL's process-wide count). Returns the previous MKL
    value, for restoring."""
    if _omp_set_num_threads is not None:
        _omp_set_num_threads(num)
    else:
        torch.set_num_threads(num)
    if _mkl_set_num_threads_local is None:
        return 0
    return _mkl_set_num_threads_local(num if mkl_num is None else mkl_num)


@contextlib.contextmanager
def limited_cpu_threads(device: torch.device, num: int | None = None) -> Iterator[None]:
    """Run the body with at most ``num`` (default: :func:`op_threads`) OpenMP threads in the
    calling thread (CPU only). Uses the calling thread's own setting where the OpenMP runtime
    is found; without it only the user's cap (:func:`set_cpu_threads`, ``AI4RS_CPU_THREADS``)
    is applied, through ``torch.set_num_threads`` (process-wide: switching it around every call
    of an op inside a training loop made training about 15x slower), not the measured default."""
    prev = torch.get_num_threads()
    if num is None:
        cap = op_threads(device, measured=_omp_set_num_threads is not None)
    else:
        cap = num
    if device.type != 'cpu' or not _OPENMP or prev <= cap:
        yield
        return
    if _omp_set_num_threads is None and num is not None:
        yield
        return
    mkl_prev = _set_team(cap)
    try:
        yield
    finally:
        _set_team(prev, mkl_prev)


def _init_worker() -> None:
    torch.get_num_threads()  # torch's per-thread setup first: it would override the team size
    _set_team(1)
    _local.in_task = True


def _forget_pool() -> None:
    """In a forked child the pool's threads do not exist: start a new pool when needed."""
    global _pool, _pool_size
    _pool, _pool_size = None, 0


if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=_forget_pool)


def _submit(work: Callable[[], None], workers: int) -> list[Future]:
    """Run ``work`` on ``workers`` pooled threads (the pool grows when needed)."""
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size < workers:
            if _pool is not None:
                _pool.shutdown(wait=False)  # its queued work still runs
            _pool = ThreadPoolExecutor(
                max_workers=workers, thread_name_prefix='ai4rs-op', initializer=_init_worker
            )
            _pool_size = workers
        return [_pool.submit(work) for _ in range(workers)]


def run_tasks(
    task: Callable[[int], None], num_tasks: int, device: torch.device, parallel: bool = True
) -> None:
    """Call ``task(0) ... task(num_tasks - 1)``, on :func:`op_threads` threads when possible.

    Tasks must be independent (each writes only its own part of the output) and must not
    depend on which thread runs them. They run on single-threaded workers (the calling thread
    included) when ``parallel``, the device is the CPU, more than one thread is allowed, there
    is more than one task and the OpenMP runtime's per-thread setting is available; otherwise
    in order in the calling thread, with at most :func:`op_threads` OpenMP threads. Tasks run
    in the caller's autograd mode (enabled or not); tasks that record autograd history should
    run with ``parallel=False``. The first exception raised by
    a task is re-raised here after the other threads have stopped taking tasks.
    """
    threads = min(op_threads(device), num_tasks)
    if (
        not parallel
        or threads <= 1
        or _omp_set_num_threads is None
        or getattr(_local, 'in_task', False)
    ):
        with limited_cpu_threads(device):
            for i in range(num_tasks):
                task(i)
        return
    lock = threading.Lock()
    state = {'next': 0, 'error': None}
    # autograd's mode is per thread: the workers take the caller's
    grad_enabled = torch.is_grad_enabled()

    def work() -> None:
        while True:
            with lock:
                i = state['next']
                if i >= num_tasks or state['error'] is not None:
                    return
                state['next'] = i + 1
            try:
                with torch.set_grad_enabled(grad_enabled):
                    task(i)
            except BaseException as e:  # re-raised in the calling thread
                with lock:
                    if state['error'] is None:
                        state['error'] = e
                return

    futures = _submit(work, threads - 1)
    _local.in_task = True
    try:
        with limited_cpu_threads(device, 1):
            work()
    finally:
        _local.in_task = False
        for f in futures:
            f.result()
    if state['error'] is not None:
        raise state['error']
