"""What the multi-image transforms share: the base class that fetches the other images (from
the dataset or from a cache of earlier results), the mosaic placement and the mosaic step.

Used by mmdet's ``CachedMosaic`` / ``CachedMixUp`` (rotated YOLOX) and mmyolo's ``Mosaic`` /
``YOLOv5MixUp`` (YOLO-World). Results keys as in :mod:`.transforms`.
"""

from __future__ import annotations

import collections.abc
import copy
from collections.abc import Sequence

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.dataset.base_dataset import Compose
from numpy import random

from ai4rs.registry import TRANSFORMS
from ai4rs.structures.mask import PolygonMasks

from .instances import get_gt_boxes, keep_instances

# The four mosaic cells, in the order the images fill them (the current image first).
MOSAIC_LOCATIONS = ('top_left', 'top_right', 'bottom_left', 'bottom_right')


def mosaic_paste_coords(
    loc: str, center_xy: tuple[int, int], img_wh: tuple[int, int], canvas_wh: tuple[int, int]
) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int]]:
    """Where a sub-image goes on a mosaic canvas, and which part of it is used (mmdet's and
    mmyolo's ``_mosaic_combine``).

    The four sub-images meet at ``center_xy``: the top-left one has its bottom-right corner
    there, the top-right one its bottom-left corner, etc. The parts that fall outside the
    canvas are cut off.

    Args:
        loc (str): one of ``MOSAIC_LOCATIONS``.
        center_xy (tuple[int, int]): meeting point on the canvas.
        img_wh (tuple[int, int]): sub-image width and height.
        canvas_wh (tuple[int, int]): canvas width and height.

    Returns:
        tuple: ``paste (x1, y1, x2, y2)`` on the canvas and ``crop (x1, y1, x2, y2)`` in the
        sub-image, of equal sizes; a point ``p`` of the sub-image lands at
        ``p + (paste[0] - crop[0], paste[1] - crop[1])``.
    """
    cx, cy = center_xy
    w, h = img_wh
    cw, ch = canvas_wh
    if loc == 'top_left':
        x1, y1, x2, y2 = max(cx - w, 0), max(cy - h, 0), cx, cy
        crop = (w - (x2 - x1), h - (y2 - y1), w, h)
    elif loc == 'top_right':
        x1, y1, x2, y2 = cx, max(cy - h, 0), min(cx + w, cw), cy
        crop = (0, h - (y2 - y1), min(w, x2 - x1), h)
    elif loc == 'bottom_left':
        x1, y1, x2, y2 = max(cx - w, 0), cy, cx, min(ch, cy + h)
        crop = (w - (x2 - x1), 0, w, min(y2 - y1, h))
    elif loc == 'bottom_right':
        x1, y1, x2, y2 = cx, cy, min(cx + w, cw), min(ch, cy + h)
        crop = (0, 0, min(w, x2 - x1), min(y2 - y1, h))
    else:
        raise ValueError(f'mosaic location must be one of {MOSAIC_LOCATIONS}, got {loc!r}')
    return (x1, y1, x2, y2), crop


def mosaic_paste(
    results: dict,
    center_xy: tuple[int, int],
    img_scale: tuple[int, int],
    pad_val: float,
    transform: str,
    bbox_clip_border: bool = True,
    drop_outside_after_clip: bool = False,
) -> None:
    """Replace the image and objects of ``results`` by the mosaic of ``results`` and the three
    results in ``results['mix_results']`` (mmdet / mmyolo Mosaic), in place.

    The canvas is ``(2 * h, 2 * w)`` for ``img_scale = (w, h)``, filled with ``pad_val``, in
    the dtype of ``results['img']``. Each image is resized keeping its ratio to fit (w, h):
    ``r = min(h / h_i, w / w_i)``, size ``(int(w_i * r), int(h_i * r))``; its part nearest
    ``center_xy`` is pasted in its cell (:data:`MOSAIC_LOCATIONS`, in order, ``results``
    first; see :func:`mosaic_paste_coords`). Its boxes (any box type) are scaled by ``r`` and
    shifted with it; its polygon ``gt_masks`` likewise, when ``results`` has masks. With
    ``bbox_clip_border`` the boxes are clipped to the canvas; the objects whose box is not
    ``is_inside`` the canvas are dropped when the boxes are not clipped, or, with
    ``drop_outside_after_clip`` (mmdet's ``CachedMosaic``; mmyolo's ``Mosaic`` keeps them),
    also after clipping.

    Args:
        results (dict): ``img``, ``gt_bboxes``, ``gt_bboxes_labels``, ``gt_ignore_flags``,
            optional ``gt_masks``, and ``mix_results`` (three dicts with the same keys).
        center_xy (tuple[int, int]): where the four images meet on the canvas.
        img_scale (tuple[int, int]): ``(w, h)`` of one cell.
        pad_val (float): canvas fill value.
        transform (str): the calling transform's name, for the messages.
        bbox_clip_border (bool): clip the boxes to the canvas. Defaults to True.
        drop_outside_after_clip (bool): see above. Defaults to False.

    ``results`` then holds ``img``, ``img_shape``, and the four images' ``gt_bboxes``,
    ``gt_bboxes_labels``, ``gt_ignore_flags`` (and ``gt_masks``), concatenated in cell order.

    Raises:
        KeyError: ``results`` has ``gt_masks`` but a mixed image has none.
    """
    w, h = img_scale
    canvas_w, canvas_h = int(w * 2), int(h * 2)
    img0 = results['img']
    canvas = np.full((canvas_h, canvas_w) + tuple(img0.shape[2:]), pad_val, dtype=img0.dtype)
    with_mask = results.get('gt_masks', None) is not None
    boxes, labels, flags, masks = [], [], [], []
    for loc, patch in zip(MOSAIC_LOCATIONS, [results] + list(results['mix_results'])):
        img = patch['img']
        h_i, w_i = img.shape[:2]
        ratio = min(h / h_i, w / w_i)
        img = mmcv.imresize(img, (int(w_i * ratio), int(h_i * ratio)))
        (px1, py1, px2, py2), (cx1, cy1, cx2, cy2) = mosaic_paste_coords(
            loc, center_xy, img.shape[1::-1], (canvas_w, canvas_h)
        )
        canvas[py1:py2, px1:px2] = img[cy1:cy2, cx1:cx2]
        shift_x, shift_y = px1 - cx1, py1 - cy1
        patch_boxes = get_gt_boxes(patch, transform).clone()
        patch_boxes.rescale_([ratio, ratio])
        patch_boxes.translate_([shift_x, shift_y])
        boxes.append(patch_boxes)
        labels.append(patch['gt_bboxes_labels'])
        flags.append(patch['gt_ignore_flags'])
        if with_mask:
            patch_masks = patch.get('gt_masks', None)
            if patch_masks is None:
                raise KeyError(
                    f'{transform}: the first image has gt_masks but a mixed one '
                    f'({patch.get("img_path", "?")}) has none'
                )
            patch_masks = patch_masks.rescale(ratio)  # exactly as the boxes
            patch_masks = patch_masks.translate((canvas_h, canvas_w), shift_x, 'horizontal')
            masks.append(patch_masks.translate((canvas_h, canvas_w), shift_y, 'vertical'))
    results['img'] = canvas
    results['img_shape'] = canvas.shape[:2]
    results['gt_bboxes'] = boxes[0].cat(boxes, 0)
    results['gt_bboxes_labels'] = np.concatenate(labels, 0)
    results['gt_ignore_flags'] = np.concatenate(flags, 0)
    if with_mask:
        results['gt_masks'] = PolygonMasks.cat(masks)
    if bbox_clip_border:
        results['gt_bboxes'].clip_((canvas_h, canvas_w))
    if drop_outside_after_clip or not bbox_clip_border:
        keep_instances(results, results['gt_bboxes'].is_inside((canvas_h, canvas_w)).numpy())


class MosaicMixin:
    """The mosaic step of mmyolo's ``Mosaic`` and mmdet's ``CachedMosaic``: draw where the
    images meet, then :func:`mosaic_paste` ``results`` and its three ``mix_results``.

    The centre is ``(int(U(*center_ratio_range) * w), int(U(*center_ratio_range) * h))`` for
    ``img_scale = (w, h)``, x drawn first. The host class sets ``img_scale``,
    ``center_ratio_range``, ``pad_val`` and ``bbox_clip_border``, and
    :attr:`drop_outside_after_clip`.
    """

    #: mmdet drops the boxes clipped to nothing at the canvas border; mmyolo keeps them
    drop_outside_after_clip = False

    def _get_center(self) -> tuple[int, int]:
        w, h = self.img_scale
        cx = int(random.uniform(*self.center_ratio_range) * w)
        cy = int(random.uniform(*self.center_ratio_range) * h)
        return cx, cy

    def mix_img_transform(self, results: dict) -> dict:
        """Replace ``results`` by the mosaic of it and ``results['mix_results']``."""
        mosaic_paste(
            results,
            self._get_center(),
            self.img_scale,
            self.pad_val,
            type(self).__name__,
            bbox_clip_border=self.bbox_clip_border,
            drop_outside_after_clip=self.drop_outside_after_clip,
        )
        return results


def check_img_scale(transform: str, img_scale) -> None:
    """Raise a TypeError unless ``img_scale`` is a ``(w, h)`` tuple (configs pass tuples)."""
    if not isinstance(img_scale, tuple):
        raise TypeError(f'{transform}: img_scale must be a tuple (w, h), got {img_scale!r}')


class BaseMixImageTransform(BaseTransform):
    """Fetch other images and mix them into ``results`` (mmyolo's base class; mmdet's cached
    transforms are the ``use_cached`` case with :attr:`draw_prob_first` False).

    With probability ``prob`` (else ``results`` is returned unchanged), the other images are
    drawn with :meth:`get_indexes` either from ``results['dataset']`` (set by the dataset in
    training mode; anything with ``__len__`` and ``get_data_info(index)``), each run through
    ``pre_transform`` (up to ``max_refetch`` tries while it returns None), or, with
    ``use_cached``, from a cache of deep copies of earlier results: every call adds the
    current results to it (at most ``max_cached_images``; when full a random entry if
    ``random_pop``, else the oldest, is dropped), and nothing is mixed until it holds
    :attr:`min_cache_to_mix` entries. The fetched results go to ``results['mix_results']``
    for :meth:`mix_img_transform`, and are removed after it. ``results['dataset']`` is kept
    out of the cache and put back on the output.

    Args:
        pre_transform (Sequence[dict], optional): pipeline run on each fetched image.
        prob (float): probability of applying the transform, in [0, 1]. Defaults to 1.0.
        use_cached (bool): take the other images from a cache of earlier results instead
            of the dataset. Defaults to False.
        max_cached_images (int): cache size, >= :attr:`min_cached_images` with
            ``use_cached``. Defaults to 40.
        random_pop (bool): drop a random entry from a full cache (else the oldest).
        max_refetch (int): attempts when ``pre_transform`` returns None. Defaults to 15.
    """

    #: the smallest ``max_cached_images`` accepted with ``use_cached``
    min_cached_images = 1
    #: with ``use_cached``, the cache entries (the current results included) a mix needs;
    #: mmyolo's transforms all wait for more than 4
    min_cache_to_mix = 5
    #: mmyolo draws ``prob`` first and caches only the results it may mix; mmdet's cached
    #: transforms cache every result, then draw
    draw_prob_first = True

    def __init__(
        self,
        pre_transform: Sequence[dict] | None = None,
        prob: float = 1.0,
        use_cached: bool = False,
        max_cached_images: int = 40,
        random_pop: bool = True,
        max_refetch: int = 15,
    ) -> None:
        name = type(self).__name__
        if not 0 <= prob <= 1:
            raise ValueError(f'{name}: prob must be in [0, 1], got {prob}')
        if use_cached and max_cached_images < self.min_cached_images:
            raise ValueError(
                f'{name}: max_cached_images must be >= {self.min_cached_images}, '
                f'got {max_cached_images}'
            )
        self.max_refetch = max_refetch
        self.prob = prob
        self.use_cached = use_cached
        self.max_cached_images = max_cached_images
        self.random_pop = random_pop
        self.results_cache: list = []
        self.pre_transform = (
            None
            if pre_transform is None
            else Compose([TRANSFORMS.build(t) if isinstance(t, dict) else t for t in pre_transform])
        )

    # Not abstract methods: ABCMeta would read the subclasses' ``cache_randomness``
    # descriptors on the class, which mmcv does not allow.
    def get_indexes(self, dataset) -> list | int:
        """Indexes of the other images in ``dataset`` (a dataset or the cache)."""
        raise NotImplementedError(f'{type(self).__name__} must implement get_indexes')

    def mix_img_transform(self, results: dict) -> dict:
        """Mix ``results['mix_results']`` into ``results``."""
        raise NotImplementedError(f'{type(self).__name__} must implement mix_img_transform')

    def _update_label_text(self, results: dict) -> dict:
        """Hook for the multi-modal variants; plain transforms leave texts alone."""
        return results

    def push(self, results: dict) -> None:
        """Cache a deep copy of ``results``, dropping an entry when over the limit."""
        self.results_cache.append(copy.deepcopy(results))
        if len(self.results_cache) > self.max_cached_images:
            index = random.randint(0, len(self.results_cache) - 1) if self.random_pop else 0
            self.results_cache.pop(index)

    def _fetch(self, dataset) -> list:
        for _ in range(self.max_refetch):
            source = self.results_cache if self.use_cached else dataset
            indexes = self.get_indexes(source)
            if not isinstance(indexes, collections.abc.Sequence):
                indexes = [indexes]
            if self.use_cached:
                mix_results = [copy.deepcopy(self.results_cache[i]) for i in indexes]
            else:
                mix_results = [copy.deepcopy(dataset.get_data_info(i)) for i in indexes]
            if self.pre_transform is not None:
                for i, data in enumerate(mix_results):
                    data['dataset'] = dataset
                    out = self.pre_transform(data)
                    if out is not None:
                        out.pop('dataset', None)
                    mix_results[i] = out
            if None not in mix_results:
                return mix_results
        raise RuntimeError(
            f'{type(self).__name__}: the pre_transform pipeline returned None '
            f'{self.max_refetch} times; check the dataset and its pipeline'
        )

    def transform(self, results: dict) -> dict:
        if self.draw_prob_first and random.uniform(0, 1) > self.prob:
            return results
        had_dataset = 'dataset' in results
        dataset = results.pop('dataset', None)

        def output(results: dict) -> dict:
            if had_dataset:
                results['dataset'] = dataset
            return results

        if self.use_cached:
            self.push(results)
            if len(self.results_cache) < self.min_cache_to_mix:
                return output(results)
        elif dataset is None:
            raise KeyError(
                f"{type(self).__name__} needs results['dataset'] (set by the dataset in "
                'training mode, test_mode=False) to fetch other images; '
                f'image: {results.get("img_path", "?")}'
            )
        if not self.draw_prob_first and random.uniform(0, 1) > self.prob:
            return output(results)
        results['mix_results'] = self._fetch(dataset)
        results = self._update_label_text(results)
        results = self.mix_img_transform(results)
        results.pop('mix_results', None)
        return output(results)
