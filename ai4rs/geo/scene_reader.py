"""Reading a whole satellite scene (GeoTIFF, COG, any GDAL raster) tile by tile.

:class:`GeoScene` opens one raster with rasterio and hands out tiles the way the
detectors were trained on them: 3 channels in **BGR** order (OpenCV's), uint8 by
the same ``to_uint8`` rule as the model's pipeline, of exactly the asked
window's size. The scene is never read whole.

Conventions
-----------
* Pixel coordinates: ``x`` is the column, ``y`` the row, the origin is the
  top-left corner of the top-left pixel. A window ``(x1, y1, x2, y2)`` holds
  columns ``x1 .. x2 - 1`` and rows ``y1 .. y2 - 1`` (``x2``, ``y2`` exclusive).
* Map coordinates: ``scene.transform`` (a ``rasterio.Affine``) maps a pixel
  position ``(x, y)`` to the map position in ``scene.crs``'s units:
  ``X, Y = scene.transform @ (x, y)``; ``(0, 0)`` is the scene's top-left corner,
  ``(x + 0.5, y + 0.5)`` the centre of pixel ``(x, y)``.
* Bands: ``bands`` are the file's 1-based band indices shown as red, green,
  blue (as QGIS's RGB picker); tiles come out as blue, green, red.
* Validity: a pixel is invalid when GDAL's mask says so for every chosen band
  (nodata value, internal per-dataset mask, alpha band: the convention of
  rasterio's ``dataset_mask``) or when a chosen band is NaN (float rasters).
  A ``nodata`` override replaces the file's nodata value (invalid where every
  chosen band equals it); the file's internal mask or alpha band still applies.
* 8 bits: the ``to_uint8`` rule's statistics (bit depth, percentiles) are
  measured once per scene on a sample of about ``stats_pixels`` pixels (an
  overview when the file has one that large, else a decimated read) and used
  for every tile (:func:`ai4rs.datasets.image_io.apply_to_uint8`). For
  ``'bit_depth'`` a GDAL ``NBITS`` tag (e.g. 12) wins over the sample's maximum.
"""

import math
import os
import warnings
from collections.abc import Sequence

import numpy as np

try:
    import rasterio
except ImportError as e:  # the optional 'geo' extra
    raise ImportError(
        f'reading GeoTIFF scenes needs rasterio, the geo extra: pip install "ai4rs[geo]" ({e})'
    ) from e
from rasterio.enums import ColorInterp, MaskFlags, Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.windows import Window

from ai4rs.datasets.image_io import apply_to_uint8, normalize_to_uint8_rule, to_uint8_stats
from ai4rs.datasets.sliding_windows import get_sliding_windows

STATS_PIXELS = 1_000_000

#: GDAL's block cache while a scene is read (MB). GDAL's default is 5 % of the machine's memory,
#: which a scene read tile by tile fills with blocks it never reads again (measured with
#: benchmark_scene_inference.py: peak RSS 2.3 GiB for a sparse 20,000-px scene, 1.1 GiB with
#: this cap); a row of tiles' blocks is what neighbouring windows share.
GDAL_CACHE_MB = 256


class SceneReadError(OSError):
    """GDAL could not open or read (part of) a scene; the message names the file (and window)."""


def scene_windows(
    width: int, height: int, patch_size: int, overlap: int, extra_sizes: Sequence[int] = ()
) -> np.ndarray:
    """Overlapping square windows that cover a ``width`` x ``height`` scene.

    Along each axis, windows of ``patch_size`` start every ``patch_size - overlap``
    pixels from 0, so two neighbouring windows share exactly ``overlap`` pixels,
    except the last one, which is moved back to end at the scene's edge (it
    shares at least ``overlap``). A side shorter than ``patch_size`` gets one
    window starting at 0 that runs past the edge (the reader pads it). Each of
    ``extra_sizes`` adds its own covering with the same ``overlap`` (for
    objects larger than a patch). Windows are x-major (all rows of the first
    column of windows first), as :func:`ai4rs.datasets.sliding_windows.get_sliding_windows`.

    Args:
        width, height (int): scene size in pixels, >= 1.
        patch_size (int): window side in pixels.
        overlap (int): pixels shared by neighbouring windows, ``0 <= overlap < size``.
        extra_sizes (Sequence[int]): further window sides.

    Returns:
        np.ndarray: (K, 4) int64 windows ``x1, y1, x2, y2`` in pixels (``x2``,
        ``y2`` exclusive; they may exceed ``width`` / ``height``).
    """
    sizes = [patch_size, *extra_sizes]
    for name, value in (('width', width), ('height', height), *(('patch size', s) for s in sizes)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f'scene_windows: {name} must be an integer >= 1, got {value!r}')
    if isinstance(overlap, bool) or not isinstance(overlap, (int, np.integer)) or overlap < 0:
        raise ValueError(f'scene_windows: overlap must be an integer >= 0, got {overlap!r}')
    for size in sizes:
        if overlap >= size:
            raise ValueError(
                f'scene_windows: overlap ({overlap}) must be smaller than the window size ({size})'
            )
    # img_rate_thr=0: every window is kept, so the covering has no hole
    return get_sliding_windows(int(width), int(height), sizes, [int(overlap)] * len(sizes), 0.0)


def _window_tuple(window) -> tuple[int, int, int, int]:
    try:
        values = [float(v) for v in window]
    except (TypeError, ValueError):
        values = []
    if len(values) != 4 or not all(v.is_integer() for v in values):
        raise ValueError(f'a window is 4 integers (x1, y1, x2, y2) in pixels, got {window!r}')
    x1, y1, x2, y2 = (int(v) for v in values)
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f'window {window!r} is empty: need x2 > x1 and y2 > y1')
    return x1, y1, x2, y2


def _fill_array(fill_value, dtype: np.dtype) -> np.ndarray:
    """``fill_value`` (a number or 3, B, G, R) as a (3,) array of ``dtype``, checked to fit it."""
    values = np.asarray(fill_value, dtype=np.float64).reshape(-1)
    if values.size == 1:
        values = values.repeat(3)
    if values.size != 3:
        raise ValueError(f'fill_value is a number or 3 numbers (B, G, R), got {fill_value!r}')
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        if not np.all((values >= info.min) & (values <= info.max) & (values == np.round(values))):
            raise ValueError(f"fill_value {fill_value!r} is not a {dtype} value (the tiles' type)")
    return values.astype(dtype)


class GeoScene:
    """One raster scene, read by windows (a context manager: ``with GeoScene(p) as scene:``).

    Args:
        path (str | os.PathLike): any raster GDAL opens (GeoTIFF, COG, PNG, JP2...).
        bands (Sequence[int] | str, optional): the file's 1-based bands shown
            as red, green, blue (``(3, 2, 1)`` for a blue-green-red-NIR file),
            or one band (repeated to 3 channels); ``'3,2,1'`` works too. By
            default the bands whose colour interpretation is red / green /
            blue, else the first three bands that are not alpha, else the
            only one.
        to_uint8: the rule of :func:`ai4rs.datasets.image_io.to_uint8`
            (``'bit_depth'``, ``'percentile'``, a dict, or None to keep the
            file's dtype); use the model's (``config_to_uint8_rule(cfg)``).
        nodata (float, optional): replaces the file's nodata value.
        stats_pixels (int): about how many pixels the scene statistics are
            measured on.
        stats (dict, optional): ``scene.stats`` of an earlier opening of the
            same file with the same rule: not measured again (a pickled scene,
            e.g. a DataLoader worker's, reopens the file this way).

    Raises:
        FileNotFoundError: no such file.
        SceneReadError: GDAL cannot open it as a raster.
        ValueError: bad ``bands`` (missing band, alpha band, 2 bands and no
            choice, not 1 or 3 of them), or a float scene outside [0, 1] under
            ``'bit_depth'``; each message names the file.
    """

    def __init__(
        self,
        path,
        bands: Sequence[int] | str | None = None,
        to_uint8='bit_depth',
        nodata: float | None = None,
        stats_pixels: int = STATS_PIXELS,
        stats: dict | None = None,
    ):
        self.path = os.fspath(path)
        self.to_uint8 = normalize_to_uint8_rule(to_uint8)
        self._args = dict(bands=bands, to_uint8=to_uint8, nodata=nodata, stats_pixels=stats_pixels)
        remote = '://' in self.path or self.path.startswith('/vsi')  # GDAL reads those itself
        if not remote and not os.path.exists(self.path):
            raise FileNotFoundError(f'scene {self.path} does not exist')
        try:
            with warnings.catch_warnings():
                warnings.simplefilter('ignore', NotGeoreferencedWarning)
                self._ds = rasterio.open(self.path)
        except RasterioError as e:
            raise SceneReadError(f'scene {self.path} is not a raster GDAL can read: {e}') from None
        try:
            self._bands = self._choose_bands(bands)
            # read order: blue, green, red (a single band is read once, repeated)
            self._read_indexes = tuple(dict.fromkeys(self._bands[::-1]))
            self._channels = [self._read_indexes.index(b) for b in self._bands[::-1]]
            if len(self._channels) == 1:
                self._channels *= 3
            self._nodata = nodata
            dtypes = {self._ds.dtypes[b - 1] for b in self._bands}
            self._dtype = np.result_type(*dtypes)
            self._float = np.issubdtype(self._dtype, np.floating)
            self._mask_kind = self._choose_mask_kind()
            if stats is not None:
                self._stats, self.stats_source = self._given_stats(stats)
            else:
                self._stats, self.stats_source = self._measure_stats(int(stats_pixels))
        except BaseException:
            self._ds.close()
            raise

    # -- the file ------------------------------------------------------------------
    @property
    def width(self) -> int:
        """Scene width in pixels (columns)."""
        return self._ds.width

    @property
    def height(self) -> int:
        """Scene height in pixels (rows)."""
        return self._ds.height

    @property
    def count(self) -> int:
        """Number of bands in the file (alpha included)."""
        return self._ds.count

    @property
    def bands(self) -> tuple[int, ...]:
        """The chosen 1-based bands shown as red, green, blue (or the single band)."""
        return self._bands

    @property
    def crs(self):
        """``rasterio.crs.CRS`` of the map coordinates, or None."""
        return self._ds.crs or None

    @property
    def transform(self) -> rasterio.Affine:
        """Affine pixel -> map transform: ``X, Y = transform @ (x, y)`` (module docstring)."""
        return self._ds.transform

    @property
    def georeferenced(self) -> bool:
        """False for a raster with no CRS and the identity transform (pixel coordinates only)."""
        return self.crs is not None or not self.transform.is_identity

    @property
    def nodata(self):
        """The nodata value in use: the override, else the file's (None if neither)."""
        return self._nodata if self._nodata is not None else self._ds.nodata

    @property
    def dtype(self) -> np.dtype:
        """The file's dtype of the chosen bands (tiles are uint8 unless ``to_uint8`` is None)."""
        return self._dtype

    @property
    def stats(self) -> dict | None:
        """The scene-wide ``to_uint8`` statistics every tile is scaled by (None: no scaling).

        ``{'type': 'bit_depth', 'bits': 12, ...}`` or ``{'type': 'percentile',
        'lo': (b, g, r), 'hi': (b, g, r), ...}`` (channels in BGR order), as
        :func:`ai4rs.datasets.image_io.to_uint8_stats` returns; where they were
        measured is in ``stats_source``.
        """
        return self._stats

    def close(self) -> None:
        self._ds.close()

    def __reduce__(self):
        # a pickled scene (a DataLoader worker's copy) reopens the file and keeps the statistics
        return _reopen, (self.path, self._args, self._stats)

    def __enter__(self) -> 'GeoScene':
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f'GeoScene({self.path!r}, {self.width} x {self.height} px, bands {self.bands} of '
            f'{self.count}, {self.dtype}, crs {self.crs})'
        )

    # -- reading -------------------------------------------------------------------
    def read_tile(self, window, fill_value=(114, 114, 114)) -> tuple[np.ndarray, np.ndarray]:
        """The window's pixels as the model sees them, and which of them are valid.

        Reads only the part of the window inside the scene; the rest (a window
        past the right / bottom edge, or anywhere outside) is padding.

        Args:
            window: ``(x1, y1, x2, y2)`` integer pixels (``x2``, ``y2`` exclusive).
            fill_value: a number or 3 numbers (B, G, R) for invalid and outside pixels.

        Returns:
            tuple: ``img`` (h, w, 3) BGR, uint8 (the file's dtype when
            ``to_uint8`` is None), ``h = y2 - y1``, ``w = x2 - x1``; ``valid``
            (h, w) bool.

        Raises:
            SceneReadError: GDAL failed to read the window (names file and window).
        """
        x1, y1, x2, y2 = _window_tuple(window)
        out_dtype = np.dtype(np.uint8) if self._stats is not None else self._dtype
        fill = _fill_array(fill_value, out_dtype)
        img = np.empty((y2 - y1, x2 - x1, 3), dtype=out_dtype)
        img[...] = fill
        valid = np.zeros((y2 - y1, x2 - x1), dtype=bool)
        inside = self._inside((x1, y1, x2, y2))
        if inside is None:
            return img, valid
        rwin, (oy, ox) = inside
        data = self._read(self._ds.read, (x1, y1, x2, y2), self._read_indexes, window=rwin)
        part_valid = self._valid(rwin, (x1, y1, x2, y2), data)
        part = apply_to_uint8(np.moveaxis(data, 0, -1)[..., self._channels], self._stats)
        part = np.where(part_valid[..., None], part, fill)
        img[oy : oy + rwin.height, ox : ox + rwin.width] = part
        valid[oy : oy + rwin.height, ox : ox + rwin.width] = part_valid
        return img, valid

    def read_decimated(self, max_side: int, fill_value=0) -> tuple[np.ndarray, np.ndarray]:
        """The whole scene at most ``max_side`` pixels a side (nearest neighbour; GDAL takes
        an overview when the file has one), as :meth:`read_tile` gives a window: BGR,
        scaled by the scene's statistics, invalid pixels ``fill_value``; and its validity.

        Returns:
            tuple: ``img`` (h, w, 3) and ``valid`` (h, w) bool, ``h / height`` and
            ``w / width`` about ``max_side / max(width, height)`` (1 for a small scene).
        """
        if max_side < 1:
            raise ValueError(f'read_decimated: max_side must be >= 1, got {max_side}')
        scale = min(1.0, max_side / max(self.width, self.height))
        shape = (
            len(self._read_indexes),
            max(1, round(self.height * scale)),
            max(1, round(self.width * scale)),
        )
        whole = (0, 0, self.width, self.height)
        data = self._read(
            self._ds.read,
            whole,
            self._read_indexes,
            out_shape=shape,
            resampling=Resampling.nearest,
        )
        valid = self._valid(None, whole, data, out_shape=shape)
        out_dtype = np.dtype(np.uint8) if self._stats is not None else self._dtype
        img = apply_to_uint8(np.moveaxis(data, 0, -1)[..., self._channels], self._stats)
        img = np.where(valid[..., None], img, _fill_array(fill_value, out_dtype))
        return np.ascontiguousarray(img, dtype=out_dtype), valid

    def read_valid(self, window) -> np.ndarray:
        """(h, w) bool validity of a window (False outside the scene), without the colours.

        Reads GDAL's masks only (nothing for a file with neither nodata nor
        mask), except where validity depends on the values (a float raster's
        NaN, a ``nodata`` override): then the bands too.
        """
        x1, y1, x2, y2 = _window_tuple(window)
        valid = np.zeros((y2 - y1, x2 - x1), dtype=bool)
        inside = self._inside((x1, y1, x2, y2))
        if inside is not None:
            rwin, (oy, ox) = inside
            data = None
            if self._float or self._nodata is not None:
                data = self._read(self._ds.read, (x1, y1, x2, y2), self._read_indexes, window=rwin)
            valid[oy : oy + rwin.height, ox : ox + rwin.width] = self._valid(
                rwin, (x1, y1, x2, y2), data
            )
        return valid

    def tile_is_empty(self, window) -> bool:
        """True when no pixel of the window is valid (all nodata / masked / NaN / outside).

        Cheap: reads the masks, not the colours (see :meth:`read_valid`), so a
        loop can skip the window before reading it or running a model.
        """
        return not self.read_valid(window).any()

    # -- internals -----------------------------------------------------------------
    def _inside(self, window):
        """The window clipped to the scene (a rasterio Window) and its (row, col) offset in it."""
        x1, y1, x2, y2 = window
        cx1, cy1, cx2, cy2 = max(x1, 0), max(y1, 0), min(x2, self.width), min(y2, self.height)
        if cx2 <= cx1 or cy2 <= cy1:
            return None
        return Window(cx1, cy1, cx2 - cx1, cy2 - cy1), (cy1 - y1, cx1 - x1)

    def _read(self, fn, where, *args, **kwargs):
        try:
            with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB):
                return fn(*args, **kwargs)
        except RasterioError as e:
            cause = f' ({e.__cause__})' if e.__cause__ else ''
            raise SceneReadError(
                f'scene {self.path}: GDAL could not read window x1, y1, x2, y2 = {where}: '
                f'{e}{cause}'
            ) from e

    def _valid(self, rwin, window, data, out_shape=None, dataset=None) -> np.ndarray:
        """(h, w) validity of a window (or of a decimated / overview read of the whole scene).

        Args:
            rwin (Window | None): the window inside the scene (None: the whole scene).
            window: the asked window, for messages.
            data (np.ndarray | None): (n, h, w) values of the read bands, when read.
            out_shape: (n, h, w) of a decimated read, or None.
            dataset: the dataset read (an overview's), default the scene's.
        """
        ds = dataset or self._ds
        kind = self._mask_kind
        if kind == 'nodata' and data is None:
            kind = 'masks'  # GDAL compares the values itself
        if kind == 'all_valid':
            shape = data.shape[1:] if data is not None else (rwin.height, rwin.width)
            valid = np.ones(shape, dtype=bool)
        elif kind == 'nodata':  # what GDAL's nodata mask is, from the values already read
            nodatas = np.array([self._ds.nodatavals[b - 1] for b in self._read_indexes])
            valid = (data != nodatas.astype(data.dtype)[:, None, None]).any(axis=0)
        else:
            kwargs = dict(window=rwin) if out_shape is None else dict(out_shape=out_shape)
            masks = self._read(ds.read_masks, window, self._read_indexes, **kwargs)
            valid = (masks > 0).any(axis=0)
        if self._nodata is not None:
            valid &= (data != self._nodata).any(axis=0)
        if data is not None and self._float:
            valid &= np.isfinite(data).all(axis=0)
        return valid

    def _choose_mask_kind(self) -> str:
        """How validity is found: ``'all_valid'``, ``'nodata'`` (by value) or ``'masks'`` (GDAL's).

        A ``nodata`` override replaces the file's nodata value; the file's
        per-dataset mask or alpha band still applies.
        """
        flags = [set(self._ds.mask_flag_enums[b - 1]) for b in self._read_indexes]
        if any(MaskFlags.per_dataset in f for f in flags):
            return 'masks'
        if self._nodata is not None or all(f == {MaskFlags.all_valid} for f in flags):
            return 'all_valid'
        if all(f == {MaskFlags.nodata} for f in flags):
            return 'nodata'
        return 'masks'

    def _given_stats(self, stats: dict):
        """Statistics measured earlier (``scene.stats`` of the same file and rule), checked."""
        rule = self.to_uint8
        if rule is None or any(stats.get(k) != v for k, v in rule.items()):
            raise ValueError(
                f'scene {self.path}: stats {stats} were not measured by the to_uint8 rule {rule}'
            )
        return dict(stats), 'given'

    def _choose_bands(self, bands) -> tuple[int, ...]:
        ds, path = self._ds, self.path
        interp = list(ds.colorinterp)
        alpha = {i + 1 for i, c in enumerate(interp) if c == ColorInterp.alpha}
        if bands is None:
            rgb = [ColorInterp.red, ColorInterp.green, ColorInterp.blue]
            colour = [i + 1 for i in range(ds.count) if i + 1 not in alpha]
            if all(c in interp for c in rgb):
                return tuple(interp.index(c) + 1 for c in rgb)
            if len(colour) >= 3:
                return tuple(colour[:3])
            if len(colour) == 1:
                return (colour[0],)
            raise ValueError(
                f'scene {path} has {len(colour)} colour band(s) and no red / green / blue '
                'interpretation: say which to show as red, green, blue with bands=(r, g, b) '
                '(--bands R,G,B), or one band'
            )
        if isinstance(bands, str):
            try:
                bands = [int(b) for b in bands.replace(' ', '').split(',')]
            except ValueError:
                raise ValueError(
                    f'scene {path}: bands {bands!r} must be comma-separated band numbers'
                ) from None
        bands = tuple(bands)
        if len(bands) not in (1, 3):
            raise ValueError(
                f'scene {path}: give 3 bands (shown as red, green, blue) or 1, got {len(bands)}: '
                f'{bands}'
            )
        for b in bands:
            if isinstance(b, bool) or not isinstance(b, (int, np.integer)):
                raise ValueError(f'scene {path}: band numbers are integers, got {b!r}')
            if not 1 <= b <= ds.count:
                raise ValueError(
                    f'scene {path}: asked for band {b}, the file has {ds.count} '
                    f'(bands are numbered from 1)'
                )
            if b in alpha:
                raise ValueError(
                    f'scene {path}: band {b} is an alpha band (a validity mask), not a colour band'
                )
        return tuple(int(b) for b in bands)

    def _measure_stats(self, budget: int):
        """The ``to_uint8`` statistics on a sample of about ``budget`` pixels, and where from."""
        if self.to_uint8 is None:
            return None, 'none (to_uint8=None)'
        integer = np.issubdtype(self._dtype, np.integer)
        if self.to_uint8['type'] == 'bit_depth' and self.to_uint8['bits'] and integer:
            return dict(self.to_uint8), 'the to_uint8 rule (bits given)'
        if self.to_uint8['type'] == 'bit_depth' and self._dtype == np.uint8:
            # 8-bit data is 8 bits deep whatever its values: nothing to measure
            return {**self.to_uint8, 'bits': 8}, 'uint8 data (8 bits)'
        nbits = self._ds.tags(self._bands[0], ns='IMAGE_STRUCTURE').get('NBITS')
        if (
            self.to_uint8['type'] == 'bit_depth'
            and self.to_uint8['bits'] is None
            and nbits
            and integer
        ):
            return {**self.to_uint8, 'bits': int(nbits)}, f'NBITS={nbits} tag of the file'
        size = self.width * self.height
        whole = (0, 0, self.width, self.height)
        if size <= budget:
            data = self._read(self._ds.read, whole, self._read_indexes)
            valid = self._valid(None, whole, data, out_shape=data.shape)
            source = f'all {self.width} x {self.height} pixels'
        else:
            factors = self._ds.overviews(self._read_indexes[0])
            levels = [
                (level, factor)
                for level, factor in enumerate(factors)
                if math.ceil(self.width / factor) * math.ceil(self.height / factor) >= budget
            ]
            if levels:
                level, factor = levels[-1]  # the smallest overview that is still large enough
                with warnings.catch_warnings():
                    warnings.simplefilter('ignore', NotGeoreferencedWarning)
                    overview = rasterio.open(self.path, overview_level=level)
                with overview:
                    data = self._read(overview.read, whole, self._read_indexes)
                    valid = self._valid(None, whole, data, data.shape, overview)
                source = f'overview 1/{factor} ({overview.width} x {overview.height} pixels)'
            else:
                scale = math.sqrt(size / budget)
                shape = (
                    len(self._read_indexes),
                    max(1, round(self.height / scale)),
                    max(1, round(self.width / scale)),
                )
                data = self._read(
                    self._ds.read,
                    whole,
                    self._read_indexes,
                    out_shape=shape,
                    resampling=Resampling.nearest,
                )
                valid = self._valid(None, whole, data, out_shape=shape)
                source = f'decimated read ({shape[2]} x {shape[1]} pixels)'
        sample = np.moveaxis(data, 0, -1)[..., self._channels]
        try:
            stats = to_uint8_stats(sample, self.to_uint8, valid)
        except ValueError as e:
            raise ValueError(f'scene {self.path}: {e}') from None
        return stats, source


def _reopen(path, args, stats):
    return GeoScene(path, **args, stats=stats)


__all__ = ['GeoScene', 'SceneReadError', 'scene_windows']
