"""Write a small COCO-format dataset of named coloured shapes (see ai4rs.datasets.preparation.synthetic_coco).

    python tools/data/coco/make_synthetic_coco.py data/synthetic_coco \
        [--num-train 160] [--num-val 40] [--img-size 320 | --img-size 320 240] [--seed 0] \
        [--img-suffix jpg]
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))))

from ai4rs.datasets.preparation.synthetic_coco import CLASSES, generate_dataset  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out_dir')
    parser.add_argument('--num-train', type=int, default=160)
    parser.add_argument('--num-val', type=int, default=40)
    parser.add_argument('--img-size', type=int, nargs='+', default=[320],
                        help='side of square images, or WIDTH HEIGHT')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--img-suffix', default='jpg', choices=['jpg', 'png'])
    args = parser.parse_args(argv)
    if len(args.img_size) not in (1, 2):
        parser.error('--img-size takes one value (square) or two (WIDTH HEIGHT)')
    size = args.img_size[0] if len(args.img_size) == 1 else tuple(args.img_size)
    generate_dataset(args.out_dir, args.num_train, args.num_val, size, args.seed,
                     args.img_suffix)
    print(f'wrote {args.num_train} train and {args.num_val} val images of classes '
          f'{", ".join(CLASSES)} to {args.out_dir} '
          f'(annotations/instances_{{train,val}}.json, texts/class_texts.json)')


if __name__ == '__main__':
    main()
