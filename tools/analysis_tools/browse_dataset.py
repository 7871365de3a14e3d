"""Draw what the training pipeline produces: images with their (rotated) GT boxes and class names.

    python tools/analysis_tools/browse_dataset.py CONFIG --output-dir DIR --not-show \
        [--max-images N]
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import ai4rs  # noqa: E402,F401,I001  (first: sets the OpenMP wait policy before torch loads)
from mmengine.utils import ProgressBar  # noqa: E402

from ai4rs.registry import DATASETS, VISUALIZERS  # noqa: E402
from ai4rs.utils.cli import add_config_arguments, config_from_args  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Browse a dataset through its pipeline')
    add_config_arguments(parser)
    parser.add_argument('--split', choices=['train', 'val', 'test'], default='train',
                        help='which dataloader\'s dataset to browse')
    parser.add_argument('--output-dir', default=None, help='write the drawings to this directory')
    parser.add_argument('--not-show', default=False, action='store_true',
                        help='do not open a window')
    parser.add_argument('--show-interval', type=float, default=2,
                        help='seconds each image is shown')
    parser.add_argument('--max-images', type=int, default=None, help='stop after N images')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.not_show and args.output_dir is None:
        raise SystemExit('nothing to do: give --output-dir, or drop --not-show')
    cfg = config_from_args(args)

    dataset = DATASETS.build(cfg[f'{args.split}_dataloader'].dataset)
    visualizer = VISUALIZERS.build(cfg.visualizer)
    visualizer.dataset_meta = dataset.metainfo

    total = len(dataset) if args.max_images is None else min(args.max_images, len(dataset))
    progress = ProgressBar(total)
    for i in range(total):
        item = dataset[i]
        img = item['inputs'].permute(1, 2, 0).numpy()[..., ::-1]  # BGR tensor -> RGB image
        sample = item['data_samples']
        name = osp.basename(sample.get('img_path', f'{i:06d}.png'))
        out_file = osp.join(args.output_dir, f'{i:06d}_{osp.splitext(name)[0]}.png') \
            if args.output_dir is not None else None
        visualizer.add_datasample(name, img, data_sample=sample, draw_pred=False,
                                  show=not args.not_show, wait_time=args.show_interval,
                                  out_file=out_file)
        progress.update()


if __name__ == '__main__':
    main()
