"""Everything GPU-related in one prepared run: tests on CUDA, op benchmark, AMP quick starts.

    python tools/misc/gpu_check.py [--wheels DIR] [--budget 540] [--epochs N] [--world-epochs N]

Steps, in order, each in its own process with a time limit (all of them within ``--budget``
seconds, so the run ends on time even when a step hangs):

1. ``env``: ``nvidia-smi``; Python, torch, CUDA, cuDNN and the GPU; ai4rs and its
   dependencies (if ai4rs cannot be imported, the later steps are not run);
2. ``tests``: ``AI4RS_TEST_DEVICES=cuda python -m pytest tests -k cuda``, the CUDA cases of
   the device-parametrized tests (ops, models, assigners, metrics: see tests/conftest.py);
3. ``benchmark_ops``: ``tools/analysis_tools/benchmark_ops.py`` (rotated IoU, rotated NMS,
   IoU memory) on the CPU and on CUDA;
4. ``inference_eager``, ``inference_mode``, ``inference_bf16``: ``tools/analysis_tools/
   benchmark.py`` on CUDA, rotated YOLOX-s at 1024, batch 4: the eager model, the inference
   mode (``--inference-mode``) and the inference mode with a bfloat16 network (``--bf16``);
5. ``quickstart_amp``: ``tools/quickstart.py --amp`` (rotated YOLOX, float16 autocast);
6. ``quickstart_yolo_world_amp``: ``tools/quickstart_yolo_world.py --amp`` (YOLO-World v2).

Everything printed goes to the console and to ``gpu_check.log`` in ``$OUT`` when that is set
(the output folder of a device machine), else in ``work_dirs/gpu_check``; a summary (status,
seconds, AP50 of each step) ends it and is also written as ``gpu_check_summary.json``. The
quick starts work under ``work_dirs/gpu_check``.

Exit status: 0 when every step passed, 1 when one failed or ran out of time, 2 at once when
torch sees no CUDA device (nothing is run then).

A bare GPU machine with PyTorch but without ai4rs's other dependencies: on a machine where
pip reaches PyPI run ``python tools/misc/gpu_check.py --download-wheels .whl`` (wheels for
CPython 3.12 on manylinux x86-64, the versions installed here where there are any), take the
folder along, and run ``python tools/misc/gpu_check.py --wheels .whl`` there: they are
installed into a temporary folder that every step uses.
"""

import argparse
import json
import os
import os.path as osp
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

#: distributions ai4rs needs beyond a PyTorch image with torchvision, numpy, OpenCV,
#: matplotlib, transformers, PyYAML, rich, packaging and Pillow
WHEELS = (
    'mmengine',
    'mmcv-lite',
    'addict',
    'yapf',
    'platformdirs',
    'termcolor',
    'terminaltables',
    'shapely',
    'pycocotools',
    'faster-coco-eval',
)
WHEEL_PLATFORMS = (
    'manylinux_2_28_x86_64',
    'manylinux_2_27_x86_64',
    'manylinux_2_24_x86_64',
    'manylinux_2_17_x86_64',
    'manylinux2014_x86_64',
    'manylinux1_x86_64',
)

#: each step's own time limit in seconds (the budget may cut it shorter)
STEP_LIMITS = {
    'env': 120,
    'tests': 240,
    'benchmark_ops': 150,
    'inference_eager': 60,
    'inference_mode': 60,
    'inference_bf16': 60,
    'quickstart_amp': 200,
    'quickstart_yolo_world_amp': 200,
}

ENV_CODE = r"""
import importlib.metadata as md, platform, torch
print('python', platform.python_version(), '|', platform.platform())
print('torch', torch.__version__, '| CUDA', torch.version.cuda, '| cuDNN',
      torch.backends.cudnn.version(), '| devices', torch.cuda.device_count())
for i in range(torch.cuda.device_count()):
    p = torch.cuda.get_device_properties(i)
    print(f'cuda:{i}', p.name, f'{p.total_memory / 2**30:.0f} GiB', f'sm_{p.major}{p.minor}')
for dist in ('torchvision', 'mmengine', 'mmcv', 'mmcv-lite', 'transformers', 'numpy',
             'opencv-python', 'opencv-python-headless', 'shapely', 'pycocotools',
             'faster-coco-eval'):
    try:
        print(dist, md.version(dist))
    except md.PackageNotFoundError:
        print(dist, '-')
import ai4rs, ai4rs.models  # noqa: E401  (the dependency checks run on import)
print('ai4rs', ai4rs.__version__, 'from', ai4rs.__file__)
"""

CUDA_CODE = (
    'import json, torch; print(json.dumps(dict(torch=torch.__version__, '
    'cuda=torch.version.cuda, available=torch.cuda.is_available())))'
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--out',
        default=None,
        help='folder of the log (default: $OUT if set, else work_dirs/gpu_check)',
    )
    parser.add_argument(
        '--work-dir',
        default=osp.join('work_dirs', 'gpu_check'),
        help='where the quick starts write their data and checkpoints',
    )
    parser.add_argument(
        '--budget', type=float, default=540, help='seconds for all steps together (default 540)'
    )
    parser.add_argument(
        '--epochs',
        type=int,
        default=None,
        help="epochs of the rotated quick start (default: the config's, 20)",
    )
    parser.add_argument(
        '--world-epochs',
        type=int,
        default=None,
        help="epochs of the YOLO-World quick start (default: the config's, 15)",
    )
    parser.add_argument(
        '--only',
        action='append',
        choices=sorted(STEP_LIMITS),
        help='run only this step (repeatable; env always runs)',
    )
    parser.add_argument(
        '--wheels',
        default=None,
        help='install the wheels in this folder (see --download-wheels) into a '
        'temporary folder used by every step',
    )
    parser.add_argument(
        '--download-wheels',
        metavar='DIR',
        default=None,
        help='download the wheels a bare PyTorch machine needs into DIR and exit',
    )
    parser.add_argument(
        '--dry-run', action='store_true', help='print the steps and their commands, run nothing'
    )
    return parser.parse_args(argv)


def steps(args) -> list[tuple[str, list[str], dict]]:
    """(name, command, extra environment) of every step, in order."""
    py, work = sys.executable, osp.abspath(args.work_dir)
    rotated = [
        py,
        osp.join(REPO_ROOT, 'tools', 'quickstart.py'),
        '--amp',
        '--work-dir',
        osp.join(work, 'quickstart'),
        '--data-root',
        osp.join(work, 'data', 'synthetic_dota'),
    ]
    if args.epochs is not None:
        rotated += ['--epochs', str(args.epochs)]
    world = [
        py,
        osp.join(REPO_ROOT, 'tools', 'quickstart_yolo_world.py'),
        '--amp',
        '--work-dir',
        osp.join(work, 'quickstart_yolo_world'),
        '--data-root',
        osp.join(work, 'data', 'synthetic_coco'),
    ]
    if args.world_epochs is not None:
        world += ['--epochs', str(args.world_epochs)]
    bench = [
        py,
        osp.join(REPO_ROOT, 'tools', 'analysis_tools', 'benchmark_ops.py'),
        '--only',
        'box_iou_rotated',
        '--only',
        'nms_rotated',
        '--only',
        'iou_memory',
        '--repeat',
        '5',
    ]
    # a test module that cannot be imported there (an optional package missing) must not
    # stop the others from running
    tests = [
        py,
        '-m',
        'pytest',
        osp.join(REPO_ROOT, 'tests'),
        '-k',
        'cuda',
        '-q',
        '-ra',
        '-p',
        'no:cacheprovider',
        '--continue-on-collection-errors',
    ]
    # the inference modes on CUDA: rotated YOLOX-s at 1024, batch 4, eager / inference mode
    # (Conv+BN fused, SiLU, chained SPP pools) / inference mode with a bfloat16 network
    infer = [
        py,
        osp.join(REPO_ROOT, 'tools', 'analysis_tools', 'benchmark.py'),
        osp.join(REPO_ROOT, 'configs', 'rotated_yolox', 'rotated_yolox_s_300e_dota_le90.py'),
        '--device',
        'cuda',
        '--batch-size',
        '4',
        '--num-iters',
        '20',
    ]
    return [
        ('env', [py, '-c', ENV_CODE], {}),
        ('tests', tests, {'AI4RS_TEST_DEVICES': 'cuda'}),
        ('benchmark_ops', bench, {}),
        ('inference_eager', infer, {}),
        ('inference_mode', infer + ['--inference-mode'], {}),
        ('inference_bf16', infer + ['--bf16'], {}),
        ('quickstart_amp', rotated, {}),
        ('quickstart_yolo_world_amp', world, {}),
    ]


class Log:
    """Write every line to the console and to the log file."""

    def __init__(self, path: str) -> None:
        os.makedirs(osp.dirname(path), exist_ok=True)
        self.path = path
        self.file = open(path, 'w', encoding='utf-8')

    def __call__(self, line: str = '') -> None:
        print(line, flush=True)
        self.file.write(line + '\n')
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def run_step(name: str, cmd: list[str], env: dict, timeout: float, log: Log) -> dict:
    """Run one step in its own process group, streaming its output to ``log``; the whole
    group (dataloader workers included) is killed after ``timeout`` seconds.

    Returns:
        dict: ``name``, ``status`` ('ok', 'failed (rc N)' or 'timeout after N s'),
        ``seconds``, ``ap50`` (the last ``AP50: x`` line, or None), ``tail`` (last lines).
    """
    log(f'\n===== {name}: {" ".join(cmd)}  (limit {timeout:.0f} s)')
    start = time.time()
    proc = subprocess.Popen(
        cmd,
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors='replace',
        start_new_session=True,
    )
    timed_out = threading.Event()

    def kill():
        timed_out.set()
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    timer = threading.Timer(timeout, kill)
    timer.start()
    tail, ap50, counts = [], None, None
    try:
        for line in proc.stdout:
            line = line.rstrip('\n')
            log(line)
            tail = (tail + [line])[-40:]
            match = re.match(r'^AP50: ([0-9.]+)$', line)
            if match:
                ap50 = float(match.group(1))
            if re.search(r'\b\d+ (passed|failed|skipped|errors?)\b.* in [0-9.]+s', line):
                counts = line.strip('= ')
        rc = proc.wait()
    finally:
        timer.cancel()
    seconds = time.time() - start
    if timed_out.is_set():
        status = f'timeout after {timeout:.0f} s'
    else:
        status = 'ok' if rc == 0 else f'failed (rc {rc})'
    log(f'----- {name}: {status}, {seconds:.1f} s')
    return dict(
        name=name, status=status, seconds=round(seconds, 1), ap50=ap50, counts=counts, tail=tail
    )


def run_all(step_list, env: dict, budget: float, log: Log, limits=None) -> list[dict]:
    """Run the steps in order within ``budget`` seconds; after a failed ``env`` step (ai4rs
    not importable) the others are reported as not run."""
    limits = STEP_LIMITS if limits is None else limits
    deadline = time.time() + budget
    results = []
    for name, cmd, extra in step_list:
        left = deadline - time.time()
        if left < 5 or (results and results[0]['name'] == 'env' and results[0]['status'] != 'ok'):
            why = 'no time left' if left < 5 else 'env failed'
            results.append(
                dict(
                    name=name,
                    status=f'not run ({why})',
                    seconds=0.0,
                    ap50=None,
                    counts=None,
                    tail=[],
                )
            )
            continue
        results.append(run_step(name, cmd, dict(env, **extra), min(limits[name], left), log))
    return results


def summary_lines(results: list[dict]) -> list[str]:
    """A table: step, status, seconds, AP50 (quick starts) or the test counts (pytest)."""
    lines = ['', '===== summary', f'{"step":<28}{"status":<24}{"seconds":>9}  AP50 / tests']
    for r in results:
        ap = '' if r['ap50'] is None else f'{r["ap50"]:.4f}'
        lines.append(
            f'{r["name"]:<28}{r["status"]:<24}{r["seconds"]:>9.1f}  '
            f'{ap or r.get("counts") or ""}'.rstrip()
        )
    return lines


def cuda_status(env: dict) -> dict:
    """torch's version and whether it sees CUDA, from a child process (this one never
    imports torch)."""
    proc = subprocess.run(
        [sys.executable, '-c', CUDA_CODE], env=env, capture_output=True, text=True, timeout=300
    )
    if proc.returncode != 0:
        return dict(
            torch=None,
            cuda=None,
            available=False,
            error=proc.stderr.strip().splitlines()[-1:] or ['?'],
        )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def download_wheels(folder: str) -> int:
    """pip download the :data:`WHEELS` for CPython 3.12 manylinux x86-64 into ``folder``."""
    import importlib.metadata as md

    specs = []
    for dist in WHEELS:
        try:
            specs.append(f'{dist}=={md.version(dist)}')
        except md.PackageNotFoundError:
            specs.append(dist)
    cmd = [
        sys.executable,
        '-m',
        'pip',
        'download',
        '--no-deps',
        '--only-binary=:all:',
        '--python-version',
        '3.12',
        '--implementation',
        'cp',
        '-d',
        folder,
    ]
    for platform in WHEEL_PLATFORMS:
        cmd += ['--platform', platform]
    print(' '.join(cmd + specs), flush=True)
    return subprocess.run(cmd + specs).returncode


def install_wheels(folder: str, log: Log) -> str:
    """Install every wheel of ``folder`` into a new temporary folder; returns it."""
    wheels = sorted(osp.join(folder, f) for f in os.listdir(folder) if f.endswith('.whl'))
    if not wheels:
        raise SystemExit(f'--wheels {folder}: no .whl files there')
    target = tempfile.mkdtemp(prefix='ai4rs_wheels_')
    cmd = [
        sys.executable,
        '-m',
        'pip',
        'install',
        '-q',
        '--no-index',
        '--no-deps',
        '--no-compile',
        '--no-cache-dir',
        '--upgrade',
        '--target',
        target,
    ] + wheels
    log(f'installing {len(wheels)} wheels into {target}')
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        log(proc.stdout + proc.stderr)
        raise SystemExit(f'--wheels {folder}: pip install failed (rc {proc.returncode})')
    return target


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.download_wheels:
        return download_wheels(args.download_wheels)
    step_list = [s for s in steps(args) if not args.only or s[0] == 'env' or s[0] in args.only]
    if args.dry_run:
        for name, cmd, extra in step_list:
            words = [f'{k}={v}' for k, v in extra.items()] + cmd
            print(f'{name} (limit {STEP_LIMITS[name]} s): {" ".join(words)}')
        return 0
    out = osp.abspath(args.out or os.environ.get('OUT') or osp.join('work_dirs', 'gpu_check'))
    log = Log(osp.join(out, 'gpu_check.log'))
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    paths = [REPO_ROOT] + ([env['PYTHONPATH']] if env.get('PYTHONPATH') else [])
    env['PYTHONPATH'] = os.pathsep.join(paths)
    status = cuda_status(env)
    if not status['available']:
        if status['torch'] is None:
            log(f'gpu_check: torch cannot be imported here ({status["error"][-1]}): nothing run')
        else:
            build = (
                'a CPU-only build' if status['cuda'] is None else f'built for CUDA {status["cuda"]}'
            )
            log(
                f'gpu_check: no CUDA device (torch {status["torch"]}, {build}, sees none): '
                'nothing run'
            )
        log.close()
        return 2
    log(
        f'gpu_check: torch {status["torch"]}, CUDA {status["cuda"]}; log {log.path}; '
        f'budget {args.budget:.0f} s'
    )
    try:
        nvsmi = subprocess.run(['nvidia-smi'], capture_output=True, text=True, timeout=60)
        log(nvsmi.stdout + nvsmi.stderr)
    except (OSError, subprocess.TimeoutExpired) as e:
        log(f'nvidia-smi: {e}')
    if args.wheels:
        site = install_wheels(args.wheels, log)
        env['PYTHONPATH'] = os.pathsep.join([site, env['PYTHONPATH']])
    results = run_all(step_list, env, args.budget, log)
    for line in summary_lines(results):
        log(line)
    with open(osp.join(out, 'gpu_check_summary.json'), 'w') as f:
        json.dump(
            dict(
                torch=status['torch'],
                cuda=status['cuda'],
                steps=[{k: v for k, v in r.items() if k != 'tail'} for r in results],
            ),
            f,
            indent=1,
        )
    log.close()
    return 0 if all(r['status'] == 'ok' for r in results) else 1


if __name__ == '__main__':
    sys.exit(main())
