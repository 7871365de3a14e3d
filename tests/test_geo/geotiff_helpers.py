"""Small GeoTIFFs written with rasterio for the geo tests (a few hundred pixels, in tmp_path).

The default georeference is a UTM zone 33N grid (EPSG:32633) of 10 m pixels whose
top-left corner is at easting 500000 m, northing 4000000 m: pixel ``(x, y)`` (column,
row) has its top-left corner at ``(500000 + 10 x, 4000000 - 10 y)``.
"""

import numpy as np
import rasterio
from rasterio.transform import from_origin

UTM_CRS = 'EPSG:32633'
ORIGIN = (500_000.0, 4_000_000.0)
PIXEL_SIZE = 10.0
UTM_TRANSFORM = from_origin(*ORIGIN, PIXEL_SIZE, PIXEL_SIZE)


def write_geotiff(
    path,
    data: np.ndarray,
    crs=UTM_CRS,
    transform=UTM_TRANSFORM,
    nodata=None,
    colorinterp=None,
    mask: np.ndarray | None = None,
    overviews=(),
    **profile,
) -> str:
    """Write ``data`` as a tiled GeoTIFF and return its path.

    Args:
        path: where.
        data (np.ndarray): (C, H, W) or (H, W) band values, any dtype rasterio writes.
        crs, transform: the georeference (None / identity: a plain TIFF).
        nodata: the file's nodata value.
        colorinterp (Sequence[ColorInterp], optional): per band.
        mask (np.ndarray, optional): (H, W) bool, an internal per-dataset mask
            (True = valid).
        overviews (Sequence[int]): decimation factors built (nearest) after writing.
        **profile: more creation options (``NBITS=12``, ``photometric='RGB'``...).
    """
    data = data[None] if data.ndim == 2 else data
    count, height, width = data.shape
    options = dict(tiled=True, blockxsize=16, blockysize=16, compress='deflate')
    options.update(profile)
    kwargs = dict(driver='GTiff', width=width, height=height, count=count, dtype=data.dtype)
    if crs is not None:
        kwargs['crs'] = crs
    if transform is not None and not transform.is_identity:
        kwargs['transform'] = transform
    if nodata is not None:
        kwargs['nodata'] = nodata
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        with rasterio.open(path, 'w', **kwargs, **options) as ds:
            ds.write(data)
            if colorinterp is not None:
                ds.colorinterp = list(colorinterp)
            if mask is not None:
                ds.write_mask(np.where(mask, 255, 0).astype(np.uint8))
    if overviews:
        with rasterio.open(path, 'r+') as ds:
            ds.build_overviews(list(overviews), rasterio.enums.Resampling.nearest)
    return str(path)
