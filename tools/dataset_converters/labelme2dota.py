"""Convert labelme json files (polygons, rectangles, rotated rectangles) into DOTA label files.

    python tools/dataset_converters/labelme2dota.py JSON_DIR OUT_DIR \
        [--classes classes.txt | name1,name2,...] [--strict] [--overwrite]

Each ``JSON_DIR/{stem}.json`` becomes ``OUT_DIR/{stem}.txt``: 4-point polygons and ``rotation``
shapes as they are, other polygons as their minimum-area rectangle, ``rectangle`` shapes as
their 4 corners. See docs/datasets.md, "Converting annotations".
"""

import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from ai4rs.datasets.preparation.converters import (  # noqa: E402
    add_common_args,
    label_files,
    labelme_to_dota,
    load_class_names,
    run_conversion,
)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('json_dir', help='folder of labelme .json files')
    parser.add_argument('out_dir', help='folder of the DOTA label files to write')
    parser.add_argument(
        '--classes',
        nargs='+',
        help='allowed labels: a data.yaml (names:), a text file or the names '
        '(default: every one-word label)',
    )
    add_common_args(parser)
    args = parser.parse_args(argv)
    try:
        classes = load_class_names(args.classes) if args.classes else None
        json_paths = label_files(args.json_dir, '.json')
    except (ValueError, FileNotFoundError) as e:
        parser.error(str(e))
    return run_conversion(
        labelme_to_dota,
        json_paths,
        args.out_dir,
        classes,
        strict=args.strict,
        overwrite=args.overwrite,
    )


if __name__ == '__main__':
    sys.exit(main())
