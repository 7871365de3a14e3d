"""Split DOTA images into overlapping patches (mmrotate's img_split interface).

Examples::

    # single scale, DOTA-v1.0 train+val -> data/split_ss_dota/trainval
    python tools/data/dota/split/img_split.py \
        --base-json tools/data/dota/split/split_configs/ss_trainval.json

    # explicit options (any option also overrides the --base-json values)
    python tools/data/dota/split/img_split.py --img-dirs data/DOTA/val/images \
        --ann-dirs data/DOTA/val/labelTxt --sizes 1024 --gaps 200 \
        --padding-value 104 116 124 --save-dir data/split_ss_dota/val --nproc 8

Output: ``SAVE_DIR/images/{id}__{window}__{x}___{y}{ext}``,
``SAVE_DIR/annfiles/{same}.txt`` (one per patch, empty if it holds no object) and
``SAVE_DIR/{timestamp}.log``. The save dir is required and must not exist. An
image that cannot be read is reported and skipped; the others are still split,
and the exit status is then 1 (0: every image split; 2: bad options or paths). The logic lives in
``ai4rs.datasets.preparation.dota_split``.
"""
import argparse
import json
import sys

from ai4rs.datasets.preparation.dota_split import SAVE_EXTENSIONS, split_dataset


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Split DOTA images into patches')
    parser.add_argument('--base-json', type=str, default=None,
                        help='json file of default values (split_configs/*.json)')
    parser.add_argument('--nproc', type=int, default=10, help='number of processes')
    parser.add_argument('--img-dirs', nargs='+', type=str, default=None,
                        help='image folders (required)')
    parser.add_argument('--ann-dirs', nargs='+', type=str, default=None,
                        help='label folders, one per image folder (optional)')
    parser.add_argument('--sizes', nargs='+', type=int, default=[1024],
                        help='window sizes')
    parser.add_argument('--gaps', nargs='+', type=int, default=[512],
                        help='overlaps between neighbouring windows, one per size')
    parser.add_argument('--rates', nargs='+', type=float, default=[1.],
                        help='window = int(size / rate); images are not resized')
    parser.add_argument('--img-rate-thr', type=float, default=0.6,
                        help='minimal share of a window inside the image')
    parser.add_argument('--iof-thr', type=float, default=0.7,
                        help='minimal share of an object inside a window')
    parser.add_argument('--no-padding', action='store_true',
                        help='do not pad edge patches to the window size')
    parser.add_argument('--padding-value', nargs='+', type=int, default=[0],
                        help='padding value: 1 number or one per channel (B G R)')
    parser.add_argument('--save-dir', type=str, default=None,
                        help='output folder, required (directly or in --base-json); it must '
                        'not exist yet')
    parser.add_argument('--save-ext', type=str, default='.png',
                        help=f'patch image extension, one of {SAVE_EXTENSIONS}')
    parser.add_argument('--no-progress', action='store_true',
                        help='hide the progress bar (shown only when stdout is a terminal)')
    return parser


def parse_args(argv=None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.base_json is not None:
        try:
            with open(args.base_json, encoding='utf-8') as f:
                base = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            parser.error(f'cannot read --base-json {args.base_json}: {e}')
        dests = {action.dest for action in parser._actions}
        unknown = sorted(set(base) - dests)
        if unknown:
            parser.error(f'{args.base_json}: unknown keys {unknown}')
        parser.set_defaults(**base)
        args = parser.parse_args(argv)  # the command line overrides the json

    if args.img_dirs is None:
        parser.error('--img-dirs is required (directly or in --base-json)')
    if args.save_dir is None:
        parser.error('--save-dir is required (directly or in --base-json), e.g. '
                     '--save-dir data/split_ss_dota/val; the folder must not exist yet')
    if args.ann_dirs is not None and len(args.ann_dirs) != len(args.img_dirs):
        parser.error('--ann-dirs must give one folder per --img-dirs folder')
    if len(args.sizes) != len(args.gaps):
        parser.error('--sizes and --gaps must have the same length')
    if not (len(args.sizes) == 1 or len(args.rates) == 1):
        parser.error('either --sizes or --rates must have a single value')
    if args.save_ext not in SAVE_EXTENSIONS:
        parser.error(f'--save-ext must be one of {SAVE_EXTENSIONS}')
    if not 0 <= args.iof_thr <= 1:
        parser.error('--iof-thr must be in [0, 1]')
    if len(args.padding_value) not in (1, 3):
        parser.error('--padding-value takes 1 or 3 numbers')
    if args.nproc < 1:
        parser.error('--nproc must be >= 1')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        summary = split_dataset(
            img_dirs=args.img_dirs, ann_dirs=args.ann_dirs, save_dir=args.save_dir,
            sizes=args.sizes, gaps=args.gaps, rates=args.rates,
            img_rate_thr=args.img_rate_thr, iof_thr=args.iof_thr,
            no_padding=args.no_padding, padding_value=args.padding_value,
            save_ext=args.save_ext, nproc=args.nproc, progress=not args.no_progress and sys.stdout.isatty())
    except (FileExistsError, FileNotFoundError, ValueError) as e:
        print(f'img_split: error: {e}', file=sys.stderr)
        return 2
    print(f"\nSplit {summary['images']} images into {summary['patches']} patches "
          f'in {args.save_dir}')
    failed = summary['failed']
    if not failed:
        return 0
    for img_path, error in failed:
        print(f'  {img_path}: {error}', file=sys.stderr)
    total = summary['images'] + len(failed)
    print(f'img_split: {len(failed)} of {total} images could not be split and were skipped '
          '(listed above); exit status 1', file=sys.stderr)
    return 1


if __name__ == '__main__':
    sys.exit(main())
