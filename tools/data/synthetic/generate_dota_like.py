"""Write a small DOTA-style dataset of rotated objects (see ai4rs.datasets.preparation.synthetic_dota).

    python tools/data/synthetic/generate_dota_like.py data/synthetic_dota \
        [--num-train 160] [--num-val 40] [--img-size 256] [--seed 0]
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))))

from ai4rs.datasets.preparation.synthetic_dota import (  # noqa: E402
    CLASSES,
    generate_dataset,
    write_class_texts,
)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out_dir')
    parser.add_argument('--num-train', type=int, default=160)
    parser.add_argument('--num-val', type=int, default=40)
    parser.add_argument('--img-size', type=int, default=256)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    generate_dataset(args.out_dir, args.num_train, args.num_val, args.img_size, args.seed)
    # the class names as texts, for the open-vocabulary rotated quick start config
    write_class_texts(args.out_dir)
    print(f'wrote {args.num_train} train and {args.num_val} val images of classes '
          f'{", ".join(CLASSES)} to {args.out_dir}')


if __name__ == '__main__':
    main()
