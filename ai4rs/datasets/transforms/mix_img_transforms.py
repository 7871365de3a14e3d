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

from collections.abc import Sequence

import numpy as np
from numpy import random

from ai4rs.registry import TRANSFORMS
from ai4rs.structures.mask import PolygonMasks

from .instances import get_gt_boxes
from .mixing import BaseMixImageTransform, MosaicMixin, check_img_scale

__all__ = [
    'BaseMixImageTransform',
    'MultiModalMixin',
    'Mosaic',
    'YOLOv5MixUp',
    'MultiModalMosaic',
    'YOLOv5MultiModalMixUp',
]


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
class Mosaic(MosaicMixin, BaseMixImageTransform):
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
            :class:`BaseMixImageTransform` (``max_cached_images`` >= 4).
    """

    min_cached_images = 4
    drop_outside_after_clip = False  # mmyolo keeps the boxes clipped to nothing

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
        check_img_scale(type(self).__name__, img_scale)
        super().__init__(
            pre_transform, prob, use_cached, max_cached_images, random_pop, max_refetch
        )
        self.img_scale = img_scale
        self.center_ratio_range = center_ratio_range
        self.bbox_clip_border = bbox_clip_border
        self.pad_val = pad_val

    def get_indexes(self, dataset) -> list:
        return [random.randint(0, len(dataset)) for _ in range(3)]

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
            max_refetch: see :class:`BaseMixImageTransform` (``max_cached_images`` >= 2).
    """

    min_cached_images = 2

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
        super().__init__(
            pre_transform, prob, use_cached, max_cached_images, random_pop, max_refetch
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
