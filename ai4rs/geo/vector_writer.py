"""Georeferenced detections: box corners in map coordinates, written as a vector layer.

Coordinates. Detections come in **pixel coordinates of the scene**: x = column, y = row,
(0, 0) the top-left corner of the top-left pixel, one unit = one pixel (the convention of the
detectors and of GDAL). A scene's affine ``transform`` (``rasterio.Affine``, as
``rasterio.open(scene).transform``) maps a pixel position ``(col, row)`` to map coordinates
``(x, y) = (a * col + b * row + c, d * col + e * row + f)`` in the units of the scene's CRS
(metres for UTM); a north-up scene has ``b = d = 0`` and ``e < 0``.

Two steps:

- :func:`detection_polygons`: box object -> (n, 4, 2) float64 corners in map units.
- :func:`write_detections`: corners + labels + scores + pixel boxes -> one Polygon layer,
  with pyogrio (GDAL), no geopandas. ``.gpkg``: GeoPackage in the scene's CRS; ``.geojson`` /
  ``.json``: RFC 7946 GeoJSON in WGS84 longitude / latitude (reprojected with
  ``rasterio.warp.transform``, i.e. the PROJ inside rasterio). The file appears at its path
  only once complete (written next to it, then renamed).

Example::

    with rasterio.open('scene.tif') as src:
        transform, crs = src.transform, src.crs
    polygons = detection_polygons(rboxes, transform)          # rboxes: RotatedBoxes, pixels
    write_detections('scene.gpkg', polygons, [class_names[i] for i in labels], scores,
                     rboxes, crs, box_type='rbox')

The DOTA Task1 text files of a scene (pixel coordinates) are written by
:func:`ai4rs.evaluation.functional.dota_results.write_task1` (on the evaluation floor, next to
the Task1 writer it reuses: ``ai4rs.geo`` may not import ``ai4rs.evaluation``).
"""

import os
import os.path as osp
import shutil
import tempfile
import warnings
from collections.abc import Sequence

import numpy as np
import pyogrio.raw
import shapely
import torch
from rasterio.crs import CRS
from rasterio.warp import transform as warp_transform

from ai4rs.structures.bbox import (
    BaseBoxes,
    HorizontalBoxes,
    QuadriBoxes,
    RotatedBoxes,
    rbox_corners,
)

#: file suffix -> GDAL vector driver
DRIVERS = {'.gpkg': 'GPKG', '.geojson': 'GeoJSON', '.json': 'GeoJSON'}

#: box_type -> the names of the pixel-box fields, in the order of the box's tensor columns
PIXEL_FIELDS = {
    'rbox': ('px_cx', 'px_cy', 'px_w', 'px_h', 'px_angle'),
    'hbox': ('px_x1', 'px_y1', 'px_x2', 'px_y2'),
    'qbox': ('px_x1', 'px_y1', 'px_x2', 'px_y2', 'px_x3', 'px_y3', 'px_x4', 'px_y4'),
}
_BOX_CLASSES = {'rbox': RotatedBoxes, 'hbox': HorizontalBoxes, 'qbox': QuadriBoxes}

#: decimals of the longitudes / latitudes in GeoJSON (GDAL's RFC 7946 default; 1e-7 deg ~ 1 cm)
GEOJSON_PRECISION = 7


def box_corners(boxes: BaseBoxes) -> np.ndarray:
    """Pixel corners of a box object, chosen by its type.

    Args:
        boxes (BaseBoxes): (n, box_dim) boxes in pixel coordinates.

            - ``RotatedBoxes`` ``(cx, cy, w, h, t)``, ``t`` in radians clockwise on screen:
              corners ``c + v1 + v2, c + v1 - v2, c - v1 - v2, c - v1 + v2`` with
              ``v1 = w/2 (cos t, sin t)``, ``v2 = h/2 (-sin t, cos t)``
              (:func:`ai4rs.structures.bbox.rbox_corners`, mmrotate's order).
            - ``HorizontalBoxes`` ``(x1, y1, x2, y2)``: ``(x1, y1), (x2, y1), (x2, y2), (x1, y2)``
              (a ring, :func:`ai4rs.structures.bbox.hbox2qbox`'s order).
            - ``QuadriBoxes`` ``(x1, y1, ..., x4, y4)``: the four vertices as given.

    Returns:
        np.ndarray: (n, 4, 2) float64 corners ``(col, row)``.

    Raises:
        TypeError: ``boxes`` is not one of the three box types.
    """
    if isinstance(boxes, RotatedBoxes):
        return rbox_corners(boxes.tensor.detach().cpu().double().reshape(-1, 5)).numpy()
    if isinstance(boxes, HorizontalBoxes):
        x1, y1, x2, y2 = boxes.tensor.detach().cpu().double().reshape(-1, 4).numpy().T
        return np.stack(
            [np.stack([x1, y1], -1), np.stack([x2, y1], -1), np.stack([x2, y2], -1),
             np.stack([x1, y2], -1)],
            axis=1,
        )  # fmt: skip
    if isinstance(boxes, QuadriBoxes):
        return boxes.tensor.detach().cpu().double().reshape(-1, 4, 2).numpy()
    raise TypeError(
        'detection_polygons needs a RotatedBoxes, HorizontalBoxes or QuadriBoxes object, '
        f'got {type(boxes).__name__}'
    )


def apply_transform(points: np.ndarray, transform) -> np.ndarray:
    """Map (..., 2) pixel points ``(col, row)`` to map ``(x, y)`` with an affine transform.

    Args:
        points (np.ndarray): (..., 2) pixel coordinates.
        transform (affine.Affine): ``x = a col + b row + c``, ``y = d col + e row + f``.

    Returns:
        np.ndarray: (..., 2) float64 map coordinates.
    """
    try:
        a, b, c, d, e, f = (float(getattr(transform, k)) for k in 'abcdef')
    except AttributeError:
        raise TypeError(
            'transform must be an affine.Affine (rasterio.Affine, e.g. rasterio.open(scene)'
            f'.transform), got {type(transform).__name__}: {transform!r}'
        ) from None
    pts = np.asarray(points, dtype=np.float64)
    col, row = pts[..., 0], pts[..., 1]
    return np.stack([a * col + b * row + c, d * col + e * row + f], axis=-1)


def detection_polygons(boxes: BaseBoxes, transform) -> np.ndarray:
    """Corners of detections in map coordinates.

    Args:
        boxes (BaseBoxes): (n, box_dim) ``RotatedBoxes`` / ``HorizontalBoxes`` /
            ``QuadriBoxes`` in pixel coordinates of the scene ((0, 0) = top-left corner of
            the top-left pixel). The type decides the corners (see :func:`box_corners`),
            never the tensor's width.
        transform (affine.Affine): the scene's pixel -> map transform (GDAL convention).

    Returns:
        np.ndarray: (n, 4, 2) float64 corners ``(x, y)`` in map units.

    Raises:
        TypeError: unsupported box object or transform.
        ValueError: a box coordinate is not finite (names the first bad box).
    """
    corners = box_corners(boxes)
    bad = ~np.isfinite(corners).all(axis=(1, 2))
    if bad.any():
        i = int(np.nonzero(bad)[0][0])
        raise ValueError(
            f'detection_polygons: box {i} has a non-finite coordinate: '
            f'{boxes.tensor.reshape(len(corners), -1)[i].tolist()}'
        )
    return apply_transform(corners, transform)


def ccw_rings(polygons: np.ndarray) -> np.ndarray:
    """Closed, counter-clockwise rings of 4-corner polygons (RFC 7946 / OGC exterior rings).

    Args:
        polygons (np.ndarray): (n, 4, 2) corners ``(x, y)`` with y up (map coordinates).

    Returns:
        np.ndarray: (n, 5, 2) rings starting and ending at each polygon's first corner; a
        clockwise polygon is walked backwards (corners 0, 3, 2, 1).
    """
    polygons = np.asarray(polygons, dtype=np.float64).reshape(-1, 4, 2)
    x, y = polygons[..., 0], polygons[..., 1]
    area2 = (x * np.roll(y, -1, axis=1) - np.roll(x, -1, axis=1) * y).sum(axis=1)
    rings = np.where((area2 < 0)[:, None, None], polygons[:, [0, 3, 2, 1]], polygons)
    return np.concatenate([rings, rings[:, :1]], axis=1)


def driver_for(path: str) -> str:
    """The GDAL vector driver of a path, by its suffix (case-insensitive).

    Raises:
        ValueError: unsupported suffix; lists the supported ones.
    """
    suffix = osp.splitext(str(path))[1].lower()
    if suffix not in DRIVERS:
        raise ValueError(
            f'cannot write detections to {str(path)!r}: unsupported suffix {suffix!r}; '
            f'supported: {", ".join(DRIVERS)} (GeoPackage, GeoJSON)'
        )
    return DRIVERS[suffix]


def to_wgs84(points: np.ndarray, crs) -> np.ndarray:
    """Reproject (..., 2) map points ``(x, y)`` in ``crs`` to WGS84 ``(lon, lat)`` degrees.

    Uses ``rasterio.warp.transform`` (rasterio's PROJ; x = longitude, y = latitude).

    Raises:
        ValueError: ``crs`` has no transformation to WGS84 (e.g. a local engineering CRS);
            names the CRS and suggests a ``.gpkg`` output, which keeps the scene's CRS.
    """
    pts = np.asarray(points, dtype=np.float64)
    flat = pts.reshape(-1, 2)
    src = crs if isinstance(crs, CRS) else CRS.from_user_input(crs)
    hint = (
        f'cannot reproject detections from the scene CRS {src.to_string()!r} to WGS84 '
        f'longitude / latitude (EPSG:4326) for GeoJSON (RFC 7946); write a .gpkg instead, '
        f'which keeps the scene CRS'
    )
    # an empty layer is checked with one probe point, so it fails like a full one
    xs, ys = (flat[:, 0], flat[:, 1]) if len(flat) else ([0.0], [0.0])
    try:
        lon, lat = warp_transform(src, 'EPSG:4326', xs, ys)
    except Exception as exc:  # PROJ failures surface as rasterio's private CPLE_* errors
        raise ValueError(f'{hint} ({exc})') from None
    lon, lat = np.asarray(lon, np.float64)[: len(flat)], np.asarray(lat, np.float64)[: len(flat)]
    out = np.stack([lon, lat], axis=-1)
    if not np.isfinite(out).all():
        raise ValueError(f'{hint} (PROJ returned non-finite coordinates)')
    return out.reshape(pts.shape)


def _pixel_box_array(pixel_boxes, box_type: str, n: int) -> np.ndarray:
    if box_type not in PIXEL_FIELDS:
        raise ValueError(f'box_type must be one of {sorted(PIXEL_FIELDS)}, got {box_type!r}')
    dim = len(PIXEL_FIELDS[box_type])
    if isinstance(pixel_boxes, BaseBoxes):
        if not isinstance(pixel_boxes, _BOX_CLASSES[box_type]):
            raise TypeError(
                f'box_type={box_type!r} but pixel_boxes is a {type(pixel_boxes).__name__}'
            )
        pixel_boxes = pixel_boxes.tensor
    if isinstance(pixel_boxes, torch.Tensor):
        pixel_boxes = pixel_boxes.detach().cpu().double().numpy()
    arr = np.asarray(pixel_boxes, dtype=np.float64)
    if arr.size == 0 and n == 0:
        return arr.reshape(0, dim)
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise ValueError(
            f'pixel_boxes must be ({n}, {dim}) for box_type={box_type!r}, got {arr.shape}'
        )
    return arr


def write_detections(
    path: str,
    polygons: np.ndarray,
    labels: Sequence[str],
    scores,
    pixel_boxes,
    crs,
    *,
    box_type: str,
    overwrite: bool = False,
    layer: str | None = None,
) -> str:
    """Write detections as one Polygon layer (GeoPackage or GeoJSON), with pyogrio.

    One feature per detection: a closed, counter-clockwise ring of its four corners, and the
    fields ``label`` (str), ``score`` (float) and the pixel box (``px_cx, px_cy, px_w, px_h,
    px_angle`` (radians) for 'rbox'; ``px_x1, px_y1, px_x2, px_y2`` for 'hbox';
    ``px_x1 .. px_y4`` for 'qbox'), in pixels of the scene.

    - ``.gpkg``: coordinates as given, in ``crs`` (stored in the file).
    - ``.geojson`` / ``.json``: RFC 7946: reprojected to WGS84 (x = longitude, y = latitude,
      degrees, :data:`GEOJSON_PRECISION` decimals), no ``crs`` member. A layer without
      features has no field definitions in GeoJSON (the format keeps none).
    - ``crs=None`` (scene without georeferencing): ``.gpkg`` only; ``polygons`` are taken
      as pixel coordinates and written without a CRS, and a ``UserWarning`` says so. GeoJSON
      is refused (a ValueError): readers take GeoJSON coordinates as WGS84 lon / lat.

    The layer is written into a temporary folder next to ``path`` and renamed onto ``path``
    when complete, so an interrupted write leaves nothing at ``path``.

    Args:
        path (str): output file; its suffix picks the format (:data:`DRIVERS`).
        polygons (np.ndarray): (n, 4, 2) corners in map units of ``crs``
            (:func:`detection_polygons`), or pixels when ``crs`` is None.
        labels (Sequence[str]): n class names.
        scores (array-like): (n,) scores.
        pixel_boxes (BaseBoxes | Tensor | np.ndarray): (n, box_dim) the same detections in
            pixel coordinates, of type ``box_type``.
        crs (rasterio.crs.CRS | str | None): the scene's CRS (anything
            ``rasterio.crs.CRS.from_user_input`` takes), or None.
        box_type (str): 'rbox', 'hbox' or 'qbox': the pixel-box fields.
        overwrite (bool): replace an existing ``path``. Defaults to False.
        layer (str, optional): layer name; defaults to the file's stem.

    Returns:
        str: ``path``.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False.
        FileNotFoundError: the folder of ``path`` does not exist.
        ValueError: unsupported suffix, inconsistent lengths or shapes, non-finite values,
            GeoJSON without a CRS, or a CRS that cannot be reprojected to WGS84 for GeoJSON.
    """
    path = os.fspath(path)
    driver = driver_for(path)
    if osp.exists(path) and not overwrite:
        raise FileExistsError(
            f'{path!r} already exists; pass overwrite=True (--overwrite) or choose another path'
        )
    polygons = np.asarray(polygons, dtype=np.float64)
    if polygons.size == 0:
        polygons = polygons.reshape(0, 4, 2)
    if polygons.ndim != 3 or polygons.shape[1:] != (4, 2):
        raise ValueError(f'polygons must be (n, 4, 2) corners, got {polygons.shape}')
    n = len(polygons)
    labels = list(labels)
    scores = np.asarray(
        scores.detach().cpu() if isinstance(scores, torch.Tensor) else scores, np.float64
    ).reshape(-1)
    boxes = _pixel_box_array(pixel_boxes, box_type, n)
    if not (len(labels) == len(scores) == len(boxes) == n):
        raise ValueError(
            f'write_detections: {n} polygons, {len(labels)} labels, {len(scores)} scores and '
            f'{len(boxes)} pixel boxes: one of each per detection'
        )
    for i, label in enumerate(labels):
        if not isinstance(label, str):
            raise TypeError(
                f'labels must be class names (str); label {i} is {label!r} '
                f'({type(label).__name__}): map class indices through the class names first'
            )
    for name, values in (('polygons', polygons), ('scores', scores), ('pixel_boxes', boxes)):
        bad_rows = np.nonzero(~np.isfinite(values))[0]
        if len(bad_rows):
            i = int(bad_rows[0])
            raise ValueError(f'write_detections: {name}[{i}] is not finite: {values[i].tolist()}')

    layer_options = None
    if crs is None and driver == 'GeoJSON':
        raise ValueError(
            f'cannot write {path!r}: the scene has no CRS, and GeoJSON (RFC 7946) coordinates '
            f'are WGS84 longitude / latitude by definition (every reader takes them so); '
            f'write a .gpkg, which stores the pixel coordinates without a CRS'
        )
    if crs is None:
        warnings.warn(
            f'writing {path!r} without a CRS: the scene has no georeferencing, so the polygon '
            f'coordinates are pixels (col, row), not map coordinates',
            UserWarning,
            stacklevel=2,
        )
        crs_text = None
    else:
        crs = crs if isinstance(crs, CRS) else CRS.from_user_input(crs)
        if driver == 'GeoJSON':
            polygons = to_wgs84(polygons, crs)
            crs_text = 'EPSG:4326'
            layer_options = {'RFC7946': 'YES', 'COORDINATE_PRECISION': str(GEOJSON_PRECISION)}
        else:
            crs_text = crs.to_wkt()

    geometry = shapely.to_wkb(shapely.polygons(ccw_rings(polygons)))
    fields = ['label', 'score', *PIXEL_FIELDS[box_type]]
    field_data = [np.array(labels, dtype=object).reshape(n), scores]
    field_data += [np.ascontiguousarray(boxes[:, k]) for k in range(boxes.shape[1])]

    folder = osp.dirname(osp.abspath(path))
    if not osp.isdir(folder):
        raise FileNotFoundError(f'cannot write {path!r}: its folder {folder!r} does not exist')
    name = osp.basename(path)
    tmp_dir = tempfile.mkdtemp(prefix=f'.{name}.', suffix='.partial', dir=folder)
    try:
        tmp_path = osp.join(tmp_dir, name)
        with warnings.catch_warnings():
            # pyogrio's own "'crs' was not provided" (warned about above, in the scene's terms)
            warnings.filterwarnings(
                'ignore', message="'crs' was not provided", category=UserWarning
            )
            pyogrio.raw.write(
                tmp_path,
                np.asarray(geometry, dtype=object).reshape(n),
                field_data,
                fields,
                layer=layer or osp.splitext(name)[0],
                driver=driver,
                geometry_type='Polygon',
                crs=crs_text,
                encoding='UTF-8',
                layer_options=layer_options,
            )
        os.replace(tmp_path, path)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return path
