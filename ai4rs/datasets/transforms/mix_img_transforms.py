"""Multi-image transforms of mmyolo 0.6.0 (``Mosaic``, ``YOLOv5MixUp``) and YOLO-World
(``MultiModalMosaic``, ``YOLOv5MultiModalMixUp``).

The other images come from ``results['dataset']`` (set by the dataset in training mode;
anything with ``__len__`` and ``get_data_info(index)``), each run through ``pre_transform``,
or from a cache of earlier results with ``use_cached``. The multi-modal variants first merge
the class texts of all images (``results['texts']``, a list of per-class lists of strings)
and remap every image's labels into the merged list, so a label keeps naming its text.

Results keys as in :mod:`.yolo_transforms`; boxes are ``HorizontalBoxes``.
"""

from __future__ import annotations

import collections.abc
import copy
from abc import ABCMeta, abstractmethod
from collections.abc import Sequence

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.dataset.base_dataset import Compose
from numpy import random

from ai4rs.registry import TRANSFORMS
from ai4rs.structures.mask import PolygonMasks

from .transforms import get_gt_boxes


def mosaic_combine(
    loc: str, center_xy: tuple[int, int], img_wh: tuple[int, int], out_wh: tuple[int, int]
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Where one image of size ``img_wh`` goes in a mosaic canvas of size ``out_wh`` whose
    four images meet at ``center_xy`` (mmyolo's ``_mosaic_combine``).

    Returns:
        (paste, crop): ``(x1, y1, x2, y2)`` in the canvas and in the image.
    """
    cx, cy = center_xy
    w, h = img_wh
    out_w, out_h = out_wh
    if loc == 'top_left':
        x1, y1, x2, y2 = max(cx - w, 0), max(cy - h, 0), cx, cy
        crop = (w - (x2 - x1), h - (y2 - y1), w, h)
    elif loc == 'top_right':
        x1, y1, x2, y2 = cx, max(cy - h, 0), min(cx + w, out_w), cy
        crop = (0, h - (y2 - y1), min(w, x2 - x1), h)
    elif loc == 'bottom_left':
        x1, y1, x2, y2 = max(cx - w, 0), cy, cx, min(out_h, cy + h)
        crop = (w - (x2 - x1), 0, w, min(y2 - y1, h))
    elif loc == 'bottom_right':
        x1, y1, x2, y2 = cx, cy, min(cx + w, out_w), min(out_h, cy + h)
        crop = (0, 0, min(w, x2 - x1), min(y2 - y1, h))
    else:
        raise ValueError(f'unknown mosaic location {loc!r}')
    return (x1, y1, x2, y2), crop


class BaseMixImageTransform(BaseTransform, metaclass=ABCMeta):
    """Fetch other images and mix them into ``results`` (mmyolo's base class).

    Args:
        pre_transform (Sequence[dict], optional): pipeline run on each fetched image.
        prob (float): probability of applying the transform. Defaults to 1.0.
        use_cached (bool): take the other images from a cache of earlier results instead
            of the dataset. Defaults to False.
        max_cached_images (int): cache size. Defaults to 40.
        random_pop (bool): drop a random entry from a full cache (else the oldest).
        max_refetch (int): attempts when ``pre_transform`` returns None. Defaults to 15.
    """

    def __init__(
        self,
        pre_transform: Sequence[dict] | None = None,
        prob: float = 1.0,
        use_cached: bool = False,
        max_cached_images: int = 40,
        random_pop: bool = True,
        max_refetch: int = 15,
    ) -> None:
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

    @abstractmethod
    def get_indexes(self, dataset) -> list | int:
        """Indexes of the other images in ``dataset`` (a dataset or the cache)."""

    @abstractmethod
    def mix_img_transform(self, results: dict) -> dict:
        """Mix ``results['mix_results']`` into ``results``."""

    def _update_label_text(self, results: dict) -> dict:
        """Hook for the multi-modal variants; plain transforms leave texts alone."""
        return results

    def _fetch(self, results: dict, dataset) -> list:
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
        if random.uniform(0, 1) > self.prob:
            return results
        if self.use_cached:
            dataset = results.pop('dataset', None)
            self.results_cache.append(copy.deepcopy(results))
            if len(self.results_cache) > self.max_cached_images:
                index = random.randint(0, len(self.results_cache) - 1) if self.random_pop else 0
                self.results_cache.pop(index)
            if len(self.results_cache) <= 4:
                results['dataset'] = dataset
                return results
        else:
            if results.get('dataset', None) is None:
                raise KeyError(
                    f"{type(self).__name__} needs results['dataset'] (set by the dataset in "
                    'training mode, test_mode=False) to fetch other images; '
                    f'image: {results.get("img_path", "?")}'
                )
            dataset = results.pop('dataset')
        results['mix_results'] = self._fetch(results, dataset)
        results = self._update_label_text(results)
        results = self.mix_img_transform(results)
        results.pop('mix_results', None)
        results['dataset'] = dataset
        return results


class MultiModalMixin:
    """Merge the class texts of mixed images and remap labels (YOLO-World).

    The merged vocabulary lists each distinct class text once, in order of first
    appearance over ``[results] + mix_results``; every image's ``gt_bboxes_labels`` is
    mapped to the index of its own text in it, and every image gets the merged ``texts``.
    """

    def _update_label_text(self, results: dict) -> dict:
        if 'texts' not in results:
            return results
        images = [results] + results['mix_results']
        for i, res in enumerate(images):
            if 'texts' not in res:
                raise KeyError(
                    f'{type(self).__name__}: image {i} of the mix has no "texts"; '
                    'wrap the dataset in MultiModalDataset'
                )
        merged = list(dict.fromkeys(tuple(t) for res in images for t in res['texts']))
        text2id = {text: i for i, text in enumerate(merged)}
        for res in images:
            labels = np.asarray(res['gt_bboxes_labels'], dtype=np.int64)
            res['gt_bboxes_labels'] = np.asarray(
                [text2id[tuple(res['texts'][int(label)])] for label in labels], dtype=np.int64
            ).reshape(-1)
            res['texts'] = [list(t) for t in merged]
        return results


@TRANSFORMS.register_module()
class Mosaic(BaseMixImageTransform):
    """Four-image mosaic (mmyolo / YOLOv5).

    The canvas is ``(2 * h, 2 * w)`` for ``img_scale = (w, h)``, filled with ``pad_val``;
    the images meet at ``(int(uniform(*center_ratio_range) * w), int(... * h))``. Each image
    is resized keeping its ratio to fit (w, h) (``int(w_i * r), int(h_i * r)``), and its
    part nearest the centre is pasted in its quadrant (results, then the three fetched
    images: top-left, top-right, bottom-left, bottom-right). Boxes are scaled by ``r`` and
    shifted by (paste - crop) offsets; polygon masks likewise (clipped to the canvas). With
    ``bbox_clip_border`` boxes are clipped to the canvas, otherwise boxes outside it are
    dropped.

    Args:
        img_scale (tuple[int, int]): (w, h). Defaults to (640, 640).
        center_ratio_range (tuple[float, float]): Defaults to (0.5, 1.5).
        bbox_clip_border (bool): Defaults to True.
        pad_val (float): Defaults to 114.0.
        pre_transform, prob, use_cached, max_cached_images, random_pop, max_refetch: see
            :class:`BaseMixImageTransform`.
    """

    def __init__(
        self,
        img_scale: tuple[int, int] = (640, 640),
        center_ratio_range: tuple[float, float] = (0.5, 1.5),
        bbox_clip_border: bool = True,
        pad_val: float = 114.0,
        pre_transform: Sequence[dict] | None = None,
        prob: float = 1.0,
        use_cached: bool = False,
        max_cached_images: int = 40,
        random_pop: bool = True,
        max_refetch: int = 15,
    ) -> None:
        if not isinstance(img_scale, tuple):
            raise TypeError(
                f'{type(self).__name__}: img_scale must be a (w, h) tuple, got {img_scale!r}'
            )
        if not 0 <= prob <= 1.0:
            raise ValueError(f'The probability should be in range [0, 1], got {prob}')
        if use_cached and max_cached_images < 4:
            raise ValueError(f'The length of cache must be >= 4, got {max_cached_images}')
        super().__init__(
            pre_transform=pre_transform,
            prob=prob,
            use_cached=use_cached,
            max_cached_images=max_cached_images,
            random_pop=random_pop,
            max_refetch=max_refetch,
        )
        self.img_scale = img_scale
        self.center_ratio_range = center_ratio_range
        self.bbox_clip_border = bbox_clip_border
        self.pad_val = pad_val

    def get_indexes(self, dataset) -> list:
        return [random.randint(0, len(dataset)) for _ in range(3)]

    def _get_center(self) -> tuple[int, int]:
        w, h = self.img_scale
        cx = int(random.uniform(*self.center_ratio_range) * w)
        cy = int(random.uniform(*self.center_ratio_range) * h)
        return cx, cy

    def mix_img_transform(self, results: dict) -> dict:
        w, h = self.img_scale
        out_w, out_h = int(w * 2), int(h * 2)
        img0 = results['img']
        canvas_shape = (out_h, out_w, img0.shape[2]) if img0.ndim == 3 else (out_h, out_w)
        canvas = np.full(canvas_shape, self.pad_val, dtype=img0.dtype)
        center = self._get_center()
        with_mask = results.get('gt_masks', None) is not None
        boxes, labels, flags, masks = [], [], [], []
        patches = [results] + results['mix_results']
        for loc, patch in zip(('top_left', 'top_right', 'bottom_left', 'bottom_right'), patches):
            img = patch['img']
            hi, wi = img.shape[:2]
            ratio = min(h / hi, w / wi)
            img = mmcv.imresize(img, (int(wi * ratio), int(hi * ratio)))
            (x1p, y1p, x2p, y2p), (x1c, y1c, x2c, y2c) = mosaic_combine(
                loc, center, img.shape[:2][::-1], (out_w, out_h)
            )
            canvas[y1p:y2p, x1p:x2p] = img[y1c:y2c, x1c:x2c]
            padw, padh = x1p - x1c, y1p - y1c
            b = get_gt_boxes(patch, type(self).__name__)
            b.rescale_([ratio, ratio])
            b.translate_([padw, padh])
            boxes.append(b)
            labels.append(patch['gt_bboxes_labels'])
            flags.append(patch['gt_ignore_flags'])
            if with_mask:
                m = patch.get('gt_masks', None)
                if m is None:
                    raise KeyError(
                        f'{type(self).__name__}: the first image has gt_masks but '
                        f'a mixed one ({patch.get("img_path", "?")}) has none'
                    )
                m = m.rescale(ratio)  # exactly as the boxes
                m = m.translate((out_h, out_w), padw, 'horizontal')
                m = m.translate((out_h, out_w), padh, 'vertical')
                masks.append(m)
        boxes = boxes[0].cat(boxes, 0)
        labels = np.concatenate(labels, 0)
        flags = np.concatenate(flags, 0)
        mask_cat = PolygonMasks.cat(masks) if with_mask else None
        if self.bbox_clip_border:
            boxes.clip_([out_h, out_w])
        else:
            inside = boxes.is_inside([out_h, out_w]).numpy()
            boxes, labels, flags = boxes[inside], labels[inside], flags[inside]
            if with_mask:
                mask_cat = mask_cat[inside]
        results['img'] = canvas
        results['img_shape'] = canvas.shape[:2]
        results['gt_bboxes'] = boxes
        results['gt_bboxes_labels'] = labels
        results['gt_ignore_flags'] = flags
        if with_mask:
            results['gt_masks'] = mask_cat
        return results

    def __repr__(self) -> str:
        return (
            f'{self.__class__.__name__}(img_scale={self.img_scale}, '
            f'center_ratio_range={self.center_ratio_range}, pad_val={self.pad_val}, '
            f'prob={self.prob})'
        )


@TRANSFORMS.register_module()
class YOLOv5MixUp(BaseMixImageTransform):
    """YOLOv5 MixUp (mmyolo): blend with one other image of the same shape.

    ``img = img * r + other * (1 - r)`` with ``r ~ Beta(alpha, beta)`` (cast to uint8);
    the other image's boxes, labels, flags (and masks) are appended. The other image usually
    comes through the same mosaic + affine ``pre_transform``, so the shapes match.

    Args:
        alpha (float): Defaults to 32.0.
        beta (float): Defaults to 32.0.
        pre_transform, prob, use_cached, max_cached_images (default 20), random_pop,
            max_refetch: see :class:`BaseMixImageTransform`.
    """

    def __init__(
        self,
        alpha: float = 32.0,
        beta: float = 32.0,
        pre_transform: Sequence[dict] | None = None,
        prob: float = 1.0,
        use_cached: bool = False,
        max_cached_images: int = 20,
        random_pop: bool = True,
        max_refetch: int = 15,
    ) -> None:
        if use_cached and max_cached_images < 2:
            raise ValueError(f'The length of cache must be >= 2, got {max_cached_images}')
        super().__init__(
            pre_transform=pre_transform,
            prob=prob,
            use_cached=use_cached,
            max_cached_images=max_cached_images,
            random_pop=random_pop,
            max_refetch=max_refetch,
        )
        self.alpha = alpha
        self.beta = beta

    def get_indexes(self, dataset) -> int:
        return random.randint(0, len(dataset))

    def mix_img_transform(self, results: dict) -> dict:
        other = results['mix_results'][0]
        ori_img, other_img = results['img'], other['img']
        if ori_img.shape != other_img.shape:
            raise ValueError(
                f'{type(self).__name__}: images of shapes {ori_img.shape} and '
                f'{other_img.shape} cannot be mixed; give pre_transform the same '
                'mosaic/affine steps as the main pipeline'
            )
        ratio = np.random.beta(self.alpha, self.beta)
        mixed = ori_img * ratio + other_img * (1 - ratio)
        boxes = get_gt_boxes(results, type(self).__name__)
        other_boxes = get_gt_boxes(other, type(self).__name__)
        results['gt_bboxes'] = boxes.cat([boxes, other_boxes], dim=0)
        results['gt_bboxes_labels'] = np.concatenate(
            (results['gt_bboxes_labels'], other['gt_bboxes_labels']), axis=0
        )
        results['gt_ignore_flags'] = np.concatenate(
            (results['gt_ignore_flags'], other['gt_ignore_flags']), axis=0
        )
        if results.get('gt_masks', None) is not None:
            if other.get('gt_masks', None) is None:
                raise KeyError(f'{type(self).__name__}: the mixed image has no gt_masks')
            results['gt_masks'] = PolygonMasks.cat([results['gt_masks'], other['gt_masks']])
        results['img'] = mixed.astype(np.uint8)
        results['img_shape'] = mixed.shape[:2]
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(alpha={self.alpha}, beta={self.beta}, prob={self.prob})'


@TRANSFORMS.register_module()
class MultiModalMosaic(MultiModalMixin, Mosaic):
    """:class:`Mosaic` that merges the images' class texts and remaps labels (YOLO-World)."""


@TRANSFORMS.register_module()
class YOLOv5MultiModalMixUp(MultiModalMixin, YOLOv5MixUp):
    """:class:`YOLOv5MixUp` that merges the images' class texts and remaps labels
    (YOLO-World)."""
