"""The ops' CPU task runner: every task once, single-threaded workers, errors, forks, and
results that do not depend on the thread count."""

import importlib
import multiprocessing as mp
import threading
import time

import numpy as np
import pytest
import torch

from ai4rs.ops import box_iou_rotated, cpu_tasks, nms_rotated, set_cpu_threads
from tests.test_ops.rbox_shapely_reference import random_rboxes, shapely_iou

iou_module = importlib.import_module('ai4rs.ops.box_iou_rotated')
CPU = torch.device('cpu')
needs_omp = pytest.mark.skipif(
    cpu_tasks._omp_set_num_threads is None, reason="no per-thread OpenMP setting in torch's runtime"
)


@pytest.fixture
def two_threads(monkeypatch):
    # two threads whatever the machine's load (the default follows the free CPUs)
    monkeypatch.setenv('AI4RS_CPU_THREADS', '2')
    prev = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        yield
    finally:
        torch.set_num_threads(prev)
        set_cpu_threads(None)


@needs_omp
def test_every_task_runs_once_on_single_threaded_workers(two_threads):
    seen, teams, idents = [], [], set()
    lock = threading.Lock()

    def task(i):
        time.sleep(0.002)  # releases the GIL: both threads take tasks
        with lock:
            seen.append(i)
            teams.append(torch.get_num_threads())
            idents.add(threading.get_ident())

    cpu_tasks.run_tasks(task, 40, CPU)
    assert sorted(seen) == list(range(40))
    assert set(teams) == {1}  # one OpenMP thread inside every task
    assert len(idents) == 2  # the calling thread and one worker
    assert torch.get_num_threads() == 2  # the calling thread's setting is restored


def test_capped_or_sequential_runs_stay_in_the_calling_thread(two_threads):
    idents = []
    task = lambda i: idents.append(threading.get_ident())  # noqa: E731
    set_cpu_threads(1)
    cpu_tasks.run_tasks(task, 10, CPU)
    set_cpu_threads(None)
    cpu_tasks.run_tasks(task, 10, CPU, parallel=False)
    assert idents == [threading.get_ident()] * 20


@needs_omp
def test_nested_runs_are_sequential_inside_a_task(two_threads):
    inner = []

    def task(i):
        inner.append(cpu_tasks.op_threads(CPU))
        cpu_tasks.run_tasks(lambda j: None, 5, CPU)

    cpu_tasks.run_tasks(task, 4, CPU)
    assert inner == [1, 1, 1, 1]


def test_first_error_is_raised_and_later_tasks_are_not_taken(two_threads):
    done = []

    def task(i):
        if i == 3:
            raise ValueError('task 3 failed')
        time.sleep(0.001)
        done.append(i)

    with pytest.raises(ValueError, match='task 3 failed'):
        cpu_tasks.run_tasks(task, 200, CPU)
    assert len(done) < 199
    # the pool is still usable afterwards
    out = []
    cpu_tasks.run_tasks(out.append, 6, CPU)
    assert sorted(out) == list(range(6))


def test_set_cpu_threads_rejects_non_positive_ints():
    for bad in (0, -1, 1.5, True, '2'):
        with pytest.raises(ValueError, match='positive int'):
            set_cpu_threads(bad)


def test_iou_in_many_tasks_is_bitwise_the_same_at_any_thread_count(two_threads, monkeypatch):
    # small chunks: 40 row blocks of the 120 x 90 matrix and kernel calls of 64 pairs
    monkeypatch.setattr(iou_module, '_MASK_CHUNK', 270)
    monkeypatch.setattr(iou_module, '_KERNEL_CHUNK', 64)
    rng = np.random.default_rng(11)
    b1 = torch.from_numpy(random_rboxes(rng, 120, span=60)).float()
    b2 = torch.from_numpy(random_rboxes(rng, 90, span=60)).float()
    expected = shapely_iou(b1.double().numpy(), b2.double().numpy())
    two = box_iou_rotated(b1, b2)
    np.testing.assert_allclose(two.numpy(), expected, atol=2e-5)
    assert (two > 0).sum() > 1000
    set_cpu_threads(1)
    assert torch.equal(box_iou_rotated(b1, b2), two)
    set_cpu_threads(None)
    # the autograd path runs the same tasks in order
    with_grad = box_iou_rotated(b1.clone().requires_grad_(), b2)
    assert with_grad.requires_grad
    assert torch.equal(with_grad.detach(), two)
    # without autograd (as in a label assigner) no task records history, whichever thread runs it
    with torch.no_grad():
        no_grad = box_iou_rotated(b1.clone().requires_grad_(), b2)
    assert not no_grad.requires_grad and no_grad.grad_fn is None
    assert torch.equal(no_grad, two)
    # aligned pairs in many kernel chunks
    aligned = box_iou_rotated(b1[:90], b2, aligned=True)
    assert torch.equal(aligned, torch.diagonal(two[:90]))


def _child_iou(queue, b1, b2):
    # the child inherits 2 threads (GNU OpenMP cannot start a new 2-thread team after a fork)
    queue.put((torch.get_num_threads(), box_iou_rotated(b1, b2).numpy()))


@pytest.mark.skipif('fork' not in mp.get_all_start_methods(), reason='needs fork')
def test_forked_child_starts_its_own_workers(two_threads, monkeypatch):
    monkeypatch.setattr(iou_module, '_MASK_CHUNK', 300)
    rng = np.random.default_rng(3)
    b1 = torch.from_numpy(random_rboxes(rng, 60, span=50)).float()
    b2 = torch.from_numpy(random_rboxes(rng, 50, span=50)).float()
    parent = box_iou_rotated(b1, b2)  # the parent's pool exists now
    ctx = mp.get_context('fork')
    queue = ctx.Queue()
    proc = ctx.Process(target=_child_iou, args=(queue, b1, b2))
    proc.start()
    try:
        threads, child = queue.get(timeout=60)  # a hang fails here, not in CI's global limit
        proc.join(timeout=60)
    finally:
        if proc.is_alive():
            proc.kill()
    assert proc.exitcode == 0
    assert threads == 2
    np.testing.assert_array_equal(child, parent.numpy())


def test_nms_is_the_same_at_any_thread_count(two_threads):
    rng = np.random.default_rng(8)
    boxes = torch.from_numpy(random_rboxes(rng, 400, span=120)).float()
    scores = torch.from_numpy(rng.uniform(0, 1, 400)).float()
    _, keep2 = nms_rotated(boxes, scores, 0.3)
    set_cpu_threads(1)
    _, keep1 = nms_rotated(boxes, scores, 0.3)
    assert torch.equal(keep1, keep2)


def test_without_a_per_thread_setting_only_the_user_cap_switches_torch(two_threads, monkeypatch):
    # e.g. an OpenMP runtime that is not found: the ops' own one-thread cap (NMS) is skipped,
    # the user's set_cpu_threads cap still applies through torch.set_num_threads
    monkeypatch.setattr(cpu_tasks, '_omp_set_num_threads', None)
    seen = []
    with cpu_tasks.limited_cpu_threads(CPU, 1):
        seen.append(torch.get_num_threads())
    set_cpu_threads(1)
    with cpu_tasks.limited_cpu_threads(CPU):
        seen.append(torch.get_num_threads())
    assert seen == [2, 1]
    assert torch.get_num_threads() == 2
