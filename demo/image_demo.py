"""Detect objects in one image and draw them.

    python demo/image_demo.py IMG CONFIG CHECKPOINT [--out-file OUT.png] [--score-thr 0.3] \
        [--device cpu]
"""

import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from ai4rs.apis import inference_detector, init_detector  # noqa: E402
from ai4rs.utils.checkpoint import CheckpointMismatchError, NotACheckpointError  # noqa: E402
from ai4rs.utils.paths import add_project_paths  # noqa: E402
from ai4rs.visualization import draw_predictions  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('img', help='image file')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out-file', default=None, help='write the drawing here')
    parser.add_argument(
        '--allow-partial-load',
        action='store_true',
        help='load a checkpoint that does not fit the model (default: refuse it)',
    )
    parser.add_argument('--device', default='cpu', help='e.g. cpu or cuda:0')
    parser.add_argument('--score-thr', type=float, default=0.3, help='draw scores above this')
    args = parser.parse_args(argv)
    for what, path in (
        ('image', args.img),
        ('config', args.config),
        ('checkpoint', args.checkpoint),
    ):
        if '://' not in path and not osp.isfile(path):
            parser.error(f'{what} file not found: {path}')
    return args


def main(argv=None):
    args = parse_args(argv)
    add_project_paths()
    try:
        model = init_detector(
            args.config,
            args.checkpoint,
            device=args.device,
            allow_partial_load=args.allow_partial_load,
        )
    except (CheckpointMismatchError, NotACheckpointError) as e:
        sys.exit(f'error: {e}')
    result = inference_detector(model, args.img)
    kept = draw_predictions(model, args.img, result, args.out_file, args.score_thr)
    print(
        f'{kept} objects with score >= {args.score_thr}'
        + (f'; drawing written to {args.out_file}' if args.out_file else '')
    )


if __name__ == '__main__':
    main()
