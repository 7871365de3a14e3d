"""LoadAnnotations: the ``instances`` of a data dict as box objects and arrays."""

import numpy as np
import torch
from mmcv.transforms import LoadAnnotations as MMCV_LoadAnnotations

from ai4rs.datasets.image_io import to_uint8
from ai4rs.registry import TRANSFORMS
from ai4rs.structures.bbox import get_box_type
from ai4rs.structures.mask import PolygonMasks, merge_polygon_segments

from .image_loading import LoadImageFromFile


@TRANSFORMS.register_module()
class LoadAnnotations(MMCV_LoadAnnotations):
    """Load ``instances`` (and optionally a seg map) into the results dict (mmdet 3.x).

    Added keys:

    - ``gt_bboxes``: a box object of ``box_type`` holding (N, box_dim) float32
      boxes, or an (N, 4) float32 array if ``box_type`` is None.
    - ``gt_bboxes_labels``: np.int64 (N,).
    - ``gt_ignore_flags``: np.bool_ (N,).
    - ``gt_seg_map``: np.uint8 (H, W), if ``with_seg``.
    - ``gt_masks``: :class:`~ai4rs.structures.mask.PolygonMasks` (N instances), if
      ``with_mask``.

    For DOTA use ``box_type='qbox'``: each instance's ``bbox`` is its polygon
    ``[x1, y1, ..., x4, y4]``.

    With ``with_mask=True`` this follows mmyolo's ``LoadAnnotations`` (the YOLO recipes):
    instances whose ``ignore_flag`` is set (COCO crowd) are dropped, each instance's
    ``mask`` (COCO polygons, a list of flat ``[x0, y0, x1, y1, ...]`` lists) keeps its
    polygons with an even number >= 6 of coordinates, instances with no such polygon are
    dropped, and with ``merge_polygons`` an object's polygons are joined into one
    (:func:`~ai4rs.structures.mask.merge_polygon_segments`). With ``mask2bbox`` the boxes
    are the tight boxes around the polygons instead of the annotated ``bbox``.

    Args:
        with_mask (bool): load ``gt_masks`` as polygon masks. Defaults to False.
        poly2mask (bool): convert polygons to bitmaps; not supported (as mmyolo), must be
            False. Defaults to False.
        mask2bbox (bool): re-derive ``gt_bboxes`` from the polygons (needs ``with_mask``).
            Defaults to False.
        merge_polygons (bool): join an object's polygons into one. Defaults to True.
        box_type (str, optional): 'hbox', 'rbox', 'qbox' (or any registered box
            type). None keeps a plain array. Defaults to 'hbox'.
        **kwargs: ``with_bbox``, ``with_label``, ``with_seg``, ``imdecode_backend``,
            ``backend_args`` as in ``mmcv.transforms.LoadAnnotations``.
    """

    def __init__(
        self,
        with_mask: bool = False,
        poly2mask: bool = False,
        box_type: str | None = 'hbox',
        mask2bbox: bool = False,
        merge_polygons: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if with_mask and poly2mask:
            raise ValueError(
                'LoadAnnotations: poly2mask=True (bitmap masks) is not supported; '
                'use with_mask=True, poly2mask=False (polygon masks)'
            )
        if mask2bbox and not with_mask:
            raise ValueError('LoadAnnotations: mask2bbox=True needs with_mask=True')
        if with_mask and box_type != 'hbox':
            raise ValueError(
                f'LoadAnnotations: with_mask=True needs box_type="hbox", got {box_type!r}'
            )
        self.with_mask = with_mask
        self.poly2mask = poly2mask
        self.mask2bbox = mask2bbox
        self.merge_polygons = merge_polygons
        self.box_type = box_type
        if box_type is not None:
            _, self._box_cls = get_box_type(box_type)
            self._box_dim = self._box_cls.box_dim
        else:
            self._box_cls = None
            self._box_dim = 4

    def _load_bboxes(self, results: dict) -> None:
        instances = results.get('instances', [])
        boxes = np.zeros((len(instances), self._box_dim), dtype=np.float32)
        ignore_flags = np.zeros(len(instances), dtype=bool)
        for i, instance in enumerate(instances):
            bbox = instance['bbox']
            if len(bbox) != self._box_dim:
                raise ValueError(
                    f'LoadAnnotations(box_type={self.box_type!r}): instance {i} of '
                    f'{results.get("img_path", results.get("img_id", "?"))} has a bbox of '
                    f'{len(bbox)} numbers, expected {self._box_dim}'
                )
            boxes[i] = bbox
            ignore_flags[i] = bool(instance.get('ignore_flag', 0))
        if self._box_cls is None:
            results['gt_bboxes'] = boxes
        else:
            results['gt_bboxes'] = self._box_cls(torch.from_numpy(boxes))
        results['gt_ignore_flags'] = ignore_flags

    def _load_labels(self, results: dict) -> None:
        labels = [instance['bbox_label'] for instance in results.get('instances', [])]
        results['gt_bboxes_labels'] = np.asarray(labels, dtype=np.int64).reshape(-1)

    def _instance_polygons(self, results: dict, i: int, instance: dict) -> list:
        """The valid flat float64 polygons of one instance (maybe merged into one)."""
        mask = instance.get('mask', None)
        if mask is None:
            return []
        if not isinstance(mask, (list, tuple)):
            raise ValueError(
                f'LoadAnnotations(with_mask=True): instance {i} of '
                f'{results.get("img_path", results.get("img_id", "?"))} has a '
                f'{type(mask).__name__} mask (RLE?); only polygon masks are supported for '
                'non-ignored instances (as mmyolo)'
            )
        polys = [np.asarray(p, dtype=np.float64) for p in mask if len(p) % 2 == 0 and len(p) >= 6]
        if len(polys) > 1 and self.merge_polygons:
            polys = [merge_polygon_segments(polys)]
        return polys

    def _load_with_masks(self, results: dict) -> None:
        """mmyolo semantics: drop ignored and mask-less instances, load polygons, and the
        boxes from the annotation or (``mask2bbox``) from the polygons."""
        kept, masks = [], []
        for i, instance in enumerate(results.get('instances', [])):
            if instance.get('ignore_flag', 0):
                continue
            polys = self._instance_polygons(results, i, instance)
            if polys:
                kept.append(instance)
                masks.append(polys)
        if 'ori_shape' in results:
            h, w = results['ori_shape'][:2]
        else:
            h, w = results['height'], results['width']
        gt_masks = PolygonMasks(masks, h, w)
        results['gt_masks'] = gt_masks
        results['gt_ignore_flags'] = np.zeros(len(kept), dtype=bool)
        if self.with_label:
            labels = [instance['bbox_label'] for instance in kept]
            results['gt_bboxes_labels'] = np.asarray(labels, dtype=np.int64).reshape(-1)
        if self.mask2bbox:
            results['gt_bboxes'] = gt_masks.get_bboxes('hbox')
        elif self.with_bbox:
            boxes = np.asarray([instance['bbox'] for instance in kept], dtype=np.float32).reshape(
                -1, 4
            )
            results['gt_bboxes'] = self._box_cls(torch.from_numpy(boxes))

    def transform(self, results: dict) -> dict:
        if self.with_mask:
            self._load_with_masks(results)
        else:
            if self.with_bbox:
                self._load_bboxes(results)
            if self.with_label:
                self._load_labels(results)
        if self.with_seg:
            self._load_seg_map(results)
        return results

    def __repr__(self) -> str:
        return (
            f'{self.__class__.__name__}(with_bbox={self.with_bbox}, '
            f'with_label={self.with_label}, with_mask={self.with_mask}, '
            f'with_seg={self.with_seg}, mask2bbox={self.mask2bbox}, '
            f'box_type={self.box_type!r}, imdecode_backend={self.imdecode_backend!r}, '
            f'backend_args={self.backend_args})'
        )


@TRANSFORMS.register_module()
class LoadImageFromNDArray(LoadImageFromFile):
    """Take the image from ``results['img']`` (an ndarray) instead of a file (mmdet's).

    Used by :func:`ai4rs.apis.inference_detector` for in-memory images.
    Sets ``img_path`` to ``None``, ``img_shape`` and ``ori_shape`` to (h, w);
    an array deeper than 8 bits is brought to uint8 by the ``to_uint8`` rule
    (as ``LoadImageFromFile``); with ``to_float32`` the image is converted to
    float32.
    """

    def transform(self, results: dict) -> dict:
        img = results['img']
        if not isinstance(img, np.ndarray) or img.ndim not in (2, 3):
            raise TypeError(
                'LoadImageFromNDArray needs results["img"] as an (H, W[, C]) '
                f'ndarray, got {type(img).__name__}'
            )
        img = to_uint8(img, self.to_uint8)
        if self.to_float32:
            img = img.astype(np.float32)
        results['img_path'] = None
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results
