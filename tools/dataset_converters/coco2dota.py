"""Convert a COCO json (polygon / RLE segmentation, or boxes) into DOTA label files.

    python tools/dataset_converters/coco2dota.py ANN_FILE OUT_DIR [--strict] [--overwrite]

One ``OUT_DIR/{image stem}.txt`` per image (empty for an image without annotations); each
annotation is the minimum-area rectangle of its segmentation (of its bbox without one),
``iscrowd`` ones with difficulty 1. See docs/datasets.md, "Converting annotations".
"""

import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from ai4rs.datasets.preparation.converters import (  # noqa: E402
    add_common_args,
    coco_to_dota,
    run_conversion,
)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('ann_file', help='a COCO json')
    parser.add_argument('out_dir', help='folder of the DOTA label files to write')
    add_common_args(parser)
    args = parser.parse_args(argv)
    return run_conversion(
        coco_to_dota, args.ann_file, args.out_dir, strict=args.strict, overwrite=args.overwrite
    )


if __name__ == '__main__':
    sys.exit(main())
