"""Draw the precision-recall curve of every class from saved predictions.

    python tools/test.py CONFIG CHECKPOINT --out results.pkl
    python tools/analysis_tools/pr_curves.py CONFIG results.pkl --out pr.png [--iou-thr 0.5]

The predictions are evaluated by the config's own metric (``test_evaluator``: ``DOTAMetric``
for rotated models, ``CocoMetric`` for horizontal ones) against the config's test dataset,
and the curves drawn are the arrays that metric computes each class's AP from: DOTA's
per-detection recall / precision (AP by VOC07 11 points or area, the metric's ``eval_mode``),
COCOeval's interpolated precision at 101 recall points (AP = their mean). One PNG, one line
per class, the class's AP in the legend; the metric's per-class table is logged as in a test
run, and the per-class APs are printed.
"""

import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import ai4rs  # noqa: E402,F401,I001  (first: sets the OpenMP wait policy before torch loads)

from ai4rs.utils.cli import add_config_arguments, config_from_args  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Precision-recall curves per class from a tools/test.py --out pickle'
    )
    add_config_arguments(parser, 'the config the results were made with')
    parser.add_argument('results', help='the predictions pickle (tools/test.py --out)')
    parser.add_argument('--out', required=True, help='the PNG file to write')
    parser.add_argument(
        '--iou-thr',
        type=float,
        default=0.5,
        help='IoU threshold of the curves (default 0.5)',
    )
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if not args.out.lower().endswith('.png'):
        sys.exit(f'error: --out must be a .png file, got {args.out}')
    if not 0 < args.iou_thr <= 1:
        sys.exit(f'error: --iou-thr must be in (0, 1], got {args.iou_thr}')
    from ai4rs.evaluation.analysis import build_offline_metric, evaluate_pr_curves
    from ai4rs.evaluation.offline import OfflineResultsError, load_offline_results
    from ai4rs.visualization.pr_curves import curve_label, plot_pr_curves

    try:
        cfg = config_from_args(args)
        offline = load_offline_results(cfg, args.results)
        metric = build_offline_metric(cfg, offline.dataset_meta, args.iou_thr)
        _, curves = evaluate_pr_curves(metric, offline.samples, args.iou_thr)
    except (FileNotFoundError, OfflineResultsError, ValueError) as e:
        sys.exit(f'error: {e}')
    title = f'{type(metric).__name__} IoU={args.iou_thr:g} ({osp.basename(args.results)})'
    plot_pr_curves(curves, args.out, title=title)
    for curve in curves:
        print(curve_label(curve))
    print(f'precision-recall curves written to {args.out}')


if __name__ == '__main__':
    main()
