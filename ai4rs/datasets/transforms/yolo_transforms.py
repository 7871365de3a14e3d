"""The YOLOv5/v8 data transforms of mmyolo 0.6.0 (same registry names, arguments, results keys).

Used by the YOLO-World recipes: ``YOLOv5KeepRatioResize`` + ``LetterResize`` (test, and
training stage 2), ``YOLOv5RandomAffine`` with polygon-mask refinement, ``YOLOv5CopyPaste``,
``YOLOv5HSVRandomAug``, ``RemoveDataElement`` and mmdet's ``Albu`` wrapper.

Results keys: ``img`` (H, W, 3) uint8 BGR, ``img_shape`` (h, w), ``gt_bboxes``
(``HorizontalBoxes``, (N, 4) [x1, y1, x2, y2] pixels), ``gt_bboxes_labels`` np.int64 (N,),
``gt_ignore_flags`` np.bool_ (N,), ``gt_masks`` (``PolygonMasks``, optional),
``scale_factor`` (w_scale, h_scale) from the original image, ``pad_param`` np.float32
(top, bottom, left, right) padding in pixels.
"""

from __future__ import annotations

import copy
import inspect
import math
from collections.abc import Sequence

import cv2
import mmcv
import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness
from numpy import random

from ai4rs.registry import TRANSFORMS
from ai4rs.structures.bbox import HorizontalBoxes
from ai4rs.structures.mask import PolygonMasks, boxes_of_points_inside

from .instances import get_gt_boxes, keep_instances
from .transforms import Resize


def _pad_value(value, img: np.ndarray):
    """A pad value for ``mmcv.impad``: numbers become one value per channel (a bare number
    would fill only the first channel of a colour image in OpenCV)."""
    if isinstance(value, (int, float)) and img.ndim == 3:
        return tuple(value for _ in range(img.shape[2]))
    return value


# ------------------------------------------------------------------------------ resize
@TRANSFORMS.register_module()
class YOLOv5KeepRatioResize(Resize):
    """Resize keeping the aspect ratio so the image fits ``scale`` (mmyolo).

    The ratio is ``min(max(scale) / long_side, min(scale) / short_side)``; the image is
    resized to ``(int(w * ratio), int(h * ratio))`` with 'area' interpolation when shrinking
    and 'bilinear' when enlarging (no resize at ratio 1). ``scale_factor`` is the actual
    ``(new_w / w, new_h / h)``; boxes and polygon masks are scaled by it.

    Args:
        scale (int | tuple[int, int]): target (w, h).
        keep_ratio (bool): must be True.
        **kwargs: ``clip_object_border``, ``backend`` as :class:`Resize`.
    """

    def __init__(self, scale: int | tuple[int, int], keep_ratio: bool = True, **kwargs) -> None:
        if keep_ratio is not True:
            raise ValueError('YOLOv5KeepRatioResize: keep_ratio must be True')
        super().__init__(scale=scale, keep_ratio=True, **kwargs)

    @staticmethod
    def _get_rescale_ratio(old_size: tuple[int, int], scale: float | tuple[int, int]) -> float:
        """The keep-ratio factor of an image of size ``old_size`` for ``scale``."""
        a, b = old_size
        if isinstance(scale, (float, int)):
            if scale <= 0:
                raise ValueError(f'Invalid scale {scale}, must be positive.')
            return scale
        if isinstance(scale, tuple):
            return min(max(scale) / max(a, b), min(scale) / min(a, b))
        raise TypeError(f'Scale must be a number or tuple of int, but got {type(scale)}')

    def _resize_img(self, results: dict) -> None:
        img = results.get('img', None)
        if img is None:
            return
        h, w = img.shape[:2]
        ratio = self._get_rescale_ratio((h, w), self.scale)
        if ratio != 1:
            img = mmcv.imresize(
                img,
                (int(w * ratio), int(h * ratio)),
                interpolation='area' if ratio < 1 else 'bilinear',
                backend=self.backend,
            )
        new_h, new_w = img.shape[:2]
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['scale_factor'] = (new_w / w, new_h / h)

    def transform(self, results: dict) -> dict:
        results = super().transform(results)
        if results.get('gt_masks', None) is not None:
            results['gt_masks'] = results['gt_masks'].resize(results['img_shape'][:2])
        return results


@TRANSFORMS.register_module()
class LetterResize(Resize):
    """Resize keeping the ratio, then pad to ``scale`` centred ("letterbox", mmyolo).

    With ``ratio = min(H / h, W / w)`` (``min(ratio, 1)`` without ``allow_scale_up``) the
    image becomes ``(round(h * ratio), round(w * ratio))`` and is padded to (H, W) with
    ``top = round(pad_h // 2 - 0.1)``, ``left`` likewise, the rest at the bottom / right.
    ``(H, W)`` is ``results['batch_shape']`` if present, else ``scale[::-1]``.

    Added / updated keys: ``scale_factor`` (w, h) multiplied into an earlier one (so it maps
    the original image to this one), ``pad_param`` np.float32 (top, bottom, left, right),
    added to an earlier one scaled by this ratio; boxes are scaled, shifted by
    (left, top) and clipped; polygon masks likewise. A box maps back to the original image
    with ``(box - [left, top, left, top]) / [sx, sy, sx, sy]``.

    Args:
        scale (int | tuple[int, int]): (W, H).
        pad_val (dict | number): ``dict(img=...)`` padding value. Defaults to
            ``dict(img=0, mask=0, seg=255)``.
        use_mini_pad (bool): pad only to a multiple of 32. Defaults to False.
        stretch_only (bool): stretch to (H, W) without padding. Defaults to False.
        allow_scale_up (bool): allow ratio > 1. Defaults to True.
        half_pad_param (bool): record ``pad_param`` as halves of the total padding (floats)
            instead of the integer split. Defaults to False.
        **kwargs: ``clip_object_border``, ``backend``, ``interpolation`` as :class:`Resize`.
    """

    def __init__(
        self,
        scale: int | tuple[int, int],
        pad_val: dict | int | float = dict(img=0, mask=0, seg=255),  # noqa: B006
        use_mini_pad: bool = False,
        stretch_only: bool = False,
        allow_scale_up: bool = True,
        half_pad_param: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(scale=scale, keep_ratio=True, **kwargs)
        if isinstance(pad_val, (int, float)):
            pad_val = dict(img=pad_val, seg=255)
        if not isinstance(pad_val, dict):
            raise TypeError(f'LetterResize: pad_val must be a dict, got {type(pad_val)}')
        self.pad_val = pad_val
        self.use_mini_pad = use_mini_pad
        self.stretch_only = stretch_only
        self.allow_scale_up = allow_scale_up
        self.half_pad_param = half_pad_param

    def _letterbox(self, results: dict) -> None:
        image = results['img']
        target_hw = (
            tuple(results['batch_shape']) if 'batch_shape' in results else tuple(self.scale[::-1])
        )
        h, w = image.shape[:2]
        ratio = min(target_hw[0] / h, target_hw[1] / w)
        if not self.allow_scale_up:
            ratio = min(ratio, 1.0)
        ratio_hw = [ratio, ratio]
        new_hw = (int(round(h * ratio)), int(round(w * ratio)))
        pad_h, pad_w = target_hw[0] - new_hw[0], target_hw[1] - new_hw[1]
        if self.use_mini_pad:
            pad_w, pad_h = np.mod(pad_w, 32), np.mod(pad_h, 32)
        elif self.stretch_only:
            pad_h, pad_w = 0.0, 0.0
            new_hw = (target_hw[0], target_hw[1])
            ratio_hw = [target_hw[0] / h, target_hw[1] / w]
        if (h, w) != new_hw:
            image = mmcv.imresize(
                image,
                (new_hw[1], new_hw[0]),
                interpolation=self.interpolation,
                backend=self.backend,
            )
        scale_factor = (new_hw[1] / w, new_hw[0] / h)
        top, left = int(round(pad_h // 2 - 0.1)), int(round(pad_w // 2 - 0.1))
        bottom, right = pad_h - top, pad_w - left
        if top or bottom or left or right:
            image = mmcv.impad(
                image,
                padding=(left, top, right, bottom),
                pad_val=_pad_value(self.pad_val.get('img', 0), image),
                padding_mode='constant',
            )
        results['img'] = image
        results['img_shape'] = image.shape[:2]
        if self.half_pad_param:
            pad_param = np.array([pad_h / 2, pad_h / 2, pad_w / 2, pad_w / 2], dtype=np.float32)
        else:
            pad_param = np.array([top, bottom, left, right], dtype=np.float32)

        boxes = get_gt_boxes(results, 'LetterResize')
        if boxes is not None:
            boxes.rescale_(scale_factor)
            boxes.translate_((pad_param[2], pad_param[0]))
            if self.clip_object_border:
                boxes.clip_(results['img_shape'])
        if results.get('gt_masks', None) is not None:
            masks = results['gt_masks']
            masks = masks.resize(
                (
                    int(round(masks.height * scale_factor[1])),
                    int(round(masks.width * scale_factor[0])),
                )
            )
            if int(pad_param[2]) != 0:
                masks = masks.translate(results['img_shape'], int(pad_param[2]), 'horizontal')
            if int(pad_param[0]) != 0:
                masks = masks.translate(results['img_shape'], int(pad_param[0]), 'vertical')
            results['gt_masks'] = masks

        if 'scale_factor' in results:
            old = results['scale_factor']
            scale_factor = (scale_factor[0] * old[0], scale_factor[1] * old[1])
        results['scale_factor'] = scale_factor
        if 'pad_param' in results:
            pad_param = pad_param + results['pad_param'] * np.repeat(ratio_hw, 2)
        results['pad_param'] = pad_param.astype(np.float32)

    def transform(self, results: dict) -> dict:
        if results.get('img', None) is None:
            return results
        results['scale'] = self.scale
        self._letterbox(results)
        return results

    def __repr__(self) -> str:
        return (
            f'{self.__class__.__name__}(scale={self.scale}, pad_val={self.pad_val}, '
            f'use_mini_pad={self.use_mini_pad}, stretch_only={self.stretch_only}, '
            f'allow_scale_up={self.allow_scale_up}, half_pad_param={self.half_pad_param})'
        )


# ---------------------------------------------------------------------------- colour
@TRANSFORMS.register_module()
class YOLOv5HSVRandomAug(BaseTransform):
    """Random HSV gains (mmyolo / YOLOv5): each of hue, saturation, value is multiplied by
    ``1 + uniform(-1, 1) * delta`` through lookup tables on OpenCV's uint8 HSV
    (hue modulo 180, saturation and value clipped to [0, 255]).

    Args:
        hue_delta (float): Defaults to 0.015.
        saturation_delta (float): Defaults to 0.7.
        value_delta (float): Defaults to 0.4.
    """

    def __init__(
        self, hue_delta: float = 0.015, saturation_delta: float = 0.7, value_delta: float = 0.4
    ) -> None:
        self.hue_delta = hue_delta
        self.saturation_delta = saturation_delta
        self.value_delta = value_delta

    def transform(self, results: dict) -> dict:
        gains = (
            random.uniform(-1, 1, 3) * [self.hue_delta, self.saturation_delta, self.value_delta] + 1
        )
        results['img'] = apply_hsv_gains(results['img'], gains)
        return results

    def __repr__(self) -> str:
        return (
            f'{self.__class__.__name__}(hue_delta={self.hue_delta}, '
            f'saturation_delta={self.saturation_delta}, value_delta={self.value_delta})'
        )


def apply_hsv_gains(img: np.ndarray, gains: Sequence[float]) -> np.ndarray:
    """Multiply hue, saturation and value of a (H, W, 3) uint8 BGR image by ``gains``."""
    hue, sat, val = cv2.split(cv2.cvtColor(img, cv2.COLOR_BGR2HSV))
    table = np.arange(0, 256, dtype=np.float64)
    lut_hue = ((table * gains[0]) % 180).astype(np.uint8)
    lut_sat = np.clip(table * gains[1], 0, 255).astype(np.uint8)
    lut_val = np.clip(table * gains[2], 0, 255).astype(np.uint8)
    hsv = cv2.merge((cv2.LUT(hue, lut_hue), cv2.LUT(sat, lut_sat), cv2.LUT(val, lut_val)))
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)


# ---------------------------------------------------------------------------- affine
def affine_components(
    rotate_degree: float = 0.0,
    scale: float = 1.0,
    shear_x: float = 0.0,
    shear_y: float = 0.0,
    translate: tuple[float, float] = (0.0, 0.0),
) -> np.ndarray:
    """The (3, 3) float32 matrix ``T @ Sh @ R @ S`` of YOLOv5's random perspective:
    scale, rotation (degrees, counter-clockwise in maths axes), shear (degrees, x then y)
    and translation, in that order."""
    r = math.radians(rotate_degree)
    rot = np.array(
        [[np.cos(r), -np.sin(r), 0.0], [np.sin(r), np.cos(r), 0.0], [0.0, 0.0, 1.0]],
        dtype=np.float32,
    )
    scl = np.array([[scale, 0.0, 0.0], [0.0, scale, 0.0], [0.0, 0.0, 1.0]], dtype=np.float32)
    shear = np.array(
        [
            [1, np.tan(math.radians(shear_x)), 0.0],
            [np.tan(math.radians(shear_y)), 1, 0.0],
            [0.0, 0.0, 1.0],
        ],
        dtype=np.float32,
    )
    trans = np.array(
        [[1, 0.0, translate[0]], [0.0, 1, translate[1]], [0.0, 0.0, 1.0]], dtype=np.float32
    )
    return trans @ shear @ rot @ scl


@TRANSFORMS.register_module()
class YOLOv5RandomAffine(BaseTransform):
    """YOLOv5/v8 random affine (mmyolo), with polygon-mask box refinement.

    The output is ``(h + 2 * border[1], w + 2 * border[0])``; the image is centred at the
    origin, scaled, rotated, sheared, then translated to ``uniform(0.5 +- max_translate_ratio)``
    of the output size, and warped with ``border_val``.

    Boxes: without ``gt_masks`` the box corners are warped and enclosed, then clipped.
    With ``gt_masks`` (mmyolo applies this whenever masks are present; ``use_mask_refine``
    is kept for config compatibility, as mmyolo) each polygon is closed and resampled to
    ``resample_num`` points, warped, and the box is the tight box of the warped points that
    fall inside the output image; boxes are then clipped to ``(H - 1e-3, W - 1e-3)`` and the
    polygons to the image.

    An object is kept when its new box has width and height > ``min_bbox_size``, area /
    (original area * scale^2) > ``min_area_ratio`` and aspect ratio < ``max_aspect_ratio``.

    Args:
        max_rotate_degree (float): Defaults to 10.
        max_translate_ratio (float): Defaults to 0.1.
        scaling_ratio_range (tuple[float, float]): Defaults to (0.5, 1.5).
        max_shear_degree (float): Defaults to 2.
        border (tuple[int, int]): (w, h) border added on each side (negative crops; the
            mosaic recipes use ``(-img_scale[0] // 2, -img_scale[1] // 2)``).
        border_val (tuple[int, int, int]): Defaults to (114, 114, 114).
        bbox_clip_border (bool): Defaults to True.
        min_bbox_size (float): Defaults to 2.
        min_area_ratio (float): Defaults to 0.1.
        use_mask_refine (bool): Defaults to False (see above).
        max_aspect_ratio (float): Defaults to 20.
        resample_num (int): Defaults to 1000.
    """

    def __init__(
        self,
        max_rotate_degree: float = 10.0,
        max_translate_ratio: float = 0.1,
        scaling_ratio_range: tuple[float, float] = (0.5, 1.5),
        max_shear_degree: float = 2.0,
        border: tuple[int, int] = (0, 0),
        border_val: tuple[int, int, int] = (114, 114, 114),
        bbox_clip_border: bool = True,
        min_bbox_size: int = 2,
        min_area_ratio: float = 0.1,
        use_mask_refine: bool = False,
        max_aspect_ratio: float = 20.0,
        resample_num: int = 1000,
    ) -> None:
        if not 0 <= max_translate_ratio <= 1:
            raise ValueError(f'max_translate_ratio must be in [0, 1], got {max_translate_ratio}')
        if not 0 < scaling_ratio_range[0] <= scaling_ratio_range[1]:
            raise ValueError(f'invalid scaling_ratio_range {scaling_ratio_range}')
        self.max_rotate_degree = max_rotate_degree
        self.max_translate_ratio = max_translate_ratio
        self.scaling_ratio_range = scaling_ratio_range
        self.max_shear_degree = max_shear_degree
        self.border = border
        self.border_val = border_val
        self.bbox_clip_border = bbox_clip_border
        self.min_bbox_size = min_bbox_size
        self.min_area_ratio = min_area_ratio
        self.use_mask_refine = use_mask_refine
        self.max_aspect_ratio = max_aspect_ratio
        self.resample_num = resample_num

    @cache_randomness
    def _get_random_homography_matrix(self, height: int, width: int) -> tuple[np.ndarray, float]:
        """A random (3, 3) warp for an output of (height, width), and its scale."""
        rotate = random.uniform(-self.max_rotate_degree, self.max_rotate_degree)
        scale = random.uniform(self.scaling_ratio_range[0], self.scaling_ratio_range[1])
        shear_x = random.uniform(-self.max_shear_degree, self.max_shear_degree)
        shear_y = random.uniform(-self.max_shear_degree, self.max_shear_degree)
        tx = random.uniform(0.5 - self.max_translate_ratio, 0.5 + self.max_translate_ratio) * width
        ty = random.uniform(0.5 - self.max_translate_ratio, 0.5 + self.max_translate_ratio) * height
        return affine_components(rotate, scale, shear_x, shear_y, (tx, ty)), scale

    def filter_gt_bboxes(
        self, origin_bboxes: HorizontalBoxes, wrapped_bboxes: HorizontalBoxes
    ) -> torch.Tensor:
        """(N,) bool: which warped boxes are kept (size, area ratio, aspect ratio)."""
        ow, oh = origin_bboxes.widths, origin_bboxes.heights
        ww, wh = wrapped_bboxes.widths, wrapped_bboxes.heights
        aspect = torch.maximum(ww / (wh + 1e-16), wh / (ww + 1e-16))
        return (
            (ww > self.min_bbox_size)
            & (wh > self.min_bbox_size)
            & (ww * wh / (ow * oh + 1e-16) > self.min_area_ratio)
            & (aspect < self.max_aspect_ratio)
        )

    def transform(self, results: dict) -> dict:
        img = results['img']
        height = img.shape[0] + self.border[1] * 2
        width = img.shape[1] + self.border[0] * 2
        center = np.eye(3, dtype=np.float32)
        center[0, 2] = -img.shape[1] / 2
        center[1, 2] = -img.shape[0] / 2
        warp, scale = self._get_random_homography_matrix(height, width)
        warp = warp @ center
        img = cv2.warpPerspective(img, warp, dsize=(width, height), borderValue=self.border_val)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        boxes = get_gt_boxes(results, 'YOLOv5RandomAffine')
        if boxes is None:
            return results
        if len(boxes) == 0:
            if 'gt_masks' in results:
                results['gt_masks'] = PolygonMasks([], height, width)
            return results
        orig = boxes.clone()
        orig.rescale_([scale, scale])
        if results.get('gt_masks', None) is not None:
            masks = results['gt_masks'].resample(self.resample_num).project(warp, height, width)
            boxes = HorizontalBoxes(boxes_of_points_inside(masks.masks, height, width))
            keep = self.filter_gt_bboxes(orig, boxes).numpy()
            if self.bbox_clip_border:
                boxes.clip_([height - 1e-3, width - 1e-3])
                masks = masks.clip(height, width)
            results['gt_masks'] = masks
        else:
            boxes.project_(warp)
            if self.bbox_clip_border:
                boxes.clip_([height, width])
            keep = self.filter_gt_bboxes(orig, boxes).numpy()
        results['gt_bboxes'] = boxes
        keep_instances(results, keep)
        return results

    def __repr__(self) -> str:
        return (
            f'{self.__class__.__name__}(max_rotate_degree={self.max_rotate_degree}, '
            f'max_translate_ratio={self.max_translate_ratio}, '
            f'scaling_ratio_range={self.scaling_ratio_range}, '
            f'max_shear_degree={self.max_shear_degree}, border={self.border}, '
            f'border_val={self.border_val}, bbox_clip_border={self.bbox_clip_border})'
        )


# ------------------------------------------------------------------------ copy-paste
def bbox_ioa(boxes1: torch.Tensor, boxes2: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """(N, M) intersection over the area of ``boxes2`` of (N, 4) and (M, 4) xyxy boxes."""
    iw = (
        torch.minimum(boxes1[:, None, 2], boxes2[:, 2])
        - torch.maximum(boxes1[:, None, 0], boxes2[:, 0])
    ).clip(0)
    ih = (
        torch.minimum(boxes1[:, None, 3], boxes2[:, 3])
        - torch.maximum(boxes1[:, None, 1], boxes2[:, 1])
    ).clip(0)
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1]) + eps
    return iw * ih / area2


def paste_mirrored(img: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``img`` with its horizontal mirror pasted through the mirrored ``mask``.

    Pixel ``(y, x)`` becomes ``img[y, W - 1 - x]`` wherever ``mask[y, W - 1 - x]`` is
    non-zero; the other pixels are unchanged.

    Args:
        img (np.ndarray): (H, W) or (H, W, C) image, any dtype; written in place when it is
            C-contiguous (else a contiguous copy is written and returned).
        mask (np.ndarray): (H, W) uint8 (or bool) mask of the objects to copy (not yet
            mirrored).

    Returns:
        np.ndarray: the image (the same array when it could be written in place).
    """
    # Only the mask's bounding rectangle is mirrored, with OpenCV's flip and masked copy: the
    # same pixels as the boolean-index form ``img[m] = mirrored[m]`` over the whole image, but
    # about 10x faster on a 1280 x 1280 mosaic (the pasted objects cover a small part of it).
    img = np.ascontiguousarray(img)
    mask = np.ascontiguousarray(mask, dtype=np.uint8)
    x, y, w, h = cv2.boundingRect(mask)
    if w == 0 or h == 0:
        return img
    width = img.shape[1]
    source = cv2.flip(img[y : y + h, x : x + w], 1)  # a copy: the regions may overlap
    target = img[y : y + h, width - x - w : width - x]
    pasted = cv2.copyTo(source, cv2.flip(mask[y : y + h, x : x + w], 1), target)
    if not np.shares_memory(pasted, target):  # OpenCV wrote into a copy of the view
        target[...] = pasted.reshape(target.shape)
    return img


@TRANSFORMS.register_module()
class YOLOv5CopyPaste(BaseTransform):
    """Copy objects to their horizontally mirrored position (mmyolo / YOLOv5).

    Objects whose mirrored box covers less than ``ioa_thresh`` of every existing box are
    candidates; ``round(prob * n)`` of them are chosen at random, their mirrored polygons
    are drawn as a mask, the mirrored image is pasted through it, and the mirrored boxes,
    labels, flags and polygons are appended. Needs ``gt_masks``; without masks it does
    nothing.

    Args:
        ioa_thresh (float): Defaults to 0.3.
        prob (float): fraction of candidate objects copied. Defaults to 0.5.
    """

    def __init__(self, ioa_thresh: float = 0.3, prob: float = 0.5) -> None:
        self.ioa_thresh = ioa_thresh
        self.prob = prob

    def transform(self, results: dict) -> dict:
        masks = results.get('gt_masks', None)
        if masks is None or len(masks) == 0:
            return results
        if not isinstance(masks, PolygonMasks):
            raise TypeError(f'YOLOv5CopyPaste needs PolygonMasks, got {type(masks).__name__}')
        boxes = get_gt_boxes(results, 'YOLOv5CopyPaste')
        img = results['img']
        img_h, img_w = img.shape[:2]
        flipped = boxes.clone()
        flipped.flip_((img_h, img_w))
        ioa = bbox_ioa(flipped.tensor, boxes.tensor)
        candidates = torch.nonzero((ioa < self.ioa_thresh).all(1))[:, 0].numpy()
        chosen = random.choice(candidates, size=round(self.prob * len(candidates)), replace=False)
        if len(chosen) == 0:
            return results
        copied = masks[chosen]
        paste_mask = np.zeros((img_h, img_w), dtype=np.uint8)
        for polys in copied.masks:
            contours = [p.reshape((-1, 1, 2)).astype(np.int32) for p in polys]
            cv2.drawContours(paste_mask, contours, -1, (1,), cv2.FILLED)
        results['img'] = paste_mirrored(img, paste_mask)
        results['gt_bboxes'] = boxes.cat([boxes, flipped[chosen]])
        for key in ('gt_bboxes_labels', 'gt_ignore_flags'):
            if results.get(key, None) is not None:
                results[key] = np.concatenate([results[key], results[key][chosen]], axis=0)
        results['gt_masks'] = PolygonMasks.cat([masks, copied.flip()])
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(ioa_thresh={self.ioa_thresh}, prob={self.prob})'


@TRANSFORMS.register_module()
class RemoveDataElement(BaseTransform):
    """Remove keys from the results dict (mmyolo); missing keys are ignored.

    Args:
        keys (str | Sequence[str]): keys to remove.
    """

    def __init__(self, keys: str | Sequence[str]) -> None:
        self.keys = [keys] if isinstance(keys, str) else list(keys)

    def transform(self, results: dict) -> dict:
        for key in self.keys:
            results.pop(key, None)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(keys={self.keys})'


# ---------------------------------------------------------------------------- albu
def _import_albumentations():
    try:
        import albumentations
    except ImportError as exc:
        raise ImportError(
            'Albu needs the optional package "albumentations" (pip install albumentations, '
            'or pip install ai4rs[optional]); drop the Albu step from the pipeline to train '
            'without it'
        ) from exc
    return albumentations


@TRANSFORMS.register_module()
class Albu(BaseTransform):
    """Albumentations augmentations (mmdet's ``Albu`` wrapper, horizontal boxes only).

    ``albumentations`` is an optional extra, imported when the transform is built.

    Args:
        transforms (list[dict]): albumentations transforms as dicts with ``type`` (a name in
            ``albumentations``); nested ``transforms`` (``OneOf``...) are built too.
        bbox_params (dict, optional): ``albumentations.BboxParams`` as a dict; with
            ``label_fields`` and ``filter_lost_elements`` the label fields follow the kept
            boxes through an index field.
        keymap (dict, optional): results key -> albumentations key. Defaults to
            ``{'img': 'image', 'gt_masks': 'masks', 'gt_bboxes': 'bboxes'}``.
        skip_img_without_anno (bool): return None when ``filter_lost_elements`` removed
            every box. Defaults to False.
    """

    def __init__(
        self,
        transforms: list[dict],
        bbox_params: dict | None = None,
        keymap: dict | None = None,
        skip_img_without_anno: bool = False,
    ) -> None:
        albu = _import_albumentations()
        self.transforms = copy.deepcopy(transforms)
        bbox_params = copy.deepcopy(bbox_params)
        self.filter_lost_elements = False
        self.skip_img_without_anno = skip_img_without_anno
        if (
            isinstance(bbox_params, dict)
            and 'label_fields' in bbox_params
            and 'filter_lost_elements' in bbox_params
        ):
            self.filter_lost_elements = True
            self.origin_label_fields = bbox_params['label_fields']
            bbox_params['label_fields'] = ['idx_mapper']
            del bbox_params['filter_lost_elements']
        self.bbox_params = self.albu_builder(bbox_params) if bbox_params else None
        self.aug = albu.Compose(
            [self.albu_builder(t) for t in self.transforms], bbox_params=self.bbox_params
        )
        self.keymap_to_albu = (
            copy.deepcopy(keymap)
            if keymap
            else {'img': 'image', 'gt_masks': 'masks', 'gt_bboxes': 'bboxes'}
        )
        self.keymap_back = {v: k for k, v in self.keymap_to_albu.items()}

    @staticmethod
    def albu_builder(cfg: dict):
        """Build an albumentations object from a dict with ``type`` (name or class)."""
        if not isinstance(cfg, dict) or 'type' not in cfg:
            raise TypeError(f'Albu: each transform must be a dict with "type", got {cfg!r}')
        args = dict(cfg)
        obj_type = args.pop('type')
        if isinstance(obj_type, str):
            albu = _import_albumentations()
            if not hasattr(albu, obj_type):
                raise KeyError(f'Albu: albumentations has no transform {obj_type!r}')
            obj_cls = getattr(albu, obj_type)
        elif inspect.isclass(obj_type):
            obj_cls = obj_type
        else:
            raise TypeError(f'Albu: type must be a str or a class, got {type(obj_type)}')
        if 'transforms' in args:
            args['transforms'] = [Albu.albu_builder(t) for t in args['transforms']]
        return obj_cls(**args)

    @staticmethod
    def mapper(d: dict, keymap: dict) -> dict:
        """A copy of ``d`` with keys renamed by ``keymap``."""
        return {keymap.get(k, k): v for k, v in d.items()}

    def transform(self, results: dict) -> dict | None:
        results = self.mapper(results, self.keymap_to_albu)
        if 'masks' in results and results['masks'] is not None:
            raise NotImplementedError(
                'Albu: polygon masks are not supported (remove gt_masks first, e.g. with '
                "RemoveDataElement(keys=['gt_masks']), as the YOLO recipes do)"
            )
        if 'bboxes' in results:
            if not isinstance(results['bboxes'], HorizontalBoxes):
                raise NotImplementedError('Albu only supports horizontal boxes')
            results['bboxes'] = results['bboxes'].numpy()
            if self.filter_lost_elements:
                results['idx_mapper'] = np.arange(len(results['bboxes']))
        results = self.aug(**results)
        if 'gt_bboxes_labels' in results:
            results['gt_bboxes_labels'] = np.asarray(
                results['gt_bboxes_labels'], dtype=np.int64
            ).reshape(-1)
        if 'gt_ignore_flags' in results:
            results['gt_ignore_flags'] = np.asarray(results['gt_ignore_flags'], dtype=bool).reshape(
                -1
            )
        if 'bboxes' in results:
            boxes = np.asarray(results['bboxes'], dtype=np.float32).reshape(-1, 4)
            results['bboxes'] = HorizontalBoxes(boxes)
            if self.filter_lost_elements:
                idx = np.asarray(results['idx_mapper'], dtype=np.int64).reshape(-1)
                for label in self.origin_label_fields:
                    results[label] = np.asarray(results[label])[idx]
                if len(idx) == 0 and self.skip_img_without_anno:
                    return None
        results = self.mapper(results, self.keymap_back)
        results['img_shape'] = results['img'].shape[:2]
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(transforms={self.transforms})'
