"""Geometric, photometric and mixing transforms that move box objects with the image.

All transforms follow mmdet 3.x / mmrotate 1.x (same registry names, arguments and
results keys) and work on any box type (``HorizontalBoxes``, ``RotatedBoxes``,
``QuadriBoxes``) through the ``BaseBoxes`` API: ``rescale_``, ``flip_``,
``rotate_``, ``translate_``, ``clip_``, ``is_inside``. Box coordinates are in the
pixel-corner convention (pixel ``i`` covers ``[i, i + 1)``), so an image of width
``W`` spans ``[0, W]``; image operations are placed consistently with it.

Results keys: ``img`` (H, W[, C]) array, ``img_shape`` (h, w), ``gt_bboxes`` (box
object), ``gt_bboxes_labels`` np.int64 (N,), ``gt_ignore_flags`` np.bool_ (N,),
``scale_factor`` (w_scale, h_scale), ``flip``, ``flip_direction``,
``homography_matrix`` (3, 3) float32 mapping input to output pixel coordinates.
"""

from collections.abc import Sequence

import cv2
import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms import Pad as MMCV_Pad
from mmcv.transforms import RandomFlip as MMCV_RandomFlip
from mmcv.transforms import RandomResize as MMCV_RandomResize
from mmcv.transforms import Resize as MMCV_Resize
from mmcv.transforms.utils import cache_randomness
from numpy import random

from ai4rs.registry import TRANSFORMS

from .instances import get_gt_boxes, keep_instances
from .mixing import BaseMixImageTransform, MosaicMixin, check_img_scale

Number = int | float


# ----------------------------------------------------------------------------- helpers
def record_homography(results: dict, matrix: np.ndarray) -> None:
    """Left-multiply ``results['homography_matrix']`` by ``matrix`` (3, 3)."""
    matrix = np.asarray(matrix, dtype=np.float32)
    previous = results.get('homography_matrix', None)
    results['homography_matrix'] = matrix if previous is None else matrix @ previous


def scale_size(size_wh: tuple[int, int], scale: float | tuple[float, float]):
    """``(w, h)`` multiplied by ``scale`` (a number or ``(sx, sy)``) and rounded."""
    if isinstance(scale, (int, float)):
        scale = (scale, scale)
    w, h = size_wh
    return int(w * float(scale[0]) + 0.5), int(h * float(scale[1]) + 0.5)


# ----------------------------------------------------------------------------- resize
@TRANSFORMS.register_module()
class Resize(MMCV_Resize):
    """Resize the image, and rescale the boxes by the same factors (mmdet 3.x).

    Args (as ``mmcv.transforms.Resize``):
        scale (int | tuple[int, int], optional): target ``(w, h)``; with
            ``keep_ratio`` the image is scaled to fit the long and short edges.
        scale_factor (float | tuple[float, float], optional): used when
            ``scale`` is None.
        keep_ratio (bool): keep the aspect ratio. Defaults to False.
        clip_object_border (bool): clip boxes to the image after resizing
            (a no-op for rotated and quadrilateral boxes). Defaults to True.
        backend (str): 'cv2' or 'pillow'.
        interpolation (str): 'nearest', 'bilinear', ...

    Rotated boxes are rescaled exactly: for unequal x/y factors the angle and
    sides change (``RotatedBoxes.rescale_``).
    """

    def _resize_bboxes(self, results: dict) -> None:
        boxes = get_gt_boxes(results, 'Resize')
        if boxes is None:
            return
        boxes.rescale_(results['scale_factor'])
        if self.clip_object_border:
            boxes.clip_(results['img_shape'])

    def _resize_seg(self, results: dict) -> None:
        if results.get('gt_seg_map', None) is None:
            return
        h, w = results['img_shape'][:2]
        results['gt_seg_map'] = mmcv.imresize(
            results['gt_seg_map'], (w, h), interpolation='nearest', backend=self.backend
        )

    def transform(self, results: dict) -> dict:
        if self.scale:
            results['scale'] = self.scale
        else:
            h, w = results['img'].shape[:2]
            results['scale'] = scale_size((w, h), self.scale_factor)
        self._resize_img(results)
        self._resize_bboxes(results)
        self._resize_seg(results)
        w_scale, h_scale = results['scale_factor']
        record_homography(results, np.diag([w_scale, h_scale, 1.0]))
        return results


@TRANSFORMS.register_module()
class RandomResize(MMCV_RandomResize):
    """``mmcv.transforms.RandomResize`` whose inner resize is built from ai4rs's registry.

    Args:
        scale (tuple | list[tuple]): ``(w, h)`` with ``ratio_range``, or two
            ``(w, h)`` bounds to sample between.
        ratio_range (tuple[float, float], optional): sample a ratio of ``scale``.
        resize_type (str): the resize transform, ``'Resize'`` (ai4rs's) by default.
        **resize_kwargs: passed to it (``keep_ratio``, ``interpolation``...).
    """

    def __init__(
        self,
        scale: tuple[int, int] | Sequence[tuple[int, int]],
        ratio_range: tuple[float, float] | None = None,
        resize_type: str = 'Resize',
        **resize_kwargs,
    ) -> None:
        self.scale = scale
        self.ratio_range = ratio_range
        self.resize_cfg = dict(type=resize_type, **resize_kwargs)
        self.resize = TRANSFORMS.build({'scale': 0, **self.resize_cfg})


# ------------------------------------------------------------------------------- flip
@TRANSFORMS.register_module()
class RandomFlip(MMCV_RandomFlip):
    """Flip the image and the boxes: 'horizontal', 'vertical' or 'diagonal' (both).

    ``prob`` and ``direction`` as ``mmcv.transforms.RandomFlip``: a float ``prob``
    with a list of directions flips in each direction with ``prob / len``.
    A rotated box's angle is negated by a horizontal or vertical flip and kept
    by a diagonal one (``RotatedBoxes.flip_``). Polygon ``gt_masks`` are flipped too.
    """

    def _flip(self, results: dict) -> None:
        direction = results['flip_direction']
        results['img'] = mmcv.imflip(results['img'], direction=direction)
        h, w = results['img'].shape[:2]
        boxes = get_gt_boxes(results, 'RandomFlip')
        if boxes is not None:
            boxes.flip_((h, w), direction)
        if results.get('gt_seg_map', None) is not None:
            results['gt_seg_map'] = mmcv.imflip(results['gt_seg_map'], direction=direction)
        if results.get('gt_masks', None) is not None:
            results['gt_masks'] = results['gt_masks'].flip(direction)
        sx = -1.0 if direction in ('horizontal', 'diagonal') else 1.0
        sy = -1.0 if direction in ('vertical', 'diagonal') else 1.0
        record_homography(
            results, [[sx, 0, w if sx < 0 else 0], [0, sy, h if sy < 0 else 0], [0, 0, 1]]
        )


# ----------------------------------------------------------------------------- rotate
@TRANSFORMS.register_module()
class Rotate(BaseTransform):
    """Rotate the image and the boxes by ``rotate_angle`` degrees, clockwise (mmrotate).

    The image keeps its size (corners are cut, uncovered areas get
    ``img_border_value``); it turns about its centre, which is ``(w/2, h/2)`` in
    box coordinates. Boxes whose centre leaves the image are dropped (for
    rotated boxes ``is_inside`` tests the centre).

    Args:
        rotate_angle (float): angle in degrees, positive = clockwise on screen.
        img_border_value (int | float | tuple): fill value, one number or 3.
        mask_border_value (int): kept for config compatibility (no masks).
        seg_ignore_label (int): fill value of ``gt_seg_map``.
        interpolation (str): image interpolation. Defaults to 'bilinear'.
    """

    def __init__(
        self,
        rotate_angle: float,
        img_border_value: int | float | tuple = 0,
        mask_border_value: int = 0,
        seg_ignore_label: int = 255,
        interpolation: str = 'bilinear',
    ) -> None:
        if isinstance(img_border_value, (int, float)):
            img_border_value = (float(img_border_value),) * 3
        elif isinstance(img_border_value, (tuple, list)) and len(img_border_value) == 3:
            img_border_value = tuple(float(v) for v in img_border_value)
        else:
            raise ValueError(
                f'Rotate: img_border_value must be a number or 3 numbers, got {img_border_value!r}'
            )
        self.rotate_angle = rotate_angle
        self.img_border_value = img_border_value
        self.mask_border_value = mask_border_value
        self.seg_ignore_label = seg_ignore_label
        self.interpolation = interpolation

    def _homography(self, img_shape) -> np.ndarray:
        h, w = img_shape[:2]
        # cv2 pixel-centre coordinates: the image centre is ((w-1)/2, (h-1)/2).
        m = cv2.getRotationMatrix2D(((w - 1) * 0.5, (h - 1) * 0.5), -self.rotate_angle, 1.0)
        return np.concatenate([m, [[0, 0, 1]]]).astype(np.float32)

    def transform(self, results: dict) -> dict:
        img_shape = results['img'].shape[:2]
        record_homography(results, self._homography(img_shape))
        results['img'] = mmcv.imrotate(
            results['img'],
            self.rotate_angle,
            border_value=self.img_border_value,
            interpolation=self.interpolation,
        )
        if results.get('gt_seg_map', None) is not None:
            results['gt_seg_map'] = mmcv.imrotate(
                results['gt_seg_map'],
                self.rotate_angle,
                border_value=self.seg_ignore_label,
                interpolation='nearest',
            )
        boxes = get_gt_boxes(results, 'Rotate')
        if boxes is not None and len(boxes) > 0:
            h, w = img_shape
            boxes.rotate_((w * 0.5, h * 0.5), self.rotate_angle)
            boxes.clip_(img_shape)
            keep_instances(results, boxes.is_inside(img_shape).numpy())
        return results

    def __repr__(self) -> str:
        return (
            f'{self.__class__.__name__}(rotate_angle={self.rotate_angle}, '
            f'img_border_value={self.img_border_value}, '
            f'seg_ignore_label={self.seg_ignore_label}, '
            f'interpolation={self.interpolation})'
        )


@TRANSFORMS.register_module()
class RandomRotate(BaseTransform):
    """With probability ``prob``, rotate by an angle drawn from U[-angle_range, angle_range).

    If the image holds an object whose label is in ``rect_obj_labels`` (objects
    that are always axis-aligned, such as DOTA's storage-tank and roundabout), the
    angle is drawn from {90, 180, -90, -180} instead.

    Args:
        prob (float): probability of rotating. Defaults to 0.5.
        angle_range (float): in (0, 180]. Defaults to 180.
        rect_obj_labels (list[int], optional): see above.
        rotate_type (str): the rotate transform. Defaults to 'Rotate'.
        **rotate_kwargs: passed to it (``img_border_value``...).
    """

    def __init__(
        self,
        prob: float = 0.5,
        angle_range: float = 180,
        rect_obj_labels: list[int] | None = None,
        rotate_type: str = 'Rotate',
        **rotate_kwargs,
    ) -> None:
        if not 0 < angle_range <= 180:
            raise ValueError(f'RandomRotate: angle_range must be in (0, 180], got {angle_range}')
        if not 0 <= prob <= 1:
            raise ValueError(f'RandomRotate: prob must be in [0, 1], got {prob}')
        self.prob = prob
        self.angle_range = angle_range
        self.rect_obj_labels = rect_obj_labels
        self.rotate_cfg = dict(type=rotate_type, **rotate_kwargs)
        self.rotate = TRANSFORMS.build({'rotate_angle': 0, **self.rotate_cfg})
        self.horizontal_angles = [90, 180, -90, -180]

    @cache_randomness
    def _random_angle(self) -> float:
        return self.angle_range * (2 * np.random.rand() - 1)

    @cache_randomness
    def _random_horizontal_angle(self) -> int:
        return int(np.random.choice(self.horizontal_angles))

    @cache_randomness
    def _is_rotate(self) -> bool:
        return np.random.rand() < self.prob

    def transform(self, results: dict) -> dict:
        if not self._is_rotate():
            return results
        angle = self._random_angle()
        labels = results.get('gt_bboxes_labels', None)
        if self.rect_obj_labels is not None and labels is not None:
            if np.isin(labels, self.rect_obj_labels).any():
                angle = self._random_horizontal_angle()
        self.rotate.rotate_angle = angle
        return self.rotate(results)

    def __repr__(self) -> str:
        return (
            f'{self.__class__.__name__}(prob={self.prob}, angle_range={self.angle_range}, '
            f'rect_obj_labels={self.rect_obj_labels}, rotate_cfg={self.rotate_cfg})'
        )


# ------------------------------------------------------------------------------- crop
@TRANSFORMS.register_module()
class RandomCrop(BaseTransform):
    """Crop a random window of the image; keep the boxes still inside it (mmdet 3.x).

    Boxes are translated by the crop offset, clipped if ``bbox_clip_border``
    (a no-op for rotated / quadrilateral boxes) and kept if ``is_inside`` the crop:
    horizontal boxes that still overlap it, rotated boxes whose centre is in it.

    Args:
        crop_size (tuple): ``(w, h)`` (mmdet's order) in absolute pixels for
            'absolute', ratios for 'relative'; ``(min, max)`` pixels for
            'absolute_range'; ``(h, w)`` minimum ratios for 'relative_range'
            (also mmdet's order).
        crop_type (str): 'absolute' (default; the crop is ``min(crop, image)``),
            'absolute_range' (h, w drawn in [crop_size[0], crop_size[1]]),
            'relative' or 'relative_range'.
        allow_negative_crop (bool): if False (default) and no box is left, the
            transform returns None (the dataset then draws another sample).
        recompute_bbox (bool): kept for compatibility; needs masks, unused here.
        bbox_clip_border (bool): clip boxes to the crop. Defaults to True.
    """

    def __init__(
        self,
        crop_size: tuple,
        crop_type: str = 'absolute',
        allow_negative_crop: bool = False,
        recompute_bbox: bool = False,
        bbox_clip_border: bool = True,
    ) -> None:
        if crop_type not in ('relative_range', 'relative', 'absolute', 'absolute_range'):
            raise ValueError(f'RandomCrop: invalid crop_type {crop_type!r}')
        if crop_type in ('absolute', 'absolute_range'):
            if not (
                crop_size[0] > 0
                and crop_size[1] > 0
                and isinstance(crop_size[0], int)
                and isinstance(crop_size[1], int)
            ):
                raise ValueError(
                    f'RandomCrop: crop_size must be 2 positive ints for {crop_type!r}, '
                    f'got {crop_size!r}'
                )
            if crop_type == 'absolute_range' and crop_size[0] > crop_size[1]:
                raise ValueError('RandomCrop: absolute_range needs crop_size[0] <= crop_size[1]')
        elif not (0 < crop_size[0] <= 1 and 0 < crop_size[1] <= 1):
            raise ValueError(
                f'RandomCrop: crop_size must be ratios in (0, 1] for {crop_type!r}, '
                f'got {crop_size!r}'
            )
        self.crop_size = crop_size
        self.crop_type = crop_type
        self.allow_negative_crop = allow_negative_crop
        self.recompute_bbox = recompute_bbox
        self.bbox_clip_border = bbox_clip_border

    @cache_randomness
    def _rand_offset(self, margin: tuple[int, int]) -> tuple[int, int]:
        margin_h, margin_w = margin
        return np.random.randint(0, margin_h + 1), np.random.randint(0, margin_w + 1)

    @cache_randomness
    def _get_crop_size(self, image_size: tuple[int, int]) -> tuple[int, int]:
        h, w = image_size
        if self.crop_type == 'absolute':
            return min(self.crop_size[1], h), min(self.crop_size[0], w)
        if self.crop_type == 'absolute_range':
            crop_h = np.random.randint(min(h, self.crop_size[0]), min(h, self.crop_size[1]) + 1)
            crop_w = np.random.randint(min(w, self.crop_size[0]), min(w, self.crop_size[1]) + 1)
            return crop_h, crop_w
        if self.crop_type == 'relative':
            crop_w, crop_h = self.crop_size
        else:
            ratio = np.asarray(self.crop_size, dtype=np.float32)
            crop_h, crop_w = ratio + np.random.rand(2) * (1 - ratio)
        return int(h * crop_h + 0.5), int(w * crop_w + 0.5)

    def _crop_data(
        self, results: dict, crop_size: tuple[int, int], allow_negative_crop: bool
    ) -> dict | None:
        img = results['img']
        margin_h = max(img.shape[0] - crop_size[0], 0)
        margin_w = max(img.shape[1] - crop_size[1], 0)
        offset_h, offset_w = self._rand_offset((margin_h, margin_w))
        y1, y2 = offset_h, offset_h + crop_size[0]
        x1, x2 = offset_w, offset_w + crop_size[1]
        record_homography(results, [[1, 0, -offset_w], [0, 1, -offset_h], [0, 0, 1]])

        img = img[y1:y2, x1:x2, ...]
        img_shape = img.shape[:2]
        results['img'] = img
        results['img_shape'] = img_shape

        boxes = get_gt_boxes(results, 'RandomCrop')
        if boxes is not None:
            boxes.translate_([-offset_w, -offset_h])
            if self.bbox_clip_border:
                boxes.clip_(img_shape)
            valid = boxes.is_inside(img_shape).numpy()
            if not valid.any() and not allow_negative_crop:
                return None
            keep_instances(results, valid)
        if results.get('gt_seg_map', None) is not None:
            results['gt_seg_map'] = results['gt_seg_map'][y1:y2, x1:x2]
        return results

    def transform(self, results: dict) -> dict | None:
        crop_size = self._get_crop_size(results['img'].shape[:2])
        return self._crop_data(results, crop_size, self.allow_negative_crop)

    def __repr__(self) -> str:
        return (
            f'{self.__class__.__name__}(crop_size={self.crop_size}, '
            f'crop_type={self.crop_type}, allow_negative_crop={self.allow_negative_crop}, '
            f'recompute_bbox={self.recompute_bbox}, '
            f'bbox_clip_border={self.bbox_clip_border})'
        )


# -------------------------------------------------------------------------------- pad
@TRANSFORMS.register_module()
class Pad(MMCV_Pad):
    """Pad the image at the bottom and right (boxes do not move) (mmdet 3.x).

    Args (as ``mmcv.transforms.Pad``):
        size (tuple, optional): fixed padded size ``(w, h)``.
        size_divisor (int, optional): pad each side to a multiple of it.
        pad_to_square (bool): pad to a square of the longer side.
        pad_val (Number | dict): ``dict(img=..., seg=...)``; a number is the
            image value (seg 255). The image value may be 3 numbers.
        padding_mode (str): 'constant', 'edge', 'reflect' or 'symmetric'.
    """

    def __init__(
        self,
        size: tuple[int, int] | None = None,
        size_divisor: int | None = None,
        pad_to_square: bool = False,
        pad_val: Number | dict = dict(img=0, seg=255),  # noqa: B006
        padding_mode: str = 'constant',
    ) -> None:
        if isinstance(pad_val, (int, float)):
            pad_val = dict(img=pad_val, seg=255)
        super().__init__(
            size=size,
            size_divisor=size_divisor,
            pad_to_square=pad_to_square,
            pad_val=pad_val,
            padding_mode=padding_mode,
        )

    def transform(self, results: dict) -> dict:
        h, w = results['img'].shape[:2]
        if self.size is not None and (self.size[0] < w or self.size[1] < h):
            raise ValueError(
                f'Pad: the image (w={w}, h={h}) is larger than size={tuple(self.size)} (w, h)'
            )
        self._pad_img(results)
        self._pad_seg(results)
        return results


# ----------------------------------------------------------------------- photometric
@TRANSFORMS.register_module()
class YOLOXHSVRandomAug(BaseTransform):
    """Random hue / saturation / value shifts of a uint8 BGR image (YOLOX).

    Each of the three gains is drawn from U(-delta, delta), switched on with
    probability 1/2, and truncated to an integer; hue wraps modulo 180 (OpenCV
    hue range), saturation and value are clipped to [0, 255].

    Args:
        hue_delta (int): Defaults to 5.
        saturation_delta (int): Defaults to 30.
        value_delta (int): Defaults to 30.
    """

    def __init__(
        self, hue_delta: int = 5, saturation_delta: int = 30, value_delta: int = 30
    ) -> None:
        self.hue_delta = hue_delta
        self.saturation_delta = saturation_delta
        self.value_delta = value_delta

    @cache_randomness
    def _get_hsv_gains(self) -> np.ndarray:
        gains = np.random.uniform(-1, 1, 3) * [
            self.hue_delta,
            self.saturation_delta,
            self.value_delta,
        ]
        gains *= np.random.randint(0, 2, 3)
        return gains.astype(np.int16)

    def transform(self, results: dict) -> dict:
        img = results['img']
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(
                f'YOLOXHSVRandomAug needs a uint8 (H, W, 3) BGR image, got {img.dtype} {img.shape}'
            )
        gains = self._get_hsv_gains()
        hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV).astype(np.int16)
        hsv[..., 0] = (hsv[..., 0] + gains[0]) % 180
        hsv[..., 1] = np.clip(hsv[..., 1] + gains[1], 0, 255)
        hsv[..., 2] = np.clip(hsv[..., 2] + gains[2], 0, 255)
        results['img'] = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)
        return results

    def __repr__(self) -> str:
        return (
            f'{self.__class__.__name__}(hue_delta={self.hue_delta}, '
            f'saturation_delta={self.saturation_delta}, value_delta={self.value_delta})'
        )


# ---------------------------------------------------------------------------- mixing
class CachedMixTransform(BaseMixImageTransform):
    """Base of mmdet's transforms that mix the current image with cached past results.

    :class:`BaseMixImageTransform` in its cached mode, with mmdet's order: every call adds a
    deep copy of the current results to the cache first (at most ``max_cached_images``
    entries; when full, a random entry if ``random_pop``, else the oldest, is dropped); once
    the cache holds :attr:`min_cache_to_mix` entries, the images are mixed with probability
    ``prob``. Also checks ``img_scale``.

    Subclasses set ``min_cached_images`` / ``min_cache_to_mix`` and implement
    :meth:`get_indexes` (into the cache) and :meth:`mix_img_transform`.

    Args:
        img_scale (tuple[int, int]): ``(w, h)``; only its type is checked here.
        prob (float): in [0, 1].
        max_cached_images (int): >= ``min_cached_images``.
        random_pop (bool): drop a random (True) or the oldest cache entry.
    """

    draw_prob_first = False

    def __init__(
        self, img_scale: tuple[int, int], prob: float, max_cached_images: int, random_pop: bool
    ) -> None:
        check_img_scale(type(self).__name__, img_scale)
        super().__init__(
            prob=prob, use_cached=True, max_cached_images=max_cached_images, random_pop=random_pop
        )


@TRANSFORMS.register_module()
class CachedMosaic(MosaicMixin, CachedMixTransform):
    """Mosaic of the current image and three images from a cache of past results (mmdet).

    The current results are added to the cache (at most ``max_cached_images``;
    when full, a random or the oldest entry is dropped). Once the cache holds
    more than 4 entries, with probability ``prob`` the output is a canvas of
    ``2 * img_scale`` filled with ``pad_val``, on which the current image
    (top-left) and three cached ones, each resized to fit ``img_scale`` with its
    aspect ratio kept, meet at a random point ``center_ratio_range * img_scale``.
    Boxes are rescaled and translated with their image; those not ``is_inside``
    the canvas are dropped.

    Args:
        img_scale (tuple[int, int]): ``(w, h)`` of one mosaic cell (mmdet's order).
            Defaults to (640, 640).
        center_ratio_range (tuple[float, float]): Defaults to (0.5, 1.5).
        bbox_clip_border (bool): clip boxes to the canvas. Defaults to True.
        pad_val (float): canvas fill value. Defaults to 114.
        prob (float): probability of making a mosaic. Defaults to 1.
        max_cached_images (int): >= 4. Defaults to 40.
        random_pop (bool): drop a random (True) or the oldest entry. Defaults to True.
    """

    min_cached_images = 4
    min_cache_to_mix = 5  # the current image and at least 4 cached ones
    drop_outside_after_clip = True  # mmdet drops the boxes clipped to nothing

    def __init__(
        self,
        img_scale: tuple[int, int] = (640, 640),
        center_ratio_range: tuple[float, float] = (0.5, 1.5),
        bbox_clip_border: bool = True,
        pad_val: float = 114.0,
        prob: float = 1.0,
        max_cached_images: int = 40,
        random_pop: bool = True,
    ) -> None:
        super().__init__(img_scale, prob, max_cached_images, random_pop)
        self.img_scale = img_scale
        self.center_ratio_range = center_ratio_range
        self.bbox_clip_border = bbox_clip_border
        self.pad_val = pad_val

    @cache_randomness
    def get_indexes(self, cache: list) -> list:
        """Three cache indices; as upstream, the newest entry (the current image) is not drawn."""
        return [random.randint(0, len(cache) - 1) for _ in range(3)]

    def __repr__(self) -> str:
        return (
            f'{self.__class__.__name__}(img_scale={self.img_scale}, '
            f'center_ratio_range={self.center_ratio_range}, pad_val={self.pad_val}, '
            f'prob={self.prob}, max_cached_images={self.max_cached_images}, '
            f'random_pop={self.random_pop})'
        )


@TRANSFORMS.register_module()
class CachedMixUp(CachedMixTransform):
    """Blend the current image 50/50 with a cached one (mmdet's CachedMixUp, YOLOX).

    The current results are cached as in :class:`CachedMosaic`. Once the cache
    holds more than one entry, with probability ``prob`` an entry with objects is
    drawn (up to ``max_iters`` tries). It is resized to fit ``img_scale``
    (aspect kept) on a ``pad_val`` canvas, scaled by a factor from
    ``ratio_range``, flipped horizontally when U(0,1) > ``flip_ratio``, padded /
    cropped at a random offset to the current image's size, and averaged with
    it. Its boxes follow; all boxes not ``is_inside`` the image are dropped.

    Args:
        img_scale (tuple[int, int]): ``(w, h)`` (mmdet's order). Defaults to (640, 640).
        ratio_range (tuple[float, float]): scale jitter. Defaults to (0.5, 1.5).
        flip_ratio (float): Defaults to 0.5.
        pad_val (float | tuple): canvas fill value. Defaults to 114.
        max_iters (int): tries to find a cached image with objects. Defaults to 15.
        bbox_clip_border (bool): Defaults to True.
        max_cached_images (int): >= 2. Defaults to 20.
        random_pop (bool): Defaults to True.
        prob (float): Defaults to 1.
    """

    min_cached_images = 2
    min_cache_to_mix = 2  # the current image and at least one cached one

    def __init__(
        self,
        img_scale: tuple[int, int] = (640, 640),
        ratio_range: tuple[float, float] = (0.5, 1.5),
        flip_ratio: float = 0.5,
        pad_val: float | tuple = 114.0,
        max_iters: int = 15,
        bbox_clip_border: bool = True,
        max_cached_images: int = 20,
        random_pop: bool = True,
        prob: float = 1.0,
    ) -> None:
        super().__init__(img_scale, prob, max_cached_images, random_pop)
        self.dynamic_scale = img_scale
        self.ratio_range = ratio_range
        self.flip_ratio = flip_ratio
        self.pad_val = pad_val
        self.max_iters = max_iters
        self.bbox_clip_border = bbox_clip_border

    @cache_randomness
    def get_indexes(self, cache: list) -> int:
        """A cache index whose entry has objects (last try kept if none has)."""
        for _ in range(self.max_iters):
            index = random.randint(0, len(cache) - 1)
            if len(cache[index]['gt_bboxes']) != 0:
                break
        return index

    def mix_img_transform(self, results: dict) -> dict:
        get_gt_boxes(results, type(self).__name__)
        if results.get('gt_masks', None) is not None:
            raise ValueError(
                f"{type(self).__name__} does not mix gt_masks (nor does mmdet's); remove them "
                f"first, e.g. RemoveDataElement(keys=['gt_masks']) (image: "
                f'{results.get("img_path", "?")})'
            )
        retrieve = results['mix_results'][0]
        if len(retrieve['gt_bboxes']) == 0:
            return results

        retrieve_img = retrieve['img']
        jit_factor = random.uniform(*self.ratio_range)
        is_flip = random.uniform(0, 1) > self.flip_ratio

        dyn_w, dyn_h = self.dynamic_scale
        out_img = np.ones(
            (dyn_h, dyn_w) + tuple(retrieve_img.shape[2:]), dtype=retrieve_img.dtype
        ) * np.asarray(self.pad_val)
        out_img = out_img.astype(retrieve_img.dtype)
        # 1. fit into img_scale, keeping the aspect ratio, and paste top-left
        scale_ratio = min(dyn_h / retrieve_img.shape[0], dyn_w / retrieve_img.shape[1])
        retrieve_img = mmcv.imresize(
            retrieve_img,
            (int(retrieve_img.shape[1] * scale_ratio), int(retrieve_img.shape[0] * scale_ratio)),
        )
        out_img[: retrieve_img.shape[0], : retrieve_img.shape[1]] = retrieve_img
        # 2. scale jitter
        scale_ratio *= jit_factor
        out_img = mmcv.imresize(
            out_img, (int(out_img.shape[1] * jit_factor), int(out_img.shape[0] * jit_factor))
        )
        # 3. flip
        if is_flip:
            out_img = out_img[:, ::-1]
        # 4. pad to at least the current image's size and crop at a random offset
        ori_img = results['img']
        origin_h, origin_w = out_img.shape[:2]
        target_h, target_w = ori_img.shape[:2]
        padded = np.zeros(
            (max(origin_h, target_h), max(origin_w, target_w)) + tuple(ori_img.shape[2:]),
            dtype=np.uint8,
        )
        padded[:origin_h, :origin_w] = out_img
        x_offset = y_offset = 0
        if padded.shape[0] > target_h:
            y_offset = random.randint(0, padded.shape[0] - target_h)
        if padded.shape[1] > target_w:
            x_offset = random.randint(0, padded.shape[1] - target_w)
        padded_cropped = padded[y_offset : y_offset + target_h, x_offset : x_offset + target_w]

        # 5. boxes follow the same steps
        boxes = retrieve['gt_bboxes']
        boxes.rescale_([scale_ratio, scale_ratio])
        if self.bbox_clip_border:
            boxes.clip_((origin_h, origin_w))
        if is_flip:
            boxes.flip_((origin_h, origin_w), direction='horizontal')
        boxes.translate_([-x_offset, -y_offset])
        if self.bbox_clip_border:
            boxes.clip_((target_h, target_w))

        # 6. blend and merge the annotations
        mixup_img = 0.5 * ori_img.astype(np.float32) + 0.5 * padded_cropped.astype(np.float32)
        merged = boxes.cat((results['gt_bboxes'], boxes), dim=0)
        results['gt_bboxes_labels'] = np.concatenate(
            (results['gt_bboxes_labels'], retrieve['gt_bboxes_labels']), axis=0
        )
        results['gt_ignore_flags'] = np.concatenate(
            (results['gt_ignore_flags'], retrieve['gt_ignore_flags']), axis=0
        )
        results['gt_bboxes'] = merged
        keep_instances(results, merged.is_inside((target_h, target_w)).numpy())
        results['img'] = mixup_img.astype(np.uint8)
        results['img_shape'] = mixup_img.shape[:2]
        return results

    def __repr__(self) -> str:
        return (
            f'{self.__class__.__name__}(dynamic_scale={self.dynamic_scale}, '
            f'ratio_range={self.ratio_range}, flip_ratio={self.flip_ratio}, '
            f'pad_val={self.pad_val}, max_iters={self.max_iters}, '
            f'bbox_clip_border={self.bbox_clip_border}, '
            f'max_cached_images={self.max_cached_images}, random_pop={self.random_pop}, '
            f'prob={self.prob})'
        )


# ---------------------------------------------------------------------------- filter
@TRANSFORMS.register_module()
class FilterAnnotations(BaseTransform):
    """Drop objects whose box is not wider than ``min_gt_bbox_wh[0]`` and taller than [1].

    ``widths`` / ``heights`` of the box type are used (a rotated box's own sides).
    If no object is left and ``keep_empty`` is True, the transform returns None
    (mmdet's semantics: the dataset then draws another sample).

    Args:
        min_gt_bbox_wh (tuple[float, float]): Defaults to (1, 1).
        min_gt_mask_area (int): kept for compatibility (no masks).
        by_box (bool): filter by box size. Defaults to True.
        by_mask (bool): not supported (no masks); must be False.
        keep_empty (bool): see above. Defaults to True.
    """

    def __init__(
        self,
        min_gt_bbox_wh: tuple[float, float] = (1, 1),
        min_gt_mask_area: int = 1,
        by_box: bool = True,
        by_mask: bool = False,
        keep_empty: bool = True,
    ) -> None:
        if by_mask:
            raise NotImplementedError(
                'FilterAnnotations: by_mask=True needs masks, which ai4rs does not support'
            )
        if not by_box:
            raise ValueError('FilterAnnotations: by_box must be True')
        self.min_gt_bbox_wh = min_gt_bbox_wh
        self.min_gt_mask_area = min_gt_mask_area
        self.by_box = by_box
        self.by_mask = by_mask
        self.keep_empty = keep_empty

    def transform(self, results: dict) -> dict | None:
        if 'gt_bboxes' not in results:
            raise KeyError("FilterAnnotations needs results['gt_bboxes']")
        boxes = get_gt_boxes(results, 'FilterAnnotations')
        if len(boxes) == 0:
            return results
        keep = (
            (boxes.widths > self.min_gt_bbox_wh[0]) & (boxes.heights > self.min_gt_bbox_wh[1])
        ).numpy()
        if not keep.any() and self.keep_empty:
            return None
        keep_instances(results, keep)
        return results

    def __repr__(self) -> str:
        return (
            f'{self.__class__.__name__}(min_gt_bbox_wh={self.min_gt_bbox_wh}, '
            f'keep_empty={self.keep_empty})'
        )
