"""Convert YOLO-OBB (Ultralytics) label files into DOTA label files.

    python tools/dataset_converters/yolo_obb2dota.py LABEL_DIR IMG_DIR OUT_DIR \
        --classes data.yaml | classes.txt | name1,name2,... \
        [--tolerance 0.01] [--strict] [--overwrite]

Each ``LABEL_DIR/{stem}.txt`` (lines ``class_index x1 y1 x2 y2 x3 y3 x4 y4``, normalised) becomes
``OUT_DIR/{stem}.txt`` (``x1 y1 ... x4 y4 class_name 0``, pixels of ``IMG_DIR/{stem}.*``).
See docs/datasets.md, "Converting annotations".
"""

import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from ai4rs.datasets.preparation.converters import (  # noqa: E402
    DEFAULT_TOLERANCE,
    add_common_args,
    load_class_names,
    run_conversion,
    yolo_obb_to_dota,
)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('label_dir', help='folder of YOLO-OBB .txt label files')
    parser.add_argument('img_dir', help='folder of the images (same stems), for their sizes')
    parser.add_argument('out_dir', help='folder of the DOTA label files to write')
    parser.add_argument(
        '--classes',
        nargs='+',
        required=True,
        help='a data.yaml (names:), a text file (one name per line) or the names',
    )
    parser.add_argument(
        '--tolerance',
        type=float,
        default=DEFAULT_TOLERANCE,
        help='normalised corners within [-t, 1 + t] are kept (unclipped), others skipped',
    )
    add_common_args(parser)
    args = parser.parse_args(argv)
    try:
        classes = load_class_names(args.classes)
    except (ValueError, FileNotFoundError) as e:
        parser.error(str(e))
    return run_conversion(
        yolo_obb_to_dota,
        args.label_dir,
        args.img_dir,
        args.out_dir,
        classes,
        tolerance=args.tolerance,
        strict=args.strict,
        overwrite=args.overwrite,
    )


if __name__ == '__main__':
    sys.exit(main())
