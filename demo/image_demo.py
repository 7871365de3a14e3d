"""Detect objects in one image and draw them.

    python demo/image_demo.py IMG CONFIG CHECKPOINT [--out-file OUT.png] [--score-thr 0.3] \
        [--device cpu] [--bf16 [auto]]
"""

import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from ai4rs.apis import inference_detector, init_detector  # noqa: E402
from ai4rs.utils.checkpoint import CheckpointMismatchError, NotACheckpointError  # noqa: E402
from ai4rs.utils.cli import (  # noqa: E402
    add_bf16_argument,
    add_demo_arguments,
    check_demo_files,
)
from ai4rs.utils.paths import add_project_paths  # noqa: E402
from ai4rs.visualization import draw_predictions  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_demo_arguments(parser)
    add_bf16_argument(parser)
    args = parser.parse_args(argv)
    check_demo_files(parser, args)
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
            bf16=args.bf16,
        )
    except (CheckpointMismatchError, NotACheckpointError, ValueError) as e:
        sys.exit(f'error: {e}')
    result = inference_detector(model, args.img)
    kept = draw_predictions(model, args.img, result, args.out_file, args.score_thr)
    print(
        f'{kept} objects with score >= {args.score_thr}'
        + (f'; drawing written to {args.out_file}' if args.out_file else '')
    )


if __name__ == '__main__':
    main()
