"""A small georeferenced scene of known objects, for examples and tests.

:func:`write_synthetic_scene` lays ``grid`` x ``grid`` images of the generated DOTA-style data
(:mod:`ai4rs.datasets.preparation.synthetic_dota`: rotated 'vehicle', 'pool', 'court' on a
textured ground) side by side into one GeoTIFF in UTM zone 33N (EPSG:32633), 3 bands red /
green / blue, uint8 with nodata 0 outside a diagonal footprint edge (as the corner of a
satellite scene), and writes the objects in scene pixels as a DOTA label file next to it.
"""

import os.path as osp

import numpy as np

from ai4rs.datasets.preparation.synthetic_dota import _corners, make_image

#: pixel size (m) and top-left corner (easting, northing) of the scene's grid
PIXEL_SIZE = 0.5
ORIGIN = (500_000.0, 4_000_000.0)
CRS = 'EPSG:32633'


def write_synthetic_scene(
    path: str, grid: int = 4, img_size: int = 256, seed: int = 0, nodata_corner: bool = True
) -> dict:
    """Write the scene GeoTIFF ``path`` and its DOTA labels ``path`` with ``.txt``.

    Args:
        path (str): the ``.tif`` to write.
        grid (int): images per side.
        img_size (int): side of each image (pixels).
        seed (int): the images' random seed.
        nodata_corner (bool): the top-left triangle above the line ``x + y = side / 2`` is
            nodata (value 0 in every band; objects there are left out of the labels).

    Returns:
        dict: ``path``, ``labels`` (the label file), ``size`` (side in pixels), ``objects``
        (``(name, cx, cy, w, h, theta)`` in scene pixels), ``transform``, ``crs``.
    """
    import rasterio
    from rasterio.enums import ColorInterp
    from rasterio.transform import from_origin

    rng = np.random.default_rng(seed)
    side = grid * img_size
    img = np.zeros((side, side, 3), np.uint8)
    objects = []
    for row in range(grid):
        for col in range(grid):
            tile, tile_objects = make_image(rng, img_size)
            img[row * img_size : (row + 1) * img_size, col * img_size : (col + 1) * img_size] = tile
            for name, cx, cy, w, h, theta in tile_objects:
                objects.append((name, cx + col * img_size, cy + row * img_size, w, h, theta))
    img[img == 0] = 1  # 0 is nodata
    if nodata_corner:
        ys, xs = np.mgrid[0:side, 0:side]
        outside = xs + ys < side / 2
        img[outside] = 0
        objects = [
            o
            for o in objects
            if (_corners(*o[1:]).reshape(-1, 2).sum(1) >= side / 2).all()  # wholly inside
        ]
    transform = from_origin(*ORIGIN, PIXEL_SIZE, PIXEL_SIZE)
    profile = dict(
        driver='GTiff',
        width=side,
        height=side,
        count=3,
        dtype='uint8',
        nodata=0,
        crs=CRS,
        transform=transform,
        tiled=True,
        blockxsize=256,
        blockysize=256,
        compress='deflate',
    )
    with rasterio.open(path, 'w', **profile) as ds:
        ds.write(np.ascontiguousarray(img[..., ::-1].transpose(2, 0, 1)))  # BGR -> R, G, B
        ds.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue]
    labels = osp.splitext(path)[0] + '.txt'
    with open(labels, 'w') as f:
        for name, cx, cy, w, h, theta in objects:
            pts = _corners(cx, cy, w, h, theta).reshape(-1)
            f.write(' '.join(f'{v:.1f}' for v in pts) + f' {name} 0\n')
    return dict(path=path, labels=labels, size=side, objects=objects, transform=transform, crs=CRS)
