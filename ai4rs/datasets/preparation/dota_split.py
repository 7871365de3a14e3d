"""Split large DOTA images into overlapping patches, with their objects (img_split).

This is the logic of ``tools/data/dota/split/img_split.py`` (mmrotate 1.x's tool,
same options and output), as importable functions:

- windows (:mod:`ai4rs.datasets.sliding_windows`, shared with sliced inference): for each
  (size, gap), ``step = size - gap``; along an axis of length
  ``L`` the starts are ``0, step, 2*step...`` (``ceil((L - size) / step + 1)``
  of them, one if ``L <= size``) and the last one is moved back to ``L - size``
  if it overruns. Windows are all (x start, y start) pairs, x-major. A window is
  kept if (its area inside the image) / (its area) > ``img_rate_thr``; if none
  is, those within 0.01 of the best ratio are kept.
- objects: an object goes to a window if ``area(polygon & window) /
  area(polygon) >= iof_thr`` (shapely). Its coordinates are translated to the
  patch, never clipped; a truncated object (iof < 1) gets difficulty 2.
- patches: ``{img_id}__{window size}__{x}___{y}``; patches at the right / bottom
  edge are padded with ``padding_value`` to the window size (unless
  ``no_padding``). An annotation file is written for every patch, empty if it
  holds no object.

Rates do not resize images: with ``rates`` the window is ``int(size / rate)``
and the gap ``int(gap / rate)`` pixels of the original image.
"""

import datetime
import logging
import os
import os.path as osp
from collections.abc import Sequence
from functools import partial

import cv2
import numpy as np
import shapely

from ..dota import DOTALabels, load_dota_labels
from ..sliding_windows import crop_patch, get_sliding_windows

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.tif', '.tiff', '.bmp')
SAVE_EXTENSIONS = ('.png', '.jpg', '.bmp', '.tif')

# ------------------------------------------------------------------ object assignment


# ------------------------------------------------------------------------- windows


def scaled_sizes_and_gaps(
    sizes: Sequence[int], gaps: Sequence[int], rates: Sequence[float]
) -> tuple[list[int], list[int]]:
    """Windows and gaps in original pixels: ``int(size / rate)``, ``int(gap / rate)``.

    Rates loop outside sizes, as upstream (``len(sizes) == 1 or len(rates) == 1``).
    """
    if len(sizes) != len(gaps):
        raise ValueError(f'sizes and gaps must have the same length, got {sizes} and {gaps}')
    out_sizes, out_gaps = [], []
    for rate in rates:
        if rate <= 0:
            raise ValueError(f'rates must be positive, got {rate}')
        out_sizes += [int(size / rate) for size in sizes]
        out_gaps += [int(gap / rate) for gap in gaps]
    return out_sizes, out_gaps


# ------------------------------------------------------------------ object assignment


def polygon_window_iofs(polygons: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """Intersection over the polygon's own area, for every polygon and window.

    Args:
        polygons (np.ndarray): (N, 8) quadrilaterals ``x1 y1 ... x4 y4``.
        windows (np.ndarray): (K, 4) ``x1 y1 x2 y2``.

    Returns:
        np.ndarray: (N, K) float64 in [0, 1]. A polygon whose bounding box lies in
        the window gets exactly 1; a polygon of zero area gets 0 everywhere (as
        upstream). Self-intersecting polygons are repaired with
        ``shapely.make_valid`` before measuring.
    """
    polygons = np.asarray(polygons, dtype=np.float64).reshape(-1, 8)
    windows = np.asarray(windows, dtype=np.float64).reshape(-1, 4)
    iofs = np.zeros((len(polygons), len(windows)))
    if iofs.size == 0:
        return iofs
    pts = polygons.reshape(-1, 4, 2)
    lo, hi = pts.min(axis=1), pts.max(axis=1)  # (N, 2)
    # bounding-box overlap with positive area, and containment
    inter_wh = np.minimum(hi[:, None, :], windows[None, :, 2:]) - np.maximum(
        lo[:, None, :], windows[None, :, :2]
    )  # (N, K, 2)
    overlap = np.all(inter_wh > 0, axis=-1)
    contained = np.all(lo[:, None, :] >= windows[None, :, :2], axis=-1) & np.all(
        hi[:, None, :] <= windows[None, :, 2:], axis=-1
    )

    shapes = shapely.polygons(pts)
    invalid = ~shapely.is_valid(shapes)
    if invalid.any():
        shapes[invalid] = shapely.make_valid(shapes[invalid])
    areas = shapely.area(shapes)
    positive = areas > 0
    iofs[contained & positive[:, None]] = 1.0

    rows, cols = np.nonzero(overlap & ~contained & positive[:, None])
    if len(rows):
        boxes = shapely.box(windows[cols, 0], windows[cols, 1], windows[cols, 2], windows[cols, 3])
        inter = shapely.area(shapely.intersection(shapes[rows], boxes))
        iofs[rows, cols] = np.clip(inter / areas[rows], 0.0, 1.0)
    return iofs


def assign_objects(
    polygons: np.ndarray, windows: np.ndarray, iof_thr: float
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The objects of each window: ``(indices (M,) int64, truncated (M,) bool)``.

    An object belongs to a window if its iof there is ``>= iof_thr``; it is
    truncated if that iof is below 1.
    """
    iofs = polygon_window_iofs(polygons, windows)
    result = []
    for k in range(iofs.shape[1]):
        inds = np.flatnonzero(iofs[:, k] >= iof_thr)
        result.append((inds, iofs[inds, k] < 1))
    return result


# ----------------------------------------------------------------------------- patches


def patch_id(img_id: str, window: Sequence[int]) -> str:
    """``{img_id}__{window width}__{x1}___{y1}`` (the middle field is the size, not the rate)."""
    x1, y1, x2, _ = (int(v) for v in window)
    return f'{img_id}__{x2 - x1}__{x1}___{y1}'


def format_object_line(polygon: Sequence[float], name: str, difficulty: int) -> str:
    """A DOTA label line; coordinates in Python's shortest float form (``409.0``)."""
    return ' '.join([repr(float(v)) for v in polygon] + [name, str(int(difficulty))])


def window_lines(
    labels: DOTALabels, inds: np.ndarray, truncated: np.ndarray, window: Sequence[int]
) -> list[str]:
    """Label lines of the objects ``inds`` translated into ``window``'s patch."""
    x1, y1 = float(window[0]), float(window[1])
    offset = np.array([x1, y1] * 4)
    lines = []
    for i, trunc in zip(inds, truncated):
        diff = 2 if trunc else labels.difficulties[i]
        lines.append(format_object_line(labels.polygons[i] - offset, labels.names[i], diff))
    return lines


# ------------------------------------------------------------------------ one image


class ImageReadError(OSError):
    """An image file that cannot be decoded."""


def split_image(
    img_path: str,
    ann_path: str | None,
    *,
    sizes: Sequence[int],
    gaps: Sequence[int],
    img_rate_thr: float,
    iof_thr: float,
    no_padding: bool,
    padding_value,
    img_out_dir: str,
    ann_out_dir: str,
    save_ext: str,
) -> dict:
    """Split one image and its label file (``ann_path`` may be None: no labels).

    Returns:
        dict: ``img_path``, ``width``, ``height``, ``objects``, ``patches``
        (list of patch ids) and ``warnings`` (skipped label lines etc.).

    Images deeper than 8 bits keep their depth in the patches (.png / .tif).

    Raises:
        ImageReadError: the image cannot be read, or its depth does not fit ``save_ext``.
        OSError: a patch cannot be written.
    """
    warnings: list[str] = []
    img_id = osp.splitext(osp.basename(img_path))[0]
    if ann_path is None:
        labels = load_dota_labels_or_empty(None)
    elif not osp.isfile(ann_path):
        warnings.append(f'{ann_path} does not exist; {img_path} is treated as having no objects')
        labels = load_dota_labels_or_empty(None)
    else:
        labels = load_dota_labels(ann_path, strict=False, on_skip=warnings.append)

    # keep the bit depth (a 16-bit image read as 8 bits keeps only its high byte); the
    # patches are written at the same depth and converted when loaded (LoadImageFromFile)
    img = cv2.imread(img_path, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    if img is None:
        raise ImageReadError(f'cannot read image {img_path}')
    if img.dtype != np.uint8 and save_ext not in ('.png', '.tif'):
        raise ImageReadError(
            f'{img_path} is a {img.dtype} image; {save_ext} patches cannot '
            'hold its depth: use --save-ext .png or .tif'
        )
    height, width = img.shape[:2]
    windows = get_sliding_windows(width, height, sizes, gaps, img_rate_thr)
    patches = []
    for window, (inds, truncated) in zip(
        windows, assign_objects(labels.polygons, windows, iof_thr)
    ):
        pid = patch_id(img_id, window)
        patch = crop_patch(img, window, no_padding, padding_value)
        out_img = osp.join(img_out_dir, pid + save_ext)
        if not cv2.imwrite(out_img, patch):
            raise OSError(f'cannot write {out_img}')
        lines = window_lines(labels, inds, truncated, window)
        with open(osp.join(ann_out_dir, pid + '.txt'), 'w', encoding='utf-8') as f:
            f.writelines(line + '\n' for line in lines)
        patches.append(pid)
    return dict(
        img_path=img_path,
        width=width,
        height=height,
        objects=len(labels),
        patches=patches,
        warnings=warnings,
    )


def load_dota_labels_or_empty(path: str | None) -> DOTALabels:
    """``load_dota_labels(path, strict=False)``, or no objects for None."""
    if path is None:
        return DOTALabels(np.zeros((0, 8)), [], np.zeros(0, dtype=np.int64))
    return load_dota_labels(path, strict=False)


def _split_task(task: tuple[str, str | None], **kwargs) -> dict:
    """Worker: ``split_image`` that reports an error instead of raising it."""
    img_path, ann_path = task
    try:
        return split_image(img_path, ann_path, **kwargs)
    except Exception as e:  # noqa: BLE001 - one bad image must not stop the others
        return dict(img_path=img_path, error=f'{type(e).__name__}: {e}', patches=[], warnings=[])


# ------------------------------------------------------------------------- a dataset


def list_images(img_dir: str) -> list[str]:
    """Image files of a folder (by extension, any case), sorted."""
    if not osp.isdir(img_dir):
        raise FileNotFoundError(f'image folder {img_dir!r} does not exist')
    names = sorted(n for n in os.listdir(img_dir) if osp.splitext(n)[1].lower() in IMAGE_EXTENSIONS)
    return [osp.join(img_dir, n) for n in names]


def setup_split_logger(save_dir: str) -> logging.Logger:
    """A logger writing to ``save_dir/{timestamp}.log`` (everything) and the console."""
    logger = logging.getLogger('ai4rs.img_split')
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    formatter = logging.Formatter('%(asctime)s - %(levelname)s - %(message)s')
    now = datetime.datetime.now().strftime('%Y%m%d_%H%M%S')
    file_handler = logging.FileHandler(osp.join(save_dir, f'{now}.log'), 'w')
    file_handler.setLevel(logging.INFO)
    console = logging.StreamHandler()
    console.setLevel(logging.WARNING)
    for handler in (file_handler, console):
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    return logger


def split_dataset(
    img_dirs: Sequence[str],
    ann_dirs: Sequence[str | None] | None,
    save_dir: str,
    sizes: Sequence[int] = (1024,),
    gaps: Sequence[int] = (512,),
    rates: Sequence[float] = (1.0,),
    img_rate_thr: float = 0.6,
    iof_thr: float = 0.7,
    no_padding: bool = False,
    padding_value: float | Sequence[float] = 0,
    save_ext: str = '.png',
    nproc: int = 1,
    logger: logging.Logger | None = None,
    progress: bool = True,
) -> dict:
    """Split every image of ``img_dirs`` into ``save_dir/images`` and ``save_dir/annfiles``.

    Args:
        img_dirs (Sequence[str]): image folders.
        ann_dirs (Sequence[str | None], optional): their label folders
            (``{img_id}.txt``), or None for unlabelled images (empty annfiles).
        save_dir (str): output folder; must not exist.
        sizes, gaps, rates: window sizes, gaps and rates (see module doc).
        img_rate_thr (float): minimal share of a window inside the image.
        iof_thr (float): minimal share of an object inside a window, in [0, 1].
        no_padding (bool): keep edge patches smaller than the window.
        padding_value (float | Sequence[float]): one value or one per channel (3).
        save_ext (str): '.png', '.jpg', '.bmp' or '.tif'.
        nproc (int): worker processes.
        logger (logging.Logger, optional): defaults to a logger writing
            ``save_dir/{timestamp}.log``.
        progress (bool): show a progress bar.

    Returns:
        dict: ``images`` (split), ``patches``, ``failed`` (list of
        ``(img_path, error)`` for images that could not be split).

    Raises:
        FileExistsError: ``save_dir`` exists (outputs are never mixed).
        ValueError: an argument is out of range.
    """
    if osp.exists(save_dir):
        raise FileExistsError(
            f'save dir {save_dir!r} already exists; remove it or choose '
            f'another one (outputs of two runs are never mixed)'
        )
    img_dirs = list(img_dirs)
    if ann_dirs is None:
        ann_dirs = [None] * len(img_dirs)
    if len(ann_dirs) != len(img_dirs):
        raise ValueError(
            f'ann_dirs must be one per img_dir, got {len(ann_dirs)} for {len(img_dirs)}'
        )
    if not (len(sizes) == 1 or len(rates) == 1):
        raise ValueError('either sizes or rates must have a single value')
    if save_ext not in SAVE_EXTENSIONS:
        raise ValueError(f'save_ext must be one of {SAVE_EXTENSIONS}, got {save_ext!r}')
    if not 0 <= iof_thr <= 1:
        raise ValueError(f'iof_thr must be in [0, 1], got {iof_thr}')
    if isinstance(padding_value, (list, tuple)):
        if len(padding_value) == 1:
            padding_value = padding_value[0]
        elif len(padding_value) != 3:
            raise ValueError(f'padding_value must be 1 or 3 numbers, got {padding_value}')
    all_sizes, all_gaps = scaled_sizes_and_gaps(sizes, gaps, rates)
    for size, gap in zip(all_sizes, all_gaps):
        if not size > gap >= 0:
            raise ValueError(
                f'each window size must be larger than its gap, got size {size}, gap {gap}'
            )
    tasks = []
    for img_dir, ann_dir in zip(img_dirs, ann_dirs):
        if ann_dir is not None and not osp.isdir(ann_dir):
            raise FileNotFoundError(f'annotation folder {ann_dir!r} does not exist')
        for img_path in list_images(img_dir):
            ann_path = None
            if ann_dir is not None:
                img_id = osp.splitext(osp.basename(img_path))[0]
                ann_path = osp.join(ann_dir, img_id + '.txt')
            tasks.append((img_path, ann_path))

    img_out_dir = osp.join(save_dir, 'images')
    ann_out_dir = osp.join(save_dir, 'annfiles')
    os.makedirs(img_out_dir)
    os.makedirs(ann_out_dir)
    if logger is None:
        logger = setup_split_logger(save_dir)
    logger.info(
        f'splitting {len(tasks)} images: sizes {all_sizes}, gaps {all_gaps}, '
        f'img_rate_thr {img_rate_thr}, iof_thr {iof_thr}, padding '
        f'{"off" if no_padding else padding_value}, into {save_dir}'
    )

    worker = partial(
        _split_task,
        sizes=all_sizes,
        gaps=all_gaps,
        img_rate_thr=img_rate_thr,
        iof_thr=iof_thr,
        no_padding=no_padding,
        padding_value=padding_value,
        img_out_dir=img_out_dir,
        ann_out_dir=ann_out_dir,
        save_ext=save_ext,
    )
    results = _run_tasks(worker, tasks, nproc, progress)

    failed, num_patches, num_images = [], 0, 0
    for res in results:
        for msg in res['warnings']:
            logger.warning(msg)
        if 'error' in res:
            failed.append((res['img_path'], res['error']))
            logger.error(f'skipped {res["img_path"]}: {res["error"]}')
            continue
        num_images += 1
        num_patches += len(res['patches'])
        logger.info(
            f'{osp.basename(res["img_path"])}: {res["width"]}x{res["height"]}, '
            f'{res["objects"]} objects, {len(res["patches"])} patches'
        )
    logger.info(
        f'split {num_images} images into {num_patches} patches; {len(failed)} images failed'
    )
    return dict(images=num_images, patches=num_patches, failed=failed)


def _run_tasks(worker, tasks: list, nproc: int, progress: bool) -> list[dict]:
    """Run ``worker`` on every task, in ``nproc`` processes, with a progress bar."""
    if not tasks:
        return []
    if nproc > 1:
        if progress:
            from mmengine.utils import track_parallel_progress

            return track_parallel_progress(worker, tasks, nproc, keep_order=True)
        from multiprocessing import Pool

        with Pool(nproc) as pool:
            return pool.map(worker, tasks)
    if progress:
        from mmengine.utils import track_progress

        return track_progress(worker, tasks)
    return [worker(task) for task in tasks]
