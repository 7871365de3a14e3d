"""Benchmark ai4rs's pure-PyTorch geometric ops against vectorised shapely 2 and mmcv.

Sections (run all, or one with ``--only NAME``):

- ``box_iou_rotated``: all-pairs IoU of 1500 x 1500 rotated boxes spread over a 1024 px
  patch with sides of 6-160 px, versus ``shapely.intersection`` on the same pairs and, when
  importable, ``mmcv.ops.box_iou_rotated``.
- ``nms_rotated``: about 5000 boxes in clusters (detector-like output) at IoU 0.1, versus a
  greedy loop with vectorised shapely IoUs and, when importable, ``mmcv.ops.nms_rotated``.
- ``dota_eval``: DOTA evaluation of a DOTA-val-sized workload (458 images, 15 classes,
  about 200k detections) with ``eval_rbbox_map`` in devkit and mmrotate modes, versus a
  straightforward shapely implementation of the devkit loop (see benchmark_dota_eval.py).
- ``iou_memory``: peak extra memory of a 10k x 10k IoU matrix (CPU: in a child process, the
  peak of its resident set size sampled every 2 ms, minus the size before the call; CUDA:
  ``torch.cuda.max_memory_allocated``).

Every section runs on the CPU (with 1 thread and with all cores, see ``--threads``) and, when
present, on CUDA. Timings are the best (and the median) of ``--repeat`` runs after one
warm-up run. shapely (GEOS) and mmcv's CPU kernels are single-threaded.

Adding a section (e.g. a DOTA-evaluation benchmark): write ``def bench_NAME(args) -> None``
that prints its lines with :func:`report`, decorate it with ``@register_benchmark('NAME')``
(or add it to ``BENCHMARKS``), and add any options it needs in :func:`add_arguments` or in a
``NAME_arguments(parser)`` function passed as ``register_benchmark('NAME', NAME_arguments)``.

Example::

    python tools/analysis_tools/benchmark_ops.py --threads 1 2
    python tools/analysis_tools/benchmark_ops.py --only nms_rotated --repeat 10
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import ai4rs  # noqa: F401  (first: sets the OpenMP wait policy before torch loads)

# isort: split
import numpy as np
import torch

from ai4rs.ops import box_iou_rotated, nms_rotated, set_cpu_threads

BENCHMARKS: dict[str, Callable] = {}
_EXTRA_ARGUMENTS: list[Callable] = []


def register_benchmark(name: str, arguments: Callable | None = None) -> Callable:
    """Decorator adding ``func(args)`` to :data:`BENCHMARKS` under ``name``; ``arguments``
    (optional) is called with the argparse parser to add the section's options."""

    def decorator(func: Callable) -> Callable:
        BENCHMARKS[name] = func
        if arguments is not None:
            _EXTRA_ARGUMENTS.append(arguments)
        return func

    return decorator


def report(section: str, what: str, value) -> None:
    """Print one result line: ``[section] what: value``."""
    print(f'[{section}] {what}: {value}', flush=True)


def devices() -> list[str]:
    return ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])


def use_threads(threads: int) -> None:
    """Let torch and the ai4rs ops use ``threads`` CPU threads."""
    torch.set_num_threads(threads)
    set_cpu_threads(threads)


def configurations(args) -> list[tuple]:
    """(label, device, cpu threads) for every timing of the ai4rs ops."""
    confs = [(f'cpu, {t} thread{"s" if t > 1 else ""}', 'cpu', t) for t in args.threads]
    if torch.cuda.is_available():
        confs.append(('cuda', 'cuda', args.threads[-1]))
    return confs


def timeit(func: Callable, repeat: int, device: str = 'cpu') -> dict[str, float]:
    """Best and median wall time in seconds of ``func()`` over ``repeat`` runs (+1 warm-up)."""

    def sync():
        if device == 'cuda':
            torch.cuda.synchronize()

    func()
    sync()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        sync()
        times.append(time.perf_counter() - start)
    return {'best': min(times), 'median': statistics.median(times)}


def fmt(t: dict[str, float]) -> str:
    return f'best {t["best"] * 1e3:.1f} ms, median {t["median"] * 1e3:.1f} ms'


def random_rboxes(n: int, patch: float = 1024, sides=(6, 160), seed: int = 0) -> torch.Tensor:
    """(n, 5) float32 boxes: centres uniform in the patch, sides uniform, any angle."""
    rng = np.random.default_rng(seed)
    ctr = rng.uniform(0, patch, (n, 2))
    wh = rng.uniform(sides[0], sides[1], (n, 2))
    t = rng.uniform(-np.pi / 2, np.pi / 2, (n, 1))
    return torch.from_numpy(np.concatenate([ctr, wh, t], 1)).float()


def clustered_rboxes(n: int = 5000, clusters: int = 250, patch: float = 1024, seed: int = 0):
    """Detector-like output: ``n`` boxes jittered around ``clusters`` objects, random scores."""
    rng = np.random.default_rng(seed)
    objects = random_rboxes(clusters, patch, seed=seed + 1).double().numpy()
    which = rng.integers(0, clusters, n)
    boxes = objects[which].copy()
    boxes[:, :2] += rng.normal(0, 0.05, (n, 2)) * boxes[:, 2:4]
    boxes[:, 2:4] *= rng.uniform(0.85, 1.15, (n, 2))
    boxes[:, 4] += rng.normal(0, 0.1, n)
    return torch.from_numpy(boxes).float(), torch.from_numpy(rng.uniform(0, 1, n)).float()


def shapely_polygons(boxes: torch.Tensor):
    import shapely

    b = boxes.double().numpy()
    cos, sin = np.cos(b[:, 4]), np.sin(b[:, 4])
    v1 = np.stack([b[:, 2] / 2 * cos, b[:, 2] / 2 * sin], -1)
    v2 = np.stack([-b[:, 3] / 2 * sin, b[:, 3] / 2 * cos], -1)
    c = b[:, :2]
    return shapely.polygons(np.stack([c + v1 + v2, c + v1 - v2, c - v1 - v2, c - v1 + v2], 1))


def shapely_iou_matrix(boxes1: torch.Tensor, boxes2: torch.Tensor) -> np.ndarray:
    """All-pairs IoU with one vectorised ``shapely.intersection`` call (GEOS)."""
    import shapely

    p1, p2 = shapely_polygons(boxes1), shapely_polygons(boxes2)
    inter = shapely.area(shapely.intersection(p1[:, None], p2[None]))
    a1, a2 = shapely.area(p1)[:, None], shapely.area(p2)[None]
    return inter / np.maximum(a1 + a2 - inter, 1e-12)


def shapely_greedy_nms(boxes: torch.Tensor, scores: torch.Tensor, thr: float) -> list[int]:
    """Greedy NMS where each kept box is compared with the remaining boxes in one vectorised
    shapely call (the same work pattern as mmcv's CPU kernel)."""
    import shapely

    polys = shapely_polygons(boxes)
    areas = shapely.area(polys)
    order = torch.argsort(scores, descending=True, stable=True).numpy()
    alive = np.ones(len(order), dtype=bool)
    keep = []
    for pos, i in enumerate(order):
        if not alive[pos]:
            continue
        keep.append(int(i))
        rest = order[pos + 1 :][alive[pos + 1 :]]
        if rest.size == 0:
            break
        inter = shapely.area(shapely.intersection(polys[i], polys[rest]))
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-12)
        alive[pos + 1 :][alive[pos + 1 :]] = iou <= thr
    return keep


def mmcv_ops():
    """mmcv's compiled ops when a full mmcv is installed, else None (ai4rs never needs it)."""
    try:
        from mmcv.ops import box_iou_rotated as mmcv_iou
        from mmcv.ops import nms_rotated as mmcv_nms

        mmcv_iou(torch.zeros(1, 5), torch.zeros(1, 5))
    except Exception:  # mmcv-lite or a broken build: no compiled ops
        return None
    return mmcv_iou, mmcv_nms


@register_benchmark('box_iou_rotated')
def bench_box_iou_rotated(args) -> None:
    name = 'box_iou_rotated'
    n = args.iou_boxes
    b1, b2 = random_rboxes(n, seed=0), random_rboxes(n, seed=1)
    report(name, 'problem', f'{n} x {n} boxes, 1024 px patch, sides 6-160 px, float32')
    ours = {}
    for label, dev, threads in configurations(args):
        use_threads(threads)
        d1, d2 = b1.to(dev), b2.to(dev)
        ours[label] = timeit(lambda: box_iou_rotated(d1, d2), args.repeat, dev)
        report(name, f'ai4rs {label}', fmt(ours[label]))
    result = box_iou_rotated(b1, b2)
    report(name, 'overlapping pairs', f'{(result > 0).float().mean().item() * 100:.2f} %')
    if not args.skip_shapely:
        t = timeit(lambda: shapely_iou_matrix(b1, b2), max(1, args.repeat // 3))
        report(name, 'shapely (vectorised)', fmt(t))
        err = np.abs(result.double().numpy() - shapely_iou_matrix(b1, b2)).max()
        report(name, 'max |ai4rs - shapely|', f'{err:.2e}')
        for label, tt in ours.items():
            report(name, f'speed-up vs shapely ({label})', f'{t["best"] / tt["best"]:.1f}x')
    mm = mmcv_ops()
    if mm is None:
        report(name, 'mmcv', 'not importable (mmcv.ops unavailable), skipped')
        return
    for dev in devices():
        d1, d2 = b1.to(dev), b2.to(dev)
        t = timeit(lambda: mm[0](d1, d2), args.repeat, dev)
        report(name, f'mmcv {dev}', fmt(t))
        for label, tt in ours.items():
            if label.startswith(dev):
                report(name, f'speed-up vs mmcv ({label})', f'{t["best"] / tt["best"]:.1f}x')


@register_benchmark('nms_rotated')
def bench_nms_rotated(args) -> None:
    name = 'nms_rotated'
    boxes, scores = clustered_rboxes(args.nms_boxes)
    thr = args.nms_thr
    report(name, 'problem', f'{len(boxes)} boxes in 250 clusters, 1024 px patch, thr {thr}')
    ours = {}
    keep = None
    for label, dev, threads in configurations(args):
        use_threads(threads)
        b, s = boxes.to(dev), scores.to(dev)
        ours[label] = timeit(lambda: nms_rotated(b, s, thr), args.repeat, dev)
        report(name, f'ai4rs {label}', fmt(ours[label]))
        keep = nms_rotated(b, s, thr)[1].cpu()
    report(name, 'kept', len(keep))
    if not args.skip_shapely:
        t = timeit(lambda: shapely_greedy_nms(boxes, scores, thr), 1)
        report(name, 'shapely greedy (vectorised per kept box)', fmt(t))
        same = shapely_greedy_nms(boxes, scores, thr) == keep.tolist()
        report(name, 'same keep list as shapely greedy', same)
        for label, tt in ours.items():
            report(name, f'speed-up vs shapely ({label})', f'{t["best"] / tt["best"]:.1f}x')
    mm = mmcv_ops()
    if mm is None:
        report(name, 'mmcv', 'not importable (mmcv.ops unavailable), skipped')
        return
    for dev in devices():
        b, s = boxes.to(dev), scores.to(dev)
        t = timeit(lambda: mm[1](b, s, thr), args.repeat, dev)
        report(name, f'mmcv {dev}', fmt(t))
        for label, tt in ours.items():
            if label.startswith(dev):
                report(name, f'speed-up vs mmcv ({label})', f'{t["best"] / tt["best"]:.1f}x')


_MEMORY_CHILD = r"""
import json, resource, sys, threading, time
import torch
sys.path.insert(0, {tools!r})
from benchmark_ops import random_rboxes
from ai4rs.ops import box_iou_rotated


def rss_kib():
    try:
        with open('/proc/self/status') as f:
            return int(f.read().split('VmRSS:')[1].split()[0])
    except (OSError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


torch.set_num_threads({threads})
b1, b2 = random_rboxes({n}, seed=0), random_rboxes({n}, seed=1)
box_iou_rotated(b1[:50], b2[:50])
base = rss_kib()
peak = [base]
running = [True]


def sample():
    while running[0]:
        peak[0] = max(peak[0], rss_kib())
        time.sleep(0.002)


sampler = threading.Thread(target=sample)
sampler.start()
start = time.perf_counter()
out = box_iou_rotated(b1, b2)
seconds = time.perf_counter() - start
running[0] = False
sampler.join()
peak[0] = max(peak[0], rss_kib())
print(json.dumps(dict(peak_kib=peak[0] - base, seconds=seconds,
                      output_mib=out.numel() * out.element_size() / 2**20)))
"""


@register_benchmark('iou_memory')
def bench_iou_memory(args) -> None:
    name = 'iou_memory'
    n = args.mem_boxes
    report(name, 'problem', f'{n} x {n} IoU matrix, 1024 px patch, float32')
    code = _MEMORY_CHILD.format(
        tools=os.path.dirname(os.path.abspath(__file__)), n=n, threads=args.threads[0]
    )
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    if proc.returncode != 0:
        report(name, 'cpu', f'child process failed: {proc.stderr.strip()[-500:]}')
    else:
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        report(
            name,
            'cpu peak extra memory',
            f'{res["peak_kib"] / 2**20:.2f} GiB (output alone {res["output_mib"]:.0f} MiB), '
            f'time {res["seconds"]:.2f} s',
        )
    if torch.cuda.is_available():
        b1, b2 = random_rboxes(n, seed=0).cuda(), random_rboxes(n, seed=1).cuda()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        start = time.perf_counter()
        box_iou_rotated(b1, b2)
        torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        peak = torch.cuda.max_memory_allocated() - base
        report(name, 'cuda peak extra memory', f'{peak / 2**30:.2f} GiB, time {seconds:.2f} s')


def dota_eval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        '--eval-dets', type=int, default=200000, help='detections in the dota_eval workload'
    )


@register_benchmark('dota_eval', dota_eval_arguments)
def bench_dota_eval(args) -> None:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from benchmark_dota_eval import benchmark_dota_eval

    name = 'dota_eval'
    s = benchmark_dota_eval(num_dets=args.eval_dets, reference=not args.skip_shapely)
    report(
        name,
        'workload',
        f'458 images, 15 classes, {int(s["num_gts"])} objects, {int(s["num_dets"])} detections',
    )
    report(name, 'ai4rs devkit mode', f'{s["ai4rs_devkit_s"]:.2f} s (mAP {s["map_devkit"]:.4f})')
    report(
        name, 'ai4rs mmrotate mode', f'{s["ai4rs_mmrotate_s"]:.2f} s (mAP {s["map_mmrotate"]:.4f})'
    )
    if 'shapely_devkit_s' in s:
        report(name, 'shapely devkit loop', f'{s["shapely_devkit_s"]:.2f} s')
        report(
            name,
            'ratio shapely / ai4rs devkit',
            f'{s["speedup"]:.1f}x (max per-class AP difference {s["max_ap_diff"]:.1e})',
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        '--only',
        choices=sorted(BENCHMARKS),
        action='append',
        help='run only this section (repeatable)',
    )
    parser.add_argument('--repeat', type=int, default=5, help='timed runs per measurement')
    parser.add_argument(
        '--threads',
        type=int,
        nargs='+',
        default=None,
        help='CPU thread counts to time the ai4rs ops with (default: 1 and all '
        'cores; see ai4rs.ops.set_cpu_threads)',
    )
    parser.add_argument('--skip-shapely', action='store_true', help='skip shapely references')
    parser.add_argument('--iou-boxes', type=int, default=1500)
    parser.add_argument('--nms-boxes', type=int, default=5000)
    parser.add_argument('--nms-thr', type=float, default=0.1)
    parser.add_argument('--mem-boxes', type=int, default=10000)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    add_arguments(parser)
    for extra in _EXTRA_ARGUMENTS:
        extra(parser)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if not args.threads:
        args.threads = sorted({1, torch.get_num_threads()})
    print(
        f'torch {torch.__version__}, {os.cpu_count()} CPU cores, CUDA: '
        f'{torch.cuda.get_device_name() if torch.cuda.is_available() else "none"}'
    )
    default_threads = torch.get_num_threads()
    for name in args.only or list(BENCHMARKS):
        BENCHMARKS[name](args)
        use_threads(default_threads)
        set_cpu_threads(None)


if __name__ == '__main__':
    main()
