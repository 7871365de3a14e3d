"""Draw the images a model does best and worst on (mmdet 3.x's ``analyze_results.py``).

    python tools/test.py CONFIG CHECKPOINT --out results.pkl
    python tools/analysis_tools/analyze_results.py CONFIG results.pkl SHOW_DIR \
        [--topk 20] [--show-score-thr 0] [--cfg-options ...]

Each image's mAP is computed on that image alone by the config's own metric
(:func:`ai4rs.evaluation.analysis.per_image_ap`): DOTA-style mAP for ``DOTAMetric`` (rotated
models), COCO bbox mAP (AP@[.5:.95]) for ``CocoMetric`` (horizontal ones). The ``--topk``
images of highest mAP are drawn into ``SHOW_DIR/good`` and the ``--topk`` of lowest into
``SHOW_DIR/bad``, ground truth on the left and predictions (score >= ``--show-score-thr``) on
the right, named ``{image name}_{mAP rounded to 3 decimals}{ext}`` as mmdet names them.
"""

import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import ai4rs  # noqa: E402,F401,I001  (first: sets the OpenMP wait policy before torch loads)

from ai4rs.utils.cli import add_config_arguments, config_from_args  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Draw the best and worst images by per-image mAP from a results pickle'
    )
    add_config_arguments(parser, 'the config the results were made with')
    parser.add_argument('prediction_path', help='the predictions pickle (tools/test.py --out)')
    parser.add_argument('show_dir', help='where the good/ and bad/ images are written')
    parser.add_argument(
        '--topk', type=int, default=20, help='number of best and of worst images to draw'
    )
    parser.add_argument(
        '--show-score-thr', type=float, default=0, help='predictions below it are not drawn'
    )
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.topk < 1:
        sys.exit(f'error: --topk must be a positive number of images, got {args.topk}')
    from ai4rs.datasets.image_io import config_to_uint8_rule, read_image
    from ai4rs.evaluation.analysis import (
        build_offline_metric,
        per_image_ap,
        rank_images,
        ranked_file_name,
    )
    from ai4rs.evaluation.metrics import DOTAMetric
    from ai4rs.evaluation.offline import OfflineResultsError, load_offline_results
    from ai4rs.visualization import DetLocalVisualizer
    from ai4rs.visualization.result_images import draw_gt_and_predictions

    try:
        cfg = config_from_args(args)
        offline = load_offline_results(cfg, args.prediction_path)
        metric = build_offline_metric(cfg, offline.dataset_meta)
        aps = per_image_ap(metric, offline.samples)
    except (FileNotFoundError, OfflineResultsError, ValueError) as e:
        sys.exit(f'error: {e}')
    pred_box_type = metric.predict_box_type if isinstance(metric, DOTAMetric) else 'hbox'
    visualizer = DetLocalVisualizer.get_instance('ai4rs_analyze_results')
    visualizer.dataset_meta = offline.dataset_meta
    rule = config_to_uint8_rule(cfg)
    good, bad = rank_images(aps, args.topk)
    for folder, indices in (('good', good), ('bad', bad)):
        for i in indices:
            sample = offline.samples[i]
            image = read_image(sample['img_path'], to_uint8_rule=rule)[..., ::-1]
            out_file = osp.join(args.show_dir, folder, ranked_file_name(sample['img_path'], aps[i]))
            draw_gt_and_predictions(
                visualizer, image, sample, pred_box_type, out_file, args.show_score_thr
            )
        print(f'{len(indices)} {folder} images written to {osp.join(args.show_dir, folder)}')
    name = 'bbox_mAP' if pred_box_type == 'hbox' else 'mAP'
    print(f'per-image {name}: mean {aps.mean():.4f}, min {aps.min():.4f}, max {aps.max():.4f}')


if __name__ == '__main__':
    main()
