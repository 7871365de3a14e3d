"""How ai4rs's hot paths behave when the CPU cores are shared: idle versus beside a CPU load.

Each workload runs in a fresh child process (so OpenMP settings given in its environment take
effect when torch loads), once on an idle machine and once beside ``--load`` busy processes (one
pure-Python spin loop each; default: one per core). It prints both times and their ratio.

Workloads (``--workloads``):

- ``iou1`` / ``iouN``: ``box_iou_rotated`` of 1500 x 1500 rotated boxes with 1 thread / all cores
  (time per call, over 10 calls per timed run).
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
mostly measures a lucky time slice); a figure is one run of this script on one machine, to be
compared within that run. When both the 1-thread and the all-cores variant of an op are run, a
last line per policy gives their ratio on the loaded machine.
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
WORKLOADS = ('iou1', 'iouN', 'nms1', 'nmsN', 'train_step', 'quickstart_step')
# calls of an op per timed run: a single call takes a few tens of milliseconds
OP_CALLS_PER_RUN = 10
POLICIES = ('default', 'passive')


def _spin() -> None:
    while True:
        pass


def start_load(n: int) -> list:
    """``n`` processes each keeping one core busy; stop them with :func:`stop_load`."""
    ctx = mp.get_context('spawn')
    procs = [ctx.Process(target=_spin, daemon=True) for _ in range(n)]
    for p in procs:
        p.start()
    time.sleep(0.5)
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


def _iou_workload(threads: int):
    import torch

    from ai4rs.ops import box_iou_rotated

    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)
    n = 1500
    xy = torch.rand(n, 2, generator=gen) * 1024
    wh = 6 + torch.rand(n, 2, generator=gen) * 154
    t = (torch.rand(n, 1, generator=gen) - 0.5) * torch.pi
    boxes = torch.cat([xy, wh, t], 1)
    return _repeated(lambda: box_iou_rotated(boxes, boxes), OP_CALLS_PER_RUN)


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
    if args.child in ('iou1', 'iouN', 'nms1', 'nmsN'):
        seconds /= OP_CALLS_PER_RUN
    print(json.dumps(dict(seconds=seconds)))


# ----------------------------------------------------------------- parent side
def measure(workload: str, policy: str, args) -> float:
    env = dict(os.environ)
    env.pop('OMP_WAIT_POLICY', None)
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
    return json.loads(proc.stdout.strip().splitlines()[-1])['seconds']


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--workloads', nargs='+', choices=WORKLOADS, default=list(WORKLOADS))
    parser.add_argument('--policies', nargs='+', choices=POLICIES, default=list(POLICIES))
    parser.add_argument(
        '--load',
        type=int,
        default=os.cpu_count() or 1,
        help='busy processes beside the loaded runs (default: one per core)',
    )
    parser.add_argument('--repeat', type=int, default=3, help='timed runs per measurement')
    parser.add_argument('--img-size', type=int, default=1024, help='train_step image size')
    parser.add_argument('--child', choices=WORKLOADS, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.child:
        run_child(args)
        return
    print(f'cores: {os.cpu_count()}, load: {args.load} busy processes, median of {args.repeat}')
    print(f'{"workload":<16} {"policy":<8} {"idle (s)":>10} {"loaded (s)":>11} {"ratio":>7}')
    loaded_times = {}
    for workload in args.workloads:
        for policy in args.policies:
            idle = measure(workload, policy, args)
            procs = start_load(args.load)
            try:
                loaded = measure(workload, policy, args)
            finally:
                stop_load(procs)
            loaded_times[workload, policy] = loaded
            print(
                f'{workload:<16} {policy:<8} {idle:>10.4f} {loaded:>11.4f} {loaded / idle:>7.2f}',
                flush=True,
            )
    for op in ('iou', 'nms'):
        for policy in args.policies:
            one, many = loaded_times.get((op + '1', policy)), loaded_times.get((op + 'N', policy))
            if one and many:
                print(f'loaded {op}N / {op}1 ({policy}): {many / one:.2f}')


if __name__ == '__main__':
    main()
