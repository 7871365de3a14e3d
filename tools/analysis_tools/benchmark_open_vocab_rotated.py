"""Does naming classes by text cost accuracy? The two rotated quick starts on the same data.

    python tools/analysis_tools/benchmark_open_vocab_rotated.py [--epochs 20] \
        [--work-dir work_dirs/benchmark_open_vocab_rotated] [--data-root data/synthetic_dota]

Runs ``tools/quickstart.py`` (rotated YOLOX, fixed classes) and
``tools/quickstart_yolo_world_rotated.py`` (rotated YOLO-World, classes named by their texts; a
tiny random CLIP unless ``--text-model``) one after the other, as a user runs them (subprocesses),
on the same generated data with the same number of epochs, and prints each one's held-out AP50 and
minutes, and the ratios open-vocabulary / rotated YOLOX (both measured in this run).
"""

import argparse
import os.path as osp
import re
import subprocess
import sys

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

RUNS = (
    ('rotated YOLOX', 'quickstart.py'),
    ('open-vocabulary rotated YOLO-World', 'quickstart_yolo_world_rotated.py'),
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--epochs', type=int, default=20, help='epochs of both (default 20)')
    parser.add_argument('--work-dir', default='work_dirs/benchmark_open_vocab_rotated')
    parser.add_argument('--data-root', default='data/synthetic_dota')
    parser.add_argument('--text-model', default=None, help='a local CLIP text model directory')
    return parser.parse_args(argv)


def run_quickstart(script: str, args, work_dir: str) -> tuple[float, float]:
    """Run one quick start; returns (AP50, minutes) from what it prints."""
    cmd = [
        sys.executable,
        osp.join(REPO_ROOT, 'tools', script),
        '--work-dir',
        work_dir,
        '--data-root',
        args.data_root,
        '--epochs',
        str(args.epochs),
    ]
    if args.text_model and 'yolo_world' in script:
        cmd += ['--text-model', args.text_model]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f'{script} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}')
    ap50 = float(re.search(r'^AP50: ([0-9.]+)$', proc.stdout, re.M).group(1))
    minutes = float(re.search(r'^time: ([0-9.]+) min', proc.stdout, re.M).group(1))
    return ap50, minutes


def main(argv=None):
    args = parse_args(argv)
    results = {}
    for name, script in RUNS:
        work_dir = osp.join(args.work_dir, osp.splitext(script)[0])
        results[name] = run_quickstart(script, args, work_dir)
        print(f'{name}: AP50 {results[name][0]:.4f}, {results[name][1]:.1f} min', flush=True)
    (base, (ap_b, min_b)), (ov, (ap_o, min_o)) = results.items()
    print(f'\nsame data ({args.data_root}), {args.epochs} epochs each')
    print('| model | AP50 | minutes |')
    print('|---|---:|---:|')
    for name, (ap, minutes) in results.items():
        print(f'| {name} | {ap:.4f} | {minutes:.1f} |')
    print(f'AP50 {ov} / {base}: {ap_o / ap_b:.3f}')
    print(f'time {ov} / {base}: {min_o / min_b:.2f}')
    return results


if __name__ == '__main__':
    main()
