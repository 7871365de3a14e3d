"""How ai4rs's hot paths behave when the CPU cores are shared: idle versus beside a CPU load.

Each workload runs in a fresh child process (so OpenMP settings given in its environment take
effect when torch loads), once on an idle machine and once beside a CPU load (``--load-kind``:
``spin``, ``--load`` processes running a pure-Python spin loop each, default one per core; or
``torch``, one PyTorch job multiplying matrices on ``--load`` threads, default all cores). It
prints both times and their ratio.

Workloads (``--workloads``):

- ``iou1`` / ``iouN``: ``box_iou_rotated`` of 1500 x 1500 rotated boxes with 1 thread / all cores
  set explicitly (``set_cpu_threads``; time per call, over 10 calls per timed run).
- ``iouD``: the same with the ops' default thread count (torch's thread count = all cores, no
  ``set_cpu_threads`` and no ``AI4RS_CPU_THREADS``: the free CPUs, see
  :mod:`ai4rs.ops.cpu_budget`); the threads it chose are printed (per call, min-max).
- ``nms1`` / ``nmsN``: ``nms_rotated`` of 5000 clustered detections (benchmark_ops.py's problem)
  with 1 thread / all cores (time per call, over 10 calls per timed run).
- ``train_step``: one training iteration (forward, assignment, loss, backward, SGD step) of the
  rotated YOLOX-s config, batch 2, ``--img-size`` px, 50 random rotated boxes per image.
- ``quickstart_step``: one training iteration of the quick-start config (the model trained by
  ``tools/quickstart.py``: batch 8 of 256-px images).

Policies (``--policies``): ``default`` (the child inherits the environment, minus any
``OMP_WAIT_POLICY``) and ``passive`` (``OMP_WAIT_POLICY=PASSIVE``: idle OpenMP threads sleep
instead of spinning, which ai4rs sets by default on import, see :mod:`ai4rs._threads`).

Example (the figures in docs/model_zoo.md)::

    python tools/analysis_tools/benchmark_load.py --workloads iou1 iouN nms1 nmsN quickstart_step \
        train_step --policies default passive --repeat 5

Timings are the median of ``--repeat`` runs after one warm-up run (under load the best run
mostly measures a lucky time slice), and of ``--rounds`` rounds: each round measures every
workload idle, then every workload beside one load session; a figure is one run of this script
on one machine, to be compared within that run. When both the 1-thread and the all-cores variant
of an op are run, a last line per policy gives their ratio on the loaded machine; with ``iouD``
and ``iou1``, the ratio of the default to the 1-thread time idle and loaded.

The ops' default thread count beside a PyTorch job (the figures in docs/model_zoo.md)::

    python tools/analysis_tools/benchmark_load.py --workloads iou1 iouD iouN --policies passive \
        --load-kind torch --repeat 5
"""

import argparse
import json
import multiprocessing as mp
import os
import os.path as osp
import statistics
import subprocess
import sys
import time

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
WORKLOADS = ('iou1', 'iouN', 'iouD', 'nms1', 'nmsN', 'train_step', 'quickstart_step')
# calls of an op per timed run: a single call takes a few tens of milliseconds
OP_CALLS_PER_RUN = 10
POLICIES = ('default', 'passive')
LOAD_KINDS = ('spin', 'torch')
# threads chosen by the ops' default in the timed calls of an ``iouD`` child
_CHOSEN: list[int] = []


def _spin() -> None:
    while True:
        pass


def _torch_job(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    a = torch.rand(512, 512)
    while True:
        a = torch.tanh(a @ a)


def start_load(n: int, kind: str = 'spin') -> list:
    """``n`` processes each keeping one core busy (``kind='spin'``) or one PyTorch job on ``n``
    threads (``kind='torch'``); stop them with :func:`stop_load`."""
    ctx = mp.get_context('spawn')
    if kind == 'torch':
        procs = [ctx.Process(target=_torch_job, args=(n,), daemon=True)]
    else:
        procs = [ctx.Process(target=_spin, daemon=True) for _ in range(n)]
    for p in procs:
        p.start()
    time.sleep(2.0 if kind == 'torch' else 0.5)  # torch's import takes a while
    return procs


def stop_load(procs: list) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        p.join()


# ------------------------------------------------------------------ child side
def _time_median(func, repeat: int) -> float:
    func()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        func()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _repeated(call, times: int):
    def run():
        for _ in range(times):
            call()

    return run


def _iou_workload(threads: int | None):
    """``threads`` set explicitly, or None: the ops' default on all of torch's threads."""
    import torch

    from ai4rs.ops import box_iou_rotated, cpu_tasks, set_cpu_threads

    torch.set_num_threads(threads or os.cpu_count() or 1)
    set_cpu_threads(threads)
    gen = torch.Generator().manual_seed(0)
    n = 1500
    xy = torch.rand(n, 2, generator=gen) * 1024
    wh = 6 + torch.rand(n, 2, generator=gen) * 154
    t = (torch.rand(n, 1, generator=gen) - 0.5) * torch.pi
    boxes = torch.cat([xy, wh, t], 1)

    def call():
        box_iou_rotated(boxes, boxes)
        _CHOSEN.append(cpu_tasks.op_threads(boxes.device))

    return _repeated(call, OP_CALLS_PER_RUN)


def _nms_workload(threads: int):
    import torch

    sys.path.insert(0, osp.join(REPO_ROOT, 'tools', 'analysis_tools'))
    from benchmark_ops import clustered_rboxes

    from ai4rs.ops import nms_rotated

    torch.set_num_threads(threads)
    boxes, scores = clustered_rboxes()
    return _repeated(lambda: nms_rotated(boxes, scores, 0.1), OP_CALLS_PER_RUN)


def _train_step_workload(config: str, batch_size: int, img_size: int, num_gts: int):
    import torch
    from mmengine.registry import init_default_scope

    sys.path.insert(0, osp.join(REPO_ROOT, 'tools', 'analysis_tools'))
    from profile_train_step import RotatedYOLOXFamily

    from ai4rs.registry import MODELS
    from ai4rs.utils import register_all_modules
    from ai4rs.utils.config import load_config

    register_all_modules(init_default_scope=False)
    init_default_scope('ai4rs')
    cfg = load_config(config)
    model_cfg = cfg.model
    if model_cfg.get('data_preprocessor', {}).get('batch_augments'):
        model_cfg.data_preprocessor.batch_augments = None
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    model.init_weights()
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    batch = RotatedYOLOXFamily.make_batch(model, batch_size, (img_size, img_size), num_gts)

    def step():
        data = model.data_preprocessor(batch, True)
        losses = model(**data, mode='loss')
        loss = sum(v for k, v in losses.items() if 'loss' in k)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def run_child(args) -> None:
    import torch

    cores = os.cpu_count() or 1
    if args.child == 'iou1':
        func = _iou_workload(1)
    elif args.child == 'iouN':
        func = _iou_workload(cores)
    elif args.child == 'iouD':
        func = _iou_workload(None)
    elif args.child == 'nms1':
        func = _nms_workload(1)
    elif args.child == 'nmsN':
        func = _nms_workload(cores)
    elif args.child == 'train_step':
        torch.set_num_threads(cores)
        func = _train_step_workload(
            osp.join(REPO_ROOT, 'configs', 'rotated_yolox', 'rotated_yolox_s_300e_dota_le90.py'),
            2,
            args.img_size,
            50,
        )
    else:
        torch.set_num_threads(cores)
        func = _train_step_workload(
            osp.join(
                REPO_ROOT, 'configs', 'rotated_yolox', 'rotated_yolox_quickstart_synthetic.py'
            ),
            8,
            256,
            6,
        )
    seconds = _time_median(func, args.repeat)
    if args.child in ('iou1', 'iouN', 'iouD', 'nms1', 'nmsN'):
        seconds /= OP_CALLS_PER_RUN
    # the threads chosen in the timed calls (after the warm-up's)
    chosen = _CHOSEN[OP_CALLS_PER_RUN:]
    print(json.dumps(dict(seconds=seconds, threads=[min(chosen), max(chosen)] if chosen else None)))


# ----------------------------------------------------------------- parent side
def measure(workload: str, policy: str, args) -> tuple[float, list | None]:
    """(seconds, [min, max] threads chosen by the ops' default or None) of one child run."""
    env = dict(os.environ)
    env.pop('OMP_WAIT_POLICY', None)
    env.pop('AI4RS_CPU_THREADS', None)
    env['AI4RS_OMP_WAIT_POLICY'] = 'passive' if policy == 'passive' else 'unset'
    if policy == 'passive':
        env['OMP_WAIT_POLICY'] = 'PASSIVE'
    cmd = [
        sys.executable,
        osp.abspath(__file__),
        '--child',
        workload,
        '--repeat',
        str(args.repeat),
        '--img-size',
        str(args.img_size),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO_ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f'{workload} ({policy}) failed:\n{proc.stderr[-3000:]}')
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return result['seconds'], result['threads']


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--workloads', nargs='+', choices=WORKLOADS, default=list(WORKLOADS))
    parser.add_argument('--policies', nargs='+', choices=POLICIES, default=list(POLICIES))
    parser.add_argument(
        '--load',
        type=int,
        default=os.cpu_count() or 1,
        help="busy processes (spin) or the job's threads (torch) beside the loaded runs "
        '(default: one per core)',
    )
    parser.add_argument(
        '--load-kind',
        choices=LOAD_KINDS,
        default='spin',
        help='spin: pure-Python busy loops; torch: one PyTorch job using --load threads',
    )
    parser.add_argument('--repeat', type=int, default=3, help='timed runs per measurement')
    parser.add_argument(
        '--rounds',
        type=int,
        default=1,
        help='rounds of (every workload idle, then every workload loaded); medians are printed',
    )
    parser.add_argument('--img-size', type=int, default=1024, help='train_step image size')
    parser.add_argument('--child', choices=WORKLOADS, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _span(threads) -> list:
    """[min, max] over [min, max] pairs."""
    pairs = list(threads)
    return [min(p[0] for p in pairs), max(p[1] for p in pairs)]


def _threads_note(threads: list | None) -> str:
    if not threads:
        return ''
    low, high = threads
    return f' threads {low}' if low == high else f' threads {low}-{high}'


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.child:
        run_child(args)
        return
    load = (
        f'one PyTorch job on {args.load} threads'
        if args.load_kind == 'torch'
        else f'{args.load} busy processes'
    )
    print(
        f'cores: {os.cpu_count()}, load: {load}, median of {args.repeat}'
        + (f', median of {args.rounds} rounds' if args.rounds > 1 else '')
    )
    print(f'{"workload":<16} {"policy":<8} {"idle (s)":>10} {"loaded (s)":>11} {"ratio":>7}')
    cells = [(w, p) for w in args.workloads for p in args.policies]
    runs = {(cell, state): [] for cell in cells for state in ('idle', 'loaded')}
    # every round: each cell idle, then each cell beside one load session (cells alternate, so
    # a change of the machine's background load hits all of them alike)
    for _ in range(args.rounds):
        for cell in cells:
            runs[cell, 'idle'].append(measure(*cell, args))
        procs = start_load(args.load, args.load_kind)
        try:
            for cell in cells:
                runs[cell, 'loaded'].append(measure(*cell, args))
        finally:
            stop_load(procs)
    idle_times, loaded_times = {}, {}
    for cell in cells:
        workload, policy = cell
        idle = statistics.median(t for t, _ in runs[cell, 'idle'])
        loaded = statistics.median(t for t, _ in runs[cell, 'loaded'])
        idle_times[cell], loaded_times[cell] = idle, loaded
        note = ''
        if runs[cell, 'idle'][0][1]:
            idle_note = _threads_note(_span(th for _, th in runs[cell, 'idle']))
            loaded_note = _threads_note(_span(th for _, th in runs[cell, 'loaded']))
            note = f'  (idle:{idle_note}; loaded:{loaded_note})'
        print(
            f'{workload:<16} {policy:<8} {idle:>10.4f} {loaded:>11.4f} {loaded / idle:>7.2f}'
            + note,
            flush=True,
        )
    for op in ('iou', 'nms'):
        for policy in args.policies:
            one, many = loaded_times.get((op + '1', policy)), loaded_times.get((op + 'N', policy))
            if one and many:
                print(f'loaded {op}N / {op}1 ({policy}): {many / one:.2f}')
    for policy in args.policies:
        if ('iouD', policy) in idle_times and ('iou1', policy) in idle_times:
            idle = idle_times['iouD', policy] / idle_times['iou1', policy]
            loaded = loaded_times['iouD', policy] / loaded_times['iou1', policy]
            print(f'iouD / iou1 ({policy}): idle {idle:.2f}, loaded {loaded:.2f}')


if __name__ == '__main__':
    main()
