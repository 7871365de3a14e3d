"""Convert DOTA label files into a COCO json of horizontal boxes (for horizontal-box tools).

    python tools/dataset_converters/dota2coco.py LABEL_DIR IMG_DIR OUT_FILE \
        [--classes data.yaml | classes.txt | name1,name2,...] [--strict] [--overwrite]

``bbox`` is each polygon's enclosing box, ``segmentation`` the polygon, ``area`` its area;
difficult objects (difficulty >= 1) get ``iscrowd`` 1. Classes default to DOTA-v1.0's 15.
See docs/datasets.md, "Converting annotations".
"""

import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from ai4rs.datasets.dota import DOTA_V1_CLASSES  # noqa: E402
from ai4rs.datasets.preparation.converters import (  # noqa: E402
    add_common_args,
    dota_to_coco,
    load_class_names,
    run_conversion,
)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('label_dir', help='folder of DOTA .txt label files')
    parser.add_argument('img_dir', help='folder of the images (same stems)')
    parser.add_argument('out_file', help='the COCO json to write')
    parser.add_argument(
        '--classes',
        nargs='+',
        help='categories (ids 1.. in this order): a data.yaml (names:), a text file or the '
        'names; default: the 15 DOTA-v1.0 classes',
    )
    add_common_args(parser)
    args = parser.parse_args(argv)
    try:
        classes = load_class_names(args.classes) if args.classes else list(DOTA_V1_CLASSES)
    except (ValueError, FileNotFoundError) as e:
        parser.error(str(e))
    return run_conversion(
        dota_to_coco,
        args.label_dir,
        args.img_dir,
        args.out_file,
        classes,
        strict=args.strict,
        overwrite=args.overwrite,
    )


if __name__ == '__main__':
    sys.exit(main())
