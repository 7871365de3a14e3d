"""Draw a detection layer of tools/geo_inference.py over its scene (a quick look as a PNG).

    python tools/misc/draw_scene_layer.py SCENE LAYER --out quicklook.png [--max-side 1600] \
        [--bands 3,2,1] [--score-thr 0.3]

The scene is read decimated to at most ``--max-side`` pixels a side (GDAL's overviews when the
file has them), in the same colours as the model saw it (``GeoScene``'s bands and 8-bit rule),
nodata in black; each feature of the layer (GeoPackage or GeoJSON) is drawn from its pixel-box
fields (``px_cx, px_cy, px_w, px_h, px_angle`` / ``px_x1 ..``), coloured by label, with a
legend of the labels and their counts.
"""

import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

PALETTE = [(60, 60, 220), (230, 120, 60), (90, 200, 60), (40, 200, 230), (200, 80, 200)]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('scene')
    parser.add_argument('layer')
    parser.add_argument('--out', required=True, help='the PNG to write')
    parser.add_argument('--max-side', type=int, default=1600)
    parser.add_argument('--bands', default=None, help='bands shown as red,green,blue')
    parser.add_argument('--score-thr', type=float, default=0.0)
    args = parser.parse_args(argv)
    for path in (args.scene, args.layer):
        if not osp.isfile(path):
            parser.error(f'{path} does not exist')
    if args.max_side < 16:
        parser.error('--max-side must be at least 16')
    return args


def layer_corners(layer: str):
    """(labels, scores, (n, 4, 2) corners in scene pixels) from a layer's pixel-box fields."""
    import numpy as np
    import pyogrio.raw
    import torch

    from ai4rs.structures.bbox import rbox_corners

    meta, _, _, fields = pyogrio.raw.read(layer, read_geometry=False)
    values = dict(zip(list(meta['fields']), fields))
    for needed in ('label', 'score'):
        if needed not in values:
            raise ValueError(f'{layer}: no field {needed!r}: not a layer of tools/geo_inference.py')
    labels = [str(v) for v in values['label']]
    scores = np.asarray(values['score'], np.float64)
    if 'px_cx' in values:
        boxes = np.stack([values[k] for k in ('px_cx', 'px_cy', 'px_w', 'px_h', 'px_angle')], 1)
        corners = rbox_corners(torch.as_tensor(boxes, dtype=torch.float64).reshape(-1, 5))
        corners = corners.numpy().reshape(-1, 4, 2)
    elif 'px_x3' in values:
        corners = np.stack([values[f'px_{a}{i}'] for i in range(1, 5) for a in 'xy'], 1)
        corners = corners.reshape(-1, 4, 2)
    elif 'px_x1' in values:
        x1, y1, x2, y2 = (np.asarray(values[k]) for k in ('px_x1', 'px_y1', 'px_x2', 'px_y2'))
        corners = np.stack([x1, y1, x2, y1, x2, y2, x1, y2], 1).reshape(-1, 4, 2)
    else:
        raise ValueError(f'{layer}: no pixel-box fields (px_cx ... or px_x1 ...)')
    return labels, scores, np.asarray(corners, np.float64)


def read_quicklook(scene_path: str, max_side: int, bands=None):
    """The scene decimated to at most ``max_side`` a side (BGR uint8, nodata black) and the
    (x, y) scale from scene pixels to it."""
    from ai4rs.geo.scene_reader import GeoScene

    with GeoScene(scene_path, bands=bands) as scene:
        img, _ = scene.read_decimated(max_side, fill_value=0)
        return img, (img.shape[1] / scene.width, img.shape[0] / scene.height)


def main(argv=None):
    args = parse_args(argv)
    import cv2
    import numpy as np

    labels, scores, corners = layer_corners(args.layer)
    img, (sx, sy) = read_quicklook(args.scene, args.max_side, args.bands)
    names = sorted(set(labels))
    keep = scores >= args.score_thr
    thickness = max(1, round(min(img.shape[:2]) / 500))
    for label, pts in zip(np.asarray(labels)[keep], corners[keep]):
        color = PALETTE[names.index(label) % len(PALETTE)]
        poly = np.round(pts * [sx, sy]).astype(np.int32)
        cv2.polylines(img, [poly], True, color, thickness, cv2.LINE_AA)
    for i, name in enumerate(names):
        count = int(sum(1 for lb, k in zip(labels, keep) if k and lb == name))
        y = 22 + 22 * i
        cv2.rectangle(img, (8, y - 14), (22, y), PALETTE[i % len(PALETTE)], -1)
        cv2.putText(img, f'{name} ({count})', (28, y), 0, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
    if not cv2.imwrite(args.out, img):
        raise SystemExit(f'could not write {args.out}')
    print(f'{args.out}: {int(keep.sum())} detections drawn over {args.scene}')


if __name__ == '__main__':
    main()
