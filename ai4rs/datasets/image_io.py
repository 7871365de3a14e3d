"""Reading images at their bit depth, and the explicit rule that brings them to 8 bits.

Remote-sensing imagery is often 11, 12 or 16 bits per band, stored in 16-bit
PNG or TIFF. Decoding it straight to 8 bits (OpenCV's ``IMREAD_COLOR``, which
mmcv uses) keeps the high byte: 12-bit data becomes values 0..15, a nearly
black image. Here the decoder keeps the file's depth, and :func:`to_uint8`
converts by a named rule:

* ``'bit_depth'`` (default): scale by the image's bit depth, the smallest
  ``n >= 8`` with ``max < 2**n`` (12-bit data: ``x * 255 / 4095``), or by a
  given ``bits``. 8-bit images are unchanged.
* ``'percentile'``: per band, stretch the ``low``..``high`` percentiles of its
  values (``nodata`` excluded) to 0..255, as remote-sensing viewers do.
* ``None``: keep the decoded depth (for models that normalise it themselves).

A rule's statistics can also be measured once on a sample of a large scene
(:func:`to_uint8_stats`) and applied to each of its tiles
(:func:`apply_to_uint8`), so that neighbouring tiles are scaled alike.

The same functions serve the data pipeline (``LoadImageFromFile``),
inference on files and arrays, sliced inference and the drawings, so a model
sees the same pixels everywhere.
"""

import io
import os.path as osp

import cv2
import numpy as np

from .file_checks import ImageDecodeError

TIFF_SUFFIXES = ('.tif', '.tiff')
TO_UINT8_RULES = ('bit_depth', 'percentile')

_COLOR_FLAGS = {
    'color': cv2.IMREAD_COLOR,
    'grayscale': cv2.IMREAD_GRAYSCALE,
    'unchanged': cv2.IMREAD_UNCHANGED,
    'color_ignore_orientation': cv2.IMREAD_IGNORE_ORIENTATION | cv2.IMREAD_COLOR,
    'grayscale_ignore_orientation': cv2.IMREAD_IGNORE_ORIENTATION | cv2.IMREAD_GRAYSCALE,
}


def normalize_to_uint8_rule(rule) -> dict | None:
    """``rule`` as a dict ``{'type': 'bit_depth' | 'percentile', ...}`` (``None`` stays ``None``).

    Accepted: ``None``, ``'bit_depth'``, ``'percentile'``,
    ``dict(type='bit_depth', bits=None)``,
    ``dict(type='percentile', low=2.0, high=98.0, nodata=None)``.
    """
    if rule is None:
        return None
    cfg = dict(type=rule) if isinstance(rule, str) else dict(rule)
    kind = cfg.get('type')
    if kind == 'bit_depth':
        unknown = set(cfg) - {'type', 'bits'}
        defaults = dict(bits=None)
    elif kind == 'percentile':
        unknown = set(cfg) - {'type', 'low', 'high', 'nodata'}
        defaults = dict(low=2.0, high=98.0, nodata=None)
    else:
        raise ValueError(
            f'to_uint8 rule must be None or one of {TO_UINT8_RULES} (a name or a '
            f'dict with that type), got {rule!r}'
        )
    if unknown:
        raise ValueError(f'to_uint8 rule {kind!r}: unknown keys {sorted(unknown)}')
    out = {**defaults, **cfg}
    if kind == 'percentile' and not 0 <= out['low'] < out['high'] <= 100:
        raise ValueError(f'to_uint8 percentile: need 0 <= low < high <= 100, got {out}')
    if kind == 'bit_depth' and out['bits'] is not None and not 1 <= out['bits'] <= 64:
        raise ValueError(f'to_uint8 bit_depth: bits must be in 1..64, got {out["bits"]}')
    return out


def data_bit_depth(img: np.ndarray) -> int:
    """The smallest ``n >= 8`` such that every value of the integer image is below ``2**n``."""
    peak = int(img.max()) if img.size else 0
    return max(8, max(peak, 0).bit_length())


def to_uint8(img: np.ndarray, rule='bit_depth') -> np.ndarray:
    """Bring an image of any depth to uint8 by an explicit rule (see the module docstring).

    The rule's statistics (bit depth, percentiles) are measured on ``img``
    itself: ``to_uint8(img, rule) == apply_to_uint8(img, to_uint8_stats(img, rule))``.

    Args:
        img (np.ndarray): (H, W) or (H, W, C), any integer, bool or float dtype.
        rule: see :func:`normalize_to_uint8_rule`.

    Returns:
        np.ndarray: uint8 of the same shape (``img`` itself when it is uint8
        or ``rule`` is None).
    """
    if img.dtype == np.uint8:
        normalize_to_uint8_rule(rule)  # still a clear error for a bad rule
        return img
    return apply_to_uint8(img, to_uint8_stats(img, rule))


def to_uint8_stats(
    img: np.ndarray, rule='bit_depth', valid: np.ndarray | None = None
) -> dict | None:
    """The numbers ``rule`` scales by, measured on ``img`` (over its ``valid`` pixels).

    Measure them once on a whole image or on a sample of a large scene (an
    overview, a decimated read), then :func:`apply_to_uint8` them to every
    tile, so that neighbouring tiles are scaled alike.

    Args:
        img (np.ndarray): (H, W) or (H, W, C), any integer, bool or float dtype.
        rule: see :func:`normalize_to_uint8_rule`.
        valid (np.ndarray, optional): (H, W) bool, the pixels to measure;
            all when None. Non-finite values and the rule's ``nodata`` are
            never measured.

    Returns:
        dict | None: None for the rule None; else the normalised rule plus
        ``bits`` (int: scale by ``255 / (2**bits - 1)``; None for a float
        image, whose [0, 1] values are scaled by 255) for ``'bit_depth'``, or
        ``lo`` / ``hi`` (tuples of C floats, one per channel, None for a
        channel with no valid value) for ``'percentile'``.

    Raises:
        ValueError: a float image outside [0, 1] under ``'bit_depth'``.
    """
    cfg = normalize_to_uint8_rule(rule)
    if cfg is None:
        return None
    if valid is not None and valid.shape != img.shape[:2]:
        raise ValueError(f'valid mask of shape {valid.shape} for an image of shape {img.shape}')
    if cfg['type'] == 'percentile':
        bands = img[..., None] if img.ndim == 2 else img
        lows, highs = [], []
        for c in range(bands.shape[-1]):
            values = bands[..., c][_measured(bands[..., c], cfg['nodata'], valid)]
            if not values.size:
                lows.append(None)
                highs.append(None)
                continue
            lo, hi = np.percentile(values.astype(np.float64), [cfg['low'], cfg['high']])
            lows.append(float(lo))
            highs.append(float(hi))
        return {**cfg, 'lo': tuple(lows), 'hi': tuple(highs)}
    values = img if valid is None else img[valid]
    if img.dtype == np.uint8 or img.dtype == np.bool_:
        return {**cfg, 'bits': cfg['bits'] or (8 if img.dtype == np.uint8 else 1)}
    if np.issubdtype(img.dtype, np.integer):
        return {**cfg, 'bits': cfg['bits'] or data_bit_depth(values)}
    finite = values[np.isfinite(values)]
    if finite.size and (finite.min() < 0 or finite.max() > 1):
        raise ValueError(
            'to_uint8 bit_depth: a floating-point image must hold values in [0, 1] (got '
            f"{finite.min():g}..{finite.max():g}); use to_uint8=dict(type='percentile') "
            'for other ranges'
        )
    return {**cfg, 'bits': None}


def apply_to_uint8(img: np.ndarray, stats: dict | None) -> np.ndarray:
    """Scale ``img`` to uint8 by statistics from :func:`to_uint8_stats` (of it or of its scene).

    uint8 images and ``stats`` None give ``img`` itself; bool gives 0 / 255.
    ``'bit_depth'``: ``rint(x * 255 / (2**bits - 1))`` (floats: ``rint(x * 255)``,
    NaN -> 0); ``'percentile'``: channel ``c`` maps ``lo[c]..hi[c]`` to 0..255
    (non-finite and ``nodata`` values -> 0). Values outside the range clip to
    0 / 255.

    Args:
        img (np.ndarray): (H, W) or (H, W, C) with as many channels as the stats.
        stats (dict | None): from :func:`to_uint8_stats`.

    Returns:
        np.ndarray: uint8 of the same shape.
    """
    if stats is None or img.dtype == np.uint8:
        return img
    if img.dtype == np.bool_:
        return img.astype(np.uint8) * 255
    if stats['type'] == 'percentile':
        return _percentile_stretch(img, stats['lo'], stats['hi'], stats['nodata'])
    if np.issubdtype(img.dtype, np.integer):
        if stats['bits'] is None:
            raise ValueError('to_uint8 statistics of a float image applied to an integer one')
        scaled = img.astype(np.float64) * (255.0 / (2.0 ** stats['bits'] - 1))
    else:
        scaled = np.nan_to_num(img.astype(np.float64), nan=0.0) * 255.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _measured(band: np.ndarray, nodata, valid: np.ndarray | None) -> np.ndarray:
    """(H, W) bool: the band's values a statistic may use (finite, not nodata, valid)."""
    floating = np.issubdtype(band.dtype, np.floating)
    keep = np.isfinite(band) if floating else np.ones(band.shape, bool)
    if nodata is not None:
        keep &= band != nodata
    if valid is not None:
        keep &= valid
    return keep


def _percentile_stretch(img: np.ndarray, lows, highs, nodata) -> np.ndarray:
    bands = img[..., None] if img.ndim == 2 else img
    if len(lows) != bands.shape[-1]:
        raise ValueError(
            f'to_uint8 percentile statistics of {len(lows)} channels for an image of '
            f'{bands.shape[-1]}'
        )
    out = np.zeros(bands.shape, dtype=np.uint8)
    for c, (lo, hi) in enumerate(zip(lows, highs)):
        if lo is None:
            continue
        band = bands[..., c].astype(np.float64)
        span = hi - lo if hi > lo else 1.0
        stretched = np.clip(np.rint((np.nan_to_num(band, nan=lo) - lo) * (255.0 / span)), 0, 255)
        out[..., c] = np.where(_measured(band, nodata, None), stretched, 0)
    return out[..., 0] if img.ndim == 2 else out


def _tifffile():
    try:
        import tifffile
    except ImportError:
        return None
    return tifffile


def _decode_tiff(img_bytes: bytes, color_type: str) -> np.ndarray:
    """A TIFF (also GeoTIFF, multi-band, float) through tifffile, as (H, W[, C]) BGR."""
    img = _tifffile().imread(io.BytesIO(img_bytes))
    img = np.squeeze(img)
    if img.ndim == 3 and img.shape[0] < img.shape[-1] and img.shape[0] <= 16:
        img = img.transpose(1, 2, 0)  # planar (C, H, W) -> (H, W, C)
    if img.ndim not in (2, 3):
        raise ImageDecodeError(f'expected a 2-D image with optional bands, got shape {img.shape}')
    if color_type.startswith('unchanged'):
        return img[..., ::-1].copy() if img.ndim == 3 and img.shape[-1] in (3, 4) else img
    if img.ndim == 3:
        img = img[..., :3] if img.shape[-1] >= 3 else img[..., :1].repeat(3, axis=-1)
        img = np.ascontiguousarray(img[..., ::-1])  # the first three bands as R, G, B -> BGR
    if color_type.startswith('grayscale'):
        return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.ndim == 3 else img
    return img if img.ndim == 3 else np.repeat(img[..., None], 3, axis=-1)


def decode_image(
    img_bytes: bytes, path: str, color_type: str = 'color', backend: str = 'cv2'
) -> np.ndarray:
    """Decode image bytes keeping their bit depth (BGR channel order, as mmcv).

    TIFF files go through ``tifffile`` when it is installed (the optional
    extra; multi-band images give their first three bands); everything else
    (and TIFF without tifffile) through OpenCV with ``IMREAD_ANYDEPTH``.
    Backends other than ``'cv2'`` use mmcv's decoder (8 bits).

    Args:
        img_bytes (bytes): the file's content.
        path (str): the file's name, for the format and for messages.
        color_type (str): mmcv's ``'color'``, ``'grayscale'``, ``'unchanged'``...

    Returns:
        np.ndarray: (H, W, 3) for colour, (H, W) for grayscale; uint8, uint16,
        float32... as stored.

    Raises:
        ImageDecodeError: empty or undecodable data (names ``path``).
    """
    if not img_bytes:
        raise ImageDecodeError(f'image file {path} is empty (0 bytes)')
    is_tiff = osp.splitext(str(path))[1].lower() in TIFF_SUFFIXES
    try:
        if is_tiff and _tifffile() is not None:
            return _decode_tiff(img_bytes, color_type)
        if backend != 'cv2':
            import mmcv

            img = mmcv.imfrombytes(img_bytes, flag=color_type, backend=backend)
        else:
            if color_type not in _COLOR_FLAGS:
                raise ValueError(f'unknown color_type {color_type!r}; one of {list(_COLOR_FLAGS)}')
            flag = _COLOR_FLAGS[color_type]
            if flag != cv2.IMREAD_UNCHANGED:
                flag |= cv2.IMREAD_ANYDEPTH
            img = cv2.imdecode(np.frombuffer(img_bytes, np.uint8), flag)
    except ImageDecodeError as e:
        raise ImageDecodeError(f'could not decode image {path}: {e}') from None
    except (cv2.error, OSError, ValueError) as e:
        if isinstance(e, ValueError) and 'color_type' in str(e):
            raise
        raise ImageDecodeError(
            f'could not decode image {path}: {type(e).__name__}: '
            f'{str(e).strip().splitlines()[-1] if str(e).strip() else ""}'
        ) from None
    if img is None:
        hint = (
            (
                ' (for TIFF formats OpenCV cannot read, install the optional reader: '
                'pip install tifffile)'
            )
            if is_tiff and _tifffile() is None
            else ''
        )
        raise ImageDecodeError(
            f'could not decode image {path} ({len(img_bytes)} bytes: '
            f'truncated, corrupt or not an image){hint}'
        )
    return img


def read_image(
    path: str,
    color_type: str = 'color',
    to_uint8_rule='bit_depth',
    backend_args: dict | None = None,
) -> np.ndarray:
    """Read an image file as the pipeline does: :func:`decode_image` then :func:`to_uint8`.

    Returns:
        np.ndarray: (H, W, 3) BGR (colour) or (H, W); uint8 unless the rule is None.
    """
    from mmengine import fileio

    return to_uint8(
        decode_image(fileio.get(path, backend_args=backend_args), path, color_type), to_uint8_rule
    )


def config_to_uint8_rule(cfg, default='bit_depth'):
    """The ``to_uint8`` rule of a config's test (else val, else train) pipeline."""
    for key in ('test_dataloader', 'val_dataloader', 'train_dataloader'):
        loader = cfg.get(key) if cfg is not None else None
        dataset = loader.get('dataset') if loader else None
        while isinstance(dataset, dict) and 'pipeline' not in dataset and 'dataset' in dataset:
            dataset = dataset['dataset']  # dataset wrappers
        if isinstance(dataset, dict) and dataset.get('pipeline'):
            return pipeline_to_uint8_rule(dataset['pipeline'], default)
    return default


def pipeline_to_uint8_rule(pipeline: list | None, default='bit_depth'):
    """The ``to_uint8`` rule of the first ``LoadImageFromFile`` of a pipeline config list.

    Lets code outside the pipeline (sliced inference, drawings) convert
    images exactly as the model's pipeline does.
    """
    for step in pipeline or []:
        if isinstance(step, dict) and 'LoadImageFromFile' in str(step.get('type', '')):
            return step.get('to_uint8', default)
    return default
