"""Benchmark writing georeferenced rotated detections: pyogrio (ai4rs's path) vs fiona.

The measured choice behind :func:`ai4rs.geo.vector_writer.write_detections`. N rotated
detections (default 20,000, a dense 30,000 px scene) in a UTM scene are written to a
GeoPackage (scene CRS) and to an RFC 7946 GeoJSON (reprojected to WGS84), each

- with ``write_detections`` (pyogrio: whole columns handed to GDAL at once), and
- when fiona is installed (it is not an ai4rs dependency), with fiona: the same polygons
  (reprojected the same way for GeoJSON), one record per feature, the same fields.

Both start from the same map-coordinate corners (:func:`detection_polygons`, not timed). The
output files are checked to hold N features each, then the times and their ratio are
printed::

    python tools/analysis_tools/benchmark_vector_write.py [--num-dets 20000] [--repeat 3]
"""

import argparse
import math
import os.path as osp
import tempfile
import time

import ai4rs  # noqa: F401  (first: sets the OpenMP wait policy before torch loads)

# isort: split
import numpy as np
import pyogrio
import shapely
import torch
from rasterio.transform import Affine

from ai4rs.geo.vector_writer import (
    GEOJSON_PRECISION,
    PIXEL_FIELDS,
    ccw_rings,
    detection_polygons,
    to_wgs84,
    write_detections,
)
from ai4rs.structures.bbox import RotatedBoxes

CRS_TEXT = 'EPSG:32633'
TRANSFORM = Affine(0.5, 0.0, 600000.0, 0.0, -0.5, 5400000.0)
CLASSES = ('plane', 'ship', 'storage-tank', 'small-vehicle', 'large-vehicle', 'harbor')


def make_detections(num: int, size: float = 30000.0, seed: int = 0) -> dict:
    """N random rotated detections in a ``size`` px scene, and their map corners."""
    rng = np.random.default_rng(seed)
    rboxes = np.stack(
        [
            rng.uniform(0, size, num),
            rng.uniform(0, size, num),
            rng.uniform(8, 120, num),
            rng.uniform(4, 60, num),
            rng.uniform(-math.pi / 2, math.pi / 2, num),
        ],
        axis=1,
    )
    boxes = RotatedBoxes(torch.from_numpy(rboxes))
    return dict(
        boxes=boxes,
        polygons=detection_polygons(boxes, TRANSFORM),
        labels=[CLASSES[i] for i in rng.integers(0, len(CLASSES), num)],
        scores=rng.uniform(0.05, 1.0, num),
    )


def write_with_fiona(path: str, dets: dict) -> None:
    """The same layer with fiona, one record per feature (``fiona`` must be installed)."""
    import fiona

    geojson = path.endswith('.geojson')
    polygons = to_wgs84(dets['polygons'], CRS_TEXT) if geojson else dets['polygons']
    rings = ccw_rings(polygons).tolist()
    names = PIXEL_FIELDS['rbox']
    schema = dict(
        geometry='Polygon',
        properties=dict([('label', 'str'), ('score', 'float')] + [(k, 'float') for k in names]),
    )
    options = dict(RFC7946='YES', COORDINATE_PRECISION=str(GEOJSON_PRECISION)) if geojson else {}
    driver = 'GeoJSON' if geojson else 'GPKG'
    pixel = dets['boxes'].tensor.numpy().tolist()
    with fiona.open(
        path, 'w', driver=driver, schema=schema, crs='EPSG:4326' if geojson else CRS_TEXT,
        **options,
    ) as dst:  # fmt: skip
        dst.writerecords(
            fiona.Feature(
                geometry=fiona.Geometry(type='Polygon', coordinates=[ring]),
                properties=dict([('label', label), ('score', float(score))] + list(zip(names, px))),
            )
            for ring, label, score, px in zip(rings, dets['labels'], dets['scores'], pixel)
        )


def write_with_pyogrio(path: str, dets: dict) -> None:
    write_detections(
        path, dets['polygons'], dets['labels'], dets['scores'], dets['boxes'], CRS_TEXT,
        box_type='rbox',
    )  # fmt: skip


def best_time(writer, suffix: str, dets: dict, repeat: int) -> float:
    """Best wall time of ``repeat`` writes to a new file; checks the feature count."""
    times = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            path = osp.join(tmp, f'dets{suffix}')
            start = time.perf_counter()
            writer(path, dets)
            times.append(time.perf_counter() - start)
            count = pyogrio.read_info(path)['features']
            if count != len(dets['scores']):
                raise RuntimeError(
                    f'{writer.__name__} wrote {count} features, not {len(dets["scores"])}'
                )
    return min(times)


def same_layers(dets: dict, suffix: str) -> None:
    """Write once with each library and check that both files hold the same features."""
    with tempfile.TemporaryDirectory() as tmp:
        layers = []
        for writer in (write_with_pyogrio, write_with_fiona):
            path = osp.join(tmp, f'{writer.__name__}{suffix}')
            writer(path, dets)
            meta, _, geometry, field_data = pyogrio.raw.read(path)
            coords = shapely.get_coordinates(shapely.from_wkb(geometry))
            layers.append(
                (pyogrio.read_info(path)['crs'], coords, dict(zip(meta['fields'], field_data)))
            )
    (crs_a, xy_a, f_a), (crs_b, xy_b, f_b) = layers
    if (
        crs_a != crs_b
        or not np.allclose(xy_a, xy_b, rtol=0, atol=1e-6)
        or sorted(f_a) != sorted(f_b)
    ):
        raise RuntimeError(f'pyogrio and fiona wrote different {suffix} layers')
    if any(not np.array_equal(f_a[k], f_b[k]) for k in f_a):
        raise RuntimeError(f'pyogrio and fiona wrote different {suffix} fields')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--num-dets', type=int, default=20000, help='detections to write')
    parser.add_argument('--repeat', type=int, default=3, help='writes per case (best is kept)')
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.num_dets < 1 or args.repeat < 1:
        raise SystemExit('--num-dets and --repeat must be >= 1')
    try:
        import fiona
    except ImportError:
        fiona = None
    dets = make_detections(args.num_dets)
    results = {}
    print(f'{args.num_dets} rotated detections, best of {args.repeat}')
    print(f'{"format":<10} {"pyogrio (s)":>12} {"fiona (s)":>10} {"fiona / pyogrio":>16}')
    for suffix in ('.gpkg', '.geojson'):
        ours = best_time(write_with_pyogrio, suffix, dets, args.repeat)
        theirs = None
        if fiona is not None:
            same_layers(dets, suffix)
            theirs = best_time(write_with_fiona, suffix, dets, args.repeat)
        results[suffix] = (ours, theirs)
        other = f'{theirs:10.3f} {theirs / ours:16.1f}' if theirs else f'{"-":>10} {"-":>16}'
        print(f'{suffix:<10} {ours:12.3f} {other}')
    if fiona is None:
        print('fiona is not installed: only pyogrio was timed')
    else:
        fiona_gdal = fiona.__gdal_version__
        print(f'fiona {fiona.__version__} (GDAL {fiona_gdal}), pyogrio {pyogrio.__version__} '
              f'(GDAL {pyogrio.__gdal_version_string__})')  # fmt: skip
    return results


if __name__ == '__main__':
    main()
