"""Sliding windows over large images: where the windows go, and cutting them out.

Shared by the DOTA splitter (:mod:`ai4rs.datasets.preparation.dota_split`) and sliced
inference (:func:`ai4rs.apis.inference_detector_by_patches`), so both cut the same windows.

Along an axis of length ``L``, windows of ``size`` every ``step = size - gap`` pixels start at
``0, step, 2*step...`` (``ceil((L - size) / step + 1)`` of them, one if ``L <= size``); the
last is moved back to ``L - size`` if it overruns. Windows are all (x start, y start) pairs,
x-major, as ``x1, y1, x2, y2``.
"""

import itertools
from collections.abc import Sequence
from math import ceil

import numpy as np


def window_starts(length: int, size: int, step: int) -> list[int]:
    """Start offsets of the sliding windows along one axis.

    Args:
        length (int): image width or height.
        size (int): window size.
        step (int): ``size - gap``, > 0.

    Returns:
        list[int]: ``[0]`` if ``length <= size``; else ``i * step`` for
        ``i < ceil((length - size) / step + 1)``, the last moved back to
        ``length - size`` if it overruns.
    """
    if length <= size:
        return [0]
    num = ceil((length - size) / step + 1)
    starts = [step * i for i in range(num)]
    if starts[-1] + size > length:
        starts[-1] = length - size
    return starts


def get_sliding_windows(
    width: int,
    height: int,
    sizes: Sequence[int],
    gaps: Sequence[int],
    img_rate_thr: float = 0.6,
    eps: float = 0.01,
) -> np.ndarray:
    """The windows of an image, as an (K, 4) int64 array of ``x1, y1, x2, y2``.

    Args:
        width, height (int): image size.
        sizes, gaps (Sequence[int]): window sizes and their gaps (overlaps).
        img_rate_thr (float): keep windows whose share inside the image is above it.
        eps (float): if no window passes, keep those within ``eps`` of the best.
    """
    windows = []
    for size, gap in zip(sizes, gaps):
        if not size > gap:
            raise ValueError(f'window size must be larger than its gap, got size {size}, gap {gap}')
        step = size - gap
        xs = window_starts(width, size, step)
        ys = window_starts(height, size, step)
        starts = np.array(list(itertools.product(xs, ys)), dtype=np.int64)
        windows.append(np.concatenate([starts, starts + size], axis=1))
    windows = np.concatenate(windows, axis=0)

    inside = windows.copy()
    inside[:, 0::2] = np.clip(inside[:, 0::2], 0, width)
    inside[:, 1::2] = np.clip(inside[:, 1::2], 0, height)
    img_areas = (inside[:, 2] - inside[:, 0]) * (inside[:, 3] - inside[:, 1])
    win_areas = (windows[:, 2] - windows[:, 0]) * (windows[:, 3] - windows[:, 1])
    rates = img_areas / win_areas
    keep = rates > img_rate_thr
    if not keep.any():
        keep = np.abs(rates - rates.max()) < eps
    return windows[keep]


def crop_patch(
    img: np.ndarray,
    window: Sequence[int],
    no_padding: bool = False,
    padding_value: float | Sequence[float] = 0,
) -> np.ndarray:
    """The window's part of ``img`` (H, W, C), padded at bottom / right to the window size."""
    x1, y1, x2, y2 = (int(v) for v in window)
    patch = img[y1:y2, x1:x2]
    height, width = y2 - y1, x2 - x1
    if no_padding or (patch.shape[0] == height and patch.shape[1] == width):
        return patch
    padded = np.empty((height, width) + patch.shape[2:], dtype=img.dtype)
    padded[...] = padding_value
    padded[: patch.shape[0], : patch.shape[1]] = patch
    return padded
