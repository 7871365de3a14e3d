"""Write a small georeferenced scene of known objects (a GeoTIFF and its DOTA labels).

    python tools/data/synthetic/generate_geotiff_scene.py data/scene.tif [--grid 4] \
        [--img-size 256] [--seed 0] [--no-nodata]

``grid`` x ``grid`` images of the generated DOTA-style data side by side, in UTM zone 33N with
0.5 m pixels, red / green / blue uint8 bands, nodata (0) in the top-left corner triangle; the
objects in scene pixels go to ``data/scene.txt`` (DOTA format). The example of
docs/geo_inference.md runs the rotated quick start's model on it. Needs the ``geo`` extra.
"""

import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out', help='the .tif to write')
    parser.add_argument('--grid', type=int, default=4)
    parser.add_argument('--img-size', type=int, default=256)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--no-nodata', action='store_true', help='no nodata corner')
    args = parser.parse_args(argv)
    if args.grid < 1 or args.img_size < 64:
        parser.error('--grid must be at least 1 and --img-size at least 64')
    from ai4rs.geo.synthetic_scene import write_synthetic_scene

    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    info = write_synthetic_scene(
        args.out, args.grid, args.img_size, args.seed, nodata_corner=not args.no_nodata
    )
    print(
        f'{args.out}: {info["size"]} x {info["size"]} pixels, {info["crs"]}, '
        f'{len(info["objects"])} objects ({info["labels"]})'
    )


if __name__ == '__main__':
    main()
