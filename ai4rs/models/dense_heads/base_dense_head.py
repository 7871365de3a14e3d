"""The flow every dense (one-stage) head shares: loss / predict / post-processing.

A dense head predicts, for every prior (a point or anchor of every feature level), class
scores and a box. What differs between heads is the layers (``forward``), the losses
(``loss_by_feat``) and the decoding (``predict_by_feat``); what is the same lives here:

- ``loss(x, batch_data_samples)`` and ``predict(x, batch_data_samples, rescale)``: run
  ``forward`` and hand its per-level outputs to ``loss_by_feat`` / ``predict_by_feat``
  (mmdet 3.x's names and argument order, so heads port over);
- ``flatten_levels``: per-level ``(B, C, H, W)`` maps -> ``(B, P, C)`` rows, level after level;
- ``flat_priors``: the priors of all levels in the same order, from ``self.prior_generator``;
- ``_bbox_post_process``: map detections back to the original image through the letterbox
  padding (``pad_param``) and ``scale_factor``, on box *objects* (so a rotated box is rescaled
  as a rotated box), drop small boxes, class-aware NMS, keep ``max_per_img``.

Heads whose ``forward`` takes more than the image features (YOLO-World's takes text
features) call :meth:`loss_from_outputs` / :meth:`predict_from_outputs` with their own
forward outputs.
"""

from abc import ABCMeta, abstractmethod
from collections.abc import Sequence

import torch
from mmengine.model import BaseModule
from mmengine.structures import InstanceData
from torch import Tensor

from ai4rs.ops import batched_nms
from ai4rs.structures.bbox import BaseBoxes

from ..utils import unpack_gt_instances


class BaseDenseHead(BaseModule, metaclass=ABCMeta):
    """Base class of dense heads (mmdet 3.x's ``BaseDenseHead`` flow).

    Subclasses define ``forward``, :meth:`loss_by_feat` and :meth:`predict_by_feat`, and a
    ``prior_generator`` when they use :meth:`flat_priors`.
    """

    # ------------------------------------------------------------ training
    def loss(self, x: Sequence[Tensor], batch_data_samples: list) -> dict:
        """Losses of a batch from the neck's feature maps ``x`` (one per level)."""
        return self.loss_from_outputs(self(x), batch_data_samples)

    def loss_from_outputs(self, outs: tuple, batch_data_samples: list) -> dict:
        """``loss_by_feat(*outs, batch_gt_instances, batch_img_metas, batch_gt_instances_ignore)``
        with the ground truth unpacked from the data samples."""
        batch_gt_instances, batch_gt_instances_ignore, batch_img_metas = unpack_gt_instances(
            batch_data_samples
        )
        return self.loss_by_feat(
            *outs, batch_gt_instances, batch_img_metas, batch_gt_instances_ignore
        )

    @abstractmethod
    def loss_by_feat(self, *args, **kwargs) -> dict:
        """Losses from the per-level outputs of ``forward`` and the ground truth."""

    # ----------------------------------------------------------- inference
    def predict(
        self, x: Sequence[Tensor], batch_data_samples: list, rescale: bool = False
    ) -> list[InstanceData]:
        """Detections per image (``InstanceData`` with ``bboxes``, ``scores``, ``labels``)."""
        return self.predict_from_outputs(self(x), batch_data_samples, rescale=rescale)

    def predict_from_outputs(
        self, outs: tuple, batch_data_samples: list, rescale: bool = False
    ) -> list[InstanceData]:
        batch_img_metas = [data_sample.metainfo for data_sample in batch_data_samples]
        return self.predict_by_feat(*outs, batch_img_metas=batch_img_metas, rescale=rescale)

    @abstractmethod
    def predict_by_feat(self, *args, **kwargs) -> list[InstanceData]:
        """Detections per image from the per-level outputs of ``forward``."""

    # ------------------------------------------------------ multi-level maps
    @staticmethod
    def flatten_levels(maps: Sequence[Tensor], channels: int) -> Tensor:
        """List over levels of (B, channels, H, W) -> (B, P, channels), P = sum of H * W,
        levels in order and positions row-major within a level (the prior order)."""
        num_imgs = maps[0].size(0)
        return torch.cat(
            [m.permute(0, 2, 3, 1).reshape(num_imgs, -1, channels) for m in maps], dim=1
        )

    def flat_priors(self, featmaps: Sequence[Tensor], with_stride: bool = True) -> Tensor:
        """Priors of all levels for feature maps of these sizes, concatenated: (P, 4) as
        (x, y, stride_w, stride_h) with ``with_stride``, else (P, 2) as (x, y).

        Half-precision outputs get float32 priors (bfloat16 cannot even represent pixel
        coordinates of a 1024-px image)."""
        dtype = featmaps[0].dtype
        if dtype in (torch.float16, torch.bfloat16):
            dtype = torch.float32
        featmap_sizes = [featmap.shape[2:] for featmap in featmaps]
        return torch.cat(
            self.prior_generator.grid_priors(
                featmap_sizes, dtype=dtype, device=featmaps[0].device, with_stride=with_stride
            )
        )

    # ------------------------------------------------------ post-processing
    def _bbox_post_process(
        self,
        results: InstanceData,
        cfg,
        rescale: bool = False,
        with_nms: bool = True,
        img_meta: dict | None = None,
    ) -> InstanceData:
        """Rescale, filter, NMS and cap the detections of one image.

        Args:
            results (InstanceData): ``bboxes`` (a :class:`BaseBoxes` object, e.g.
                ``RotatedBoxes`` (K, 5) or ``HorizontalBoxes`` (K, 4)) in the network input's
                coordinates, ``scores`` (K,), ``labels`` (K,).
            cfg (dict): ``nms`` (the config of :func:`ai4rs.ops.batched_nms`; its ``type``
                chooses the op), optional ``min_bbox_size`` and ``max_per_img``.
            rescale (bool): map boxes to the original image: subtract the letterbox padding
                ``img_meta['pad_param']`` (top, bottom, left, right) if present, then divide
                by ``img_meta['scale_factor']`` (sx, sy) with the box type's own ``rescale_``
                (exact for rotated boxes under a non-uniform scale).
            with_nms (bool): run class-aware NMS.
            img_meta (dict): meta information of the image.

        Returns:
            InstanceData: the kept detections, highest score first when NMS ran.
        """
        if not isinstance(results.bboxes, BaseBoxes):
            raise TypeError(
                f'{type(self).__name__}: _bbox_post_process needs box objects '
                f'(RotatedBoxes, HorizontalBoxes, ...), got {type(results.bboxes)}'
            )
        img_meta = img_meta or {}
        if rescale:
            scale_factor = img_meta.get('scale_factor')
            if scale_factor is None:
                raise ValueError(
                    f'{type(self).__name__}: rescale=True needs img_meta["scale_factor"]'
                )
            bboxes = results.bboxes.clone()
            pad_param = img_meta.get('pad_param')
            if pad_param is not None:
                top, left = float(pad_param[0]), float(pad_param[2])
                bboxes.translate_((-left, -top))
            sx, sy = float(scale_factor[0]), float(scale_factor[1])
            bboxes.rescale_((1.0 / sx, 1.0 / sy))
            results.bboxes = bboxes

        min_bbox_size = cfg.get('min_bbox_size', -1)
        if min_bbox_size >= 0 and len(results) > 0:
            valid = (results.bboxes.widths > min_bbox_size) & (
                results.bboxes.heights > min_bbox_size
            )
            if not bool(valid.all()):
                results = results[valid]

        if with_nms and len(results) > 0:
            nms_cfg = cfg.get('nms')
            if nms_cfg is None:
                raise ValueError(f'{type(self).__name__}: test_cfg.nms is required when with_nms')
            det_bboxes, keep = batched_nms(
                results.bboxes.tensor, results.scores, results.labels, dict(nms_cfg)
            )
            results = results[keep]
            results.scores = det_bboxes[:, -1]
        max_per_img = cfg.get('max_per_img')
        if max_per_img is not None and len(results) > max_per_img:
            results = results[results.scores.argsort(descending=True)[:max_per_img]]
        return results
