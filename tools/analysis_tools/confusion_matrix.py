"""The confusion matrix of saved predictions (mmdet 3.x's tool, for rotated and horizontal boxes).

    python tools/test.py CONFIG CHECKPOINT --out results.pkl
    python tools/analysis_tools/confusion_matrix.py CONFIG results.pkl SAVE_DIR \\
        [--score-thr 0.3] [--tp-iou-thr 0.5] [--nms-iou-thr IOU] [--color-theme plasma] \\
        [--show] [--cfg-options KEY=VALUE ...]

Rows are ground truth classes, columns predicted classes, the last row and column background
(see :mod:`ai4rs.evaluation.functional.confusion_matrix` for the counting rules). Writes
``SAVE_DIR/confusion_matrix.png`` (each row in percent of its sum) and
``SAVE_DIR/confusion_matrix.csv`` (the counts, with the class names). ``--show`` prints the
counts as a table (no window is opened).
"""

import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from ai4rs.evaluation.functional.confusion_matrix import calculate_confusion_matrix  # noqa: E402
from ai4rs.evaluation.offline import load_offline_results  # noqa: E402
from ai4rs.utils.cli import add_config_arguments, config_from_args, parse_tool_args  # noqa: E402
from ai4rs.utils.config import ReservedConfigNameError  # noqa: E402
from ai4rs.visualization.confusion_matrix import (  # noqa: E402
    format_confusion_matrix,
    save_confusion_matrix,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Generate the confusion matrix of detections')
    add_config_arguments(parser, 'test config file path')
    parser.add_argument('prediction_path', help='results pickle of tools/test.py --out')
    parser.add_argument('save_dir', help='directory where the confusion matrix is saved')
    parser.add_argument(
        '--show', action='store_true', help='also print the counts as a table (no window)'
    )
    parser.add_argument('--color-theme', default='plasma', help='matplotlib colormap name')
    parser.add_argument('--score-thr', type=float, default=0.3, help='score threshold')
    parser.add_argument(
        '--tp-iou-thr', type=float, default=0.5, help='IoU at which a detection finds an object'
    )
    parser.add_argument(
        '--nms-iou-thr', type=float, default=None, help='NMS IoU per class first (default: none)'
    )
    return parse_tool_args(parser, argv)


def main(argv=None):
    args = parse_args(argv)
    if not 0 < args.tp_iou_thr <= 1:
        raise SystemExit(f'error: --tp-iou-thr must be in (0, 1], got {args.tp_iou_thr}')
    try:
        import matplotlib

        if args.color_theme not in matplotlib.colormaps:
            raise SystemExit(f'error: --color-theme {args.color_theme!r} is not a colormap')
        cfg = config_from_args(args)
        results = load_offline_results(cfg, args.prediction_path)
        matrix = calculate_confusion_matrix(
            results.samples,
            len(results.classes),
            score_thr=args.score_thr,
            tp_iou_thr=args.tp_iou_thr,
            nms_iou_thr=args.nms_iou_thr,
        )
    except (FileNotFoundError, ValueError, ReservedConfigNameError) as e:
        raise SystemExit(f'error: {e}') from None
    labels = [*results.classes, 'background']
    paths = save_confusion_matrix(matrix, labels, args.save_dir, color_theme=args.color_theme)
    if args.show:
        print(format_confusion_matrix(matrix, labels))
    print(f'confusion matrix saved to {paths["png"]} (counts: {paths["csv"]})')
    return matrix


if __name__ == '__main__':
    main()
