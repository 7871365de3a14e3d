"""Draw what a dataset's pipeline produces: the images with their ground truth.

    python tools/analysis_tools/browse_dataset.py CONFIG --output-dir DIR --not-show \
        [--phase train|val|test] [--max-images N]

Each image is drawn as the pipeline leaves it (after Mosaic, affine, letterbox, flip...) with
its boxes (any box type: horizontal on COCO, rotated on DOTA), its polygon masks when the
pipeline keeps them (``LoadAnnotations(with_mask=True)`` and no ``RemoveDataElement`` of
``gt_masks``), and the name of each box: for YOLO-World samples the sample's own ``texts``
(``RandomLoadText`` remaps the labels to its shuffled prompt list), else the dataset's classes.
A test pipeline that loads the annotations after resizing (they stay in the original image's
pixels, for the metric) gets its boxes mapped onto the resized image with the sample's
``scale_factor`` and ``pad_param``.
"""

import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import ai4rs  # noqa: E402,F401,I001  (first: sets the OpenMP wait policy before torch loads)
import numpy as np  # noqa: E402
from mmengine.utils import ProgressBar  # noqa: E402

from ai4rs.registry import DATASETS, VISUALIZERS  # noqa: E402
from ai4rs.structures.mask import PolygonMasks  # noqa: E402
from ai4rs.utils.cli import add_config_arguments, config_from_args  # noqa: E402

#: transforms that resize (and letterbox) the image
RESIZE_TYPES = ('Resize', 'RandomResize', 'YOLOv5KeepRatioResize', 'LetterResize', 'FixShapeResize')


def _type_name(step) -> str:
    name = step.get('type', '') if isinstance(step, dict) else type(step).__name__
    return name.rsplit('.', 1)[-1] if isinstance(name, str) else name.__name__


def annotations_follow_resize(pipeline) -> bool:
    """True when ``LoadAnnotations`` comes after a resizing step (the YOLO and DOTA test
    pipelines): the loaded boxes then stay in the original image's pixels."""
    names = [_type_name(step) for step in pipeline]
    if 'LoadAnnotations' not in names:
        return False
    return any(n in RESIZE_TYPES for n in names[: names.index('LoadAnnotations')])


def map_gt_to_image(data_sample):
    """A copy of ``data_sample`` whose ground truth (boxes of any type, polygon masks) is
    moved from original-image pixels onto the pipeline's image: ``p * scale_factor +
    (left, top)`` with ``scale_factor`` (sx, sy) and ``pad_param`` (top, bottom, left, right;
    zero padding when absent)."""
    if 'scale_factor' not in data_sample:
        raise KeyError(
            'browse_dataset: the pipeline loads annotations after resizing, so '
            "the boxes need the sample's scale_factor to be drawn; add "
            "'scale_factor' to PackDetInputs' meta_keys"
        )
    sx, sy = (float(v) for v in data_sample.scale_factor)
    top, _, left, _ = (float(v) for v in data_sample.get('pad_param', (0, 0, 0, 0)))
    data_sample = data_sample.clone()
    gt = data_sample.gt_instances.clone()
    data_sample.gt_instances = gt
    if 'bboxes' in gt:
        bboxes = gt.bboxes.clone()
        bboxes.rescale_((sx, sy))
        bboxes.translate_((left, top))
        gt.bboxes = bboxes
    if 'masks' in gt and isinstance(gt.masks, PolygonMasks):
        h, w = data_sample.img_shape[:2]
        matrix = np.array([[sx, 0, left], [0, sy, top], [0, 0, 1]], dtype=np.float64)
        gt.masks = gt.masks.project(matrix, h, w)
    return data_sample


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Browse a dataset through its pipeline')
    add_config_arguments(parser)
    parser.add_argument(
        '--phase',
        '--split',
        dest='phase',
        choices=['train', 'val', 'test'],
        default='train',
        help="which dataloader's dataset (and pipeline) to browse",
    )
    parser.add_argument('--output-dir', default=None, help='write the drawings to this directory')
    parser.add_argument(
        '--not-show', default=False, action='store_true', help='do not open a window'
    )
    parser.add_argument(
        '--show-interval', type=float, default=2, help='seconds each image is shown'
    )
    parser.add_argument('--max-images', type=int, default=None, help='stop after N images')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.not_show and args.output_dir is None:
        raise SystemExit('nothing to do: give --output-dir, or drop --not-show')
    cfg = config_from_args(args)

    dataset_cfg = cfg[f'{args.phase}_dataloader'].dataset
    dataset = DATASETS.build(dataset_cfg)
    visualizer = VISUALIZERS.build(cfg.visualizer)
    visualizer.dataset_meta = dataset.metainfo
    to_image = annotations_follow_resize(dataset_cfg.get('pipeline', []))
    if to_image:
        print(
            f'browse_dataset: the {args.phase} pipeline loads annotations after resizing; '
            'they are drawn mapped onto the image with scale_factor and pad_param'
        )

    total = len(dataset) if args.max_images is None else min(args.max_images, len(dataset))
    progress = ProgressBar(total)
    for i in range(total):
        item = dataset[i]
        img = item['inputs'].permute(1, 2, 0).numpy()[..., ::-1]  # BGR tensor -> RGB image
        sample = item['data_samples']
        if to_image:
            sample = map_gt_to_image(sample)
        name = osp.basename(sample.get('img_path', f'{i:06d}.png'))
        out_file = (
            osp.join(args.output_dir, f'{i:06d}_{osp.splitext(name)[0]}.png')
            if args.output_dir is not None
            else None
        )
        visualizer.add_datasample(
            name,
            img,
            data_sample=sample,
            draw_pred=False,
            show=not args.not_show,
            wait_time=args.show_interval,
            out_file=out_file,
        )
        progress.update()


if __name__ == '__main__':
    main()
