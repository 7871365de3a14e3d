"""LoadAnnotations: the ``instances`` of a data dict as box objects and arrays."""
from typing import Optional

import numpy as np
import torch
from mmcv.transforms import LoadAnnotations as MMCV_LoadAnnotations

from ai4rs.datasets.image_io import to_uint8
from ai4rs.registry import TRANSFORMS
from ai4rs.structures.bbox import get_box_type

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

    For DOTA use ``box_type='qbox'``: each instance's ``bbox`` is its polygon
    ``[x1, y1, ..., x4, y4]``.

    Args:
        with_mask (bool): instance masks are not supported by ai4rs; must be False.
        poly2mask (bool): kept for config compatibility; unused.
        box_type (str, optional): 'hbox', 'rbox', 'qbox' (or any registered box
            type). None keeps a plain array. Defaults to 'hbox'.
        **kwargs: ``with_bbox``, ``with_label``, ``with_seg``, ``imdecode_backend``,
            ``backend_args`` as in ``mmcv.transforms.LoadAnnotations``.
    """

    def __init__(self,
                 with_mask: bool = False,
                 poly2mask: bool = True,
                 box_type: Optional[str] = 'hbox',
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if with_mask:
            raise NotImplementedError('LoadAnnotations: with_mask=True is not supported in ai4rs')
        self.with_mask = with_mask
        self.poly2mask = poly2mask
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
                    f"LoadAnnotations(box_type={self.box_type!r}): instance {i} of "
                    f"{results.get('img_path', results.get('img_id', '?'))} has a bbox of "
                    f'{len(bbox)} numbers, expected {self._box_dim}')
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

    def transform(self, results: dict) -> dict:
        if self.with_bbox:
            self._load_bboxes(results)
        if self.with_label:
            self._load_labels(results)
        if self.with_seg:
            self._load_seg_map(results)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(with_bbox={self.with_bbox}, '
                f'with_label={self.with_label}, with_seg={self.with_seg}, '
                f'box_type={self.box_type!r}, imdecode_backend={self.imdecode_backend!r}, '
                f'backend_args={self.backend_args})')


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
            raise TypeError('LoadImageFromNDArray needs results["img"] as an (H, W[, C]) '
                            f'ndarray, got {type(img).__name__}')
        img = to_uint8(img, self.to_uint8)
        if self.to_float32:
            img = img.astype(np.float32)
        results['img_path'] = None
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results
