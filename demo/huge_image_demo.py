"""Detect objects in an image larger than the model input (sliced inference) and draw them.

    python demo/huge_image_demo.py IMG CONFIG CHECKPOINT [--out-file OUT.png] \
        [--patch-sizes 1024] [--patch-steps 824] [--img-ratios 1.0] [--merge-iou-thr 0.1] \
        [--batch-size 4] [--score-thr 0.3] [--device cpu] [--texts "vehicle,pool"]
        [--bf16 [auto]]

``--texts``: the vocabulary of an open-vocabulary model (YOLO-World, rotated YOLO-World), as
demo/yolo_world_demo.py reads it: "a,b,c", or a .txt (one per line) or .json (class-text
list) file; optional for a model with a vocabulary baked in (an exported .onnx file). Labels
are drawn with these texts.
"""

import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from ai4rs.apis import inference_detector_by_patches, init_detector  # noqa: E402
from ai4rs.apis.inference import model_vocabulary  # noqa: E402
from ai4rs.datasets.class_texts import read_vocabulary  # noqa: E402
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
    parser.add_argument('--patch-sizes', type=int, nargs='+', default=[1024])
    parser.add_argument('--patch-steps', type=int, nargs='+', default=[824])
    parser.add_argument('--img-ratios', type=float, nargs='+', default=[1.0])
    parser.add_argument('--merge-iou-thr', type=float, default=0.1)
    parser.add_argument('--batch-size', type=int, default=4)
    parser.add_argument(
        '--texts',
        default=None,
        help='vocabulary of an open-vocabulary model: "a,b,c" or a .txt / .json file',
    )
    args = parser.parse_args(argv)
    check_demo_files(parser, args)
    try:
        args.vocabulary = read_vocabulary(args.texts) if args.texts else None
    except (ValueError, FileNotFoundError) as e:
        parser.error(str(e))
    if len(args.patch_sizes) != len(args.patch_steps):
        parser.error(
            f'--patch-sizes {args.patch_sizes} and --patch-steps {args.patch_steps}: '
            'one step per size'
        )
    for size, step in zip(args.patch_sizes, args.patch_steps):
        if not 0 < step <= size:
            parser.error(f'--patch-steps: step {step} of size {size} must be in (0, {size}]')
    if min(args.img_ratios) <= 0 or args.batch_size < 1:
        parser.error('--img-ratios must be positive and --batch-size at least 1')
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
        # texts for a closed-set model, none for a model without a vocabulary
        texts = model_vocabulary(model, args.vocabulary)
    except (CheckpointMismatchError, NotACheckpointError, ValueError) as e:
        sys.exit(f'error: {e}')
    result = inference_detector_by_patches(
        model,
        args.img,
        sizes=args.patch_sizes,
        steps=args.patch_steps,
        ratios=args.img_ratios,
        merge_iou_thr=args.merge_iou_thr,
        batch_size=args.batch_size,
        texts=texts,
    )
    kept = draw_predictions(model, args.img, result, args.out_file, args.score_thr)
    print(
        f'\n{kept} objects with score >= {args.score_thr}'
        + (f'; drawing written to {args.out_file}' if args.out_file else '')
    )


if __name__ == '__main__':
    main()
