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

The inference contract (what ``ai4rs.apis`` -- inference, sliced inference, export and the
ONNX runtime wrapper -- use, and all they use, of a head):

- ``box_type``: the box class the head predicts (``HorizontalBoxes``, ``RotatedBoxes``...);
- :meth:`decode_by_feat`: per-level ``forward`` outputs -> decoded boxes ``(B, P, box_dim)``
  in network-input pixels and final per-class scores ``(B, P, K)`` of every prior (what an
  exported graph returns);
- :meth:`select_candidates`: one image's decoded rows -> the candidates that enter
  post-processing (score threshold, ``nms_pre``, one or several labels per prior), as the
  head's test config says;
- :meth:`finish_detections`: rescale to the original image, NMS, ``max_per_img``, clipping;
- :meth:`postprocess_decoded` = select + finish, and :meth:`predict_by_feat` = decode +
  :meth:`postprocess_batch` (:meth:`select_candidates_batch`, one vectorised selection over
  the batch, then finish per image: the same results as ``postprocess_decoded`` image by
  image), so the PyTorch model and an exported graph share one code path.

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

    Subclasses define ``forward``, :meth:`loss_by_feat`, ``box_type``, :meth:`decode_by_feat`
    and :meth:`select_candidates`, and a ``prior_generator`` when they use :meth:`flat_priors`.

    Attributes:
        box_type (type[BaseBoxes]): the box class of the predictions.
        clip_to_image (bool): :meth:`finish_detections` clips the boxes to the image
            (``ori_shape`` when rescaled, else ``img_shape``). Defaults to False.
    """

    box_type: type[BaseBoxes]
    clip_to_image: bool = False

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

    def predict_by_feat(
        self,
        *outs: Sequence[Tensor],
        batch_img_metas: Sequence[dict] | None = None,
        cfg: dict | None = None,
        rescale: bool = False,
        with_nms: bool = True,
    ) -> list[InstanceData]:
        """Detections per image from the per-level outputs of ``forward``:
        :meth:`decode_by_feat`, then :meth:`postprocess_decoded` for each image.

        Args:
            *outs: the per-level output lists of ``forward``, in its order.
            batch_img_metas (Sequence[dict], optional): per image ``scale_factor``,
                ``ori_shape``, optional ``pad_param``, ``img_shape``; needed with ``rescale``.
            cfg (dict, optional): overrides ``self.test_cfg``.
            rescale (bool): boxes in original-image pixels (else network-input pixels).
            with_nms (bool): run class-aware NMS.

        Returns:
            list[InstanceData]: ``bboxes`` (``self.box_type``), ``scores`` (n,), ``labels``
            (n,), best first when NMS ran.
        """
        cfg = self.test_cfg if cfg is None else cfg
        if cfg is None:
            raise ValueError(f'{type(self).__name__}.predict_by_feat: no test_cfg given')
        boxes, scores = self.decode_by_feat(*outs)
        return self.postprocess_batch(boxes, scores, batch_img_metas, cfg, rescale, with_nms)

    def postprocess_batch(
        self,
        boxes: Tensor,
        scores: Tensor,
        batch_img_metas: Sequence[dict] | None = None,
        cfg: dict | None = None,
        rescale: bool = True,
        with_nms: bool = True,
    ) -> list[InstanceData]:
        """Detections of a batch from its decoded rows; the same results as
        :meth:`postprocess_decoded` image by image.

        Args:
            boxes (Tensor): (B, P, box_dim) boxes in network-input pixels.
            scores (Tensor): (B, P, K) scores.
            batch_img_metas (Sequence[dict], optional): B metas (see
                :meth:`postprocess_decoded`); needed with ``rescale``.
            cfg (dict, optional): overrides ``self.test_cfg``.
            rescale (bool): map the boxes to the original images.
            with_nms (bool): run class-aware NMS.

        Returns:
            list[InstanceData]: B results.
        """
        cfg = self.test_cfg if cfg is None else cfg
        if cfg is None:
            raise ValueError(f'{type(self).__name__}: no test_cfg given')
        if batch_img_metas is None:
            if rescale:
                raise ValueError(f'{type(self).__name__}: rescale needs batch_img_metas')
            batch_img_metas = [{} for _ in range(boxes.size(0))]
        if len(batch_img_metas) != boxes.size(0) or scores.shape[:2] != boxes.shape[:2]:
            raise ValueError(
                f'{type(self).__name__}: boxes {tuple(boxes.shape)}, scores '
                f'{tuple(scores.shape)} and {len(batch_img_metas)} image metas do not match'
            )
        candidates = self.select_candidates_batch(boxes, scores, cfg)
        if not (with_nms and self._nms_over_batch_applies(candidates, cfg)):
            return [
                self.finish_detections(results, cfg, img_meta, rescale, with_nms)
                for results, img_meta in zip(candidates, batch_img_metas)
            ]
        candidates = [
            self._rescale_and_filter(results, cfg, rescale, img_meta)
            for results, img_meta in zip(candidates, batch_img_metas)
        ]
        candidates = self._nms_over_batch(candidates, self._nms_cfg(cfg))
        return [
            self._clip(self._cap_per_image(results, cfg), img_meta or {}, rescale)
            for results, img_meta in zip(candidates, batch_img_metas)
        ]

    def _nms_over_batch_applies(self, candidates: list[InstanceData], cfg) -> bool:
        """One NMS call for the whole batch: rotated NMS only (its labels separate images
        and classes exactly, and one call over 3 x 1,024 clustered boxes took 0.7-0.9x the
        time of three; ``'nms'`` (torchvision) separates them by coordinate offsets, which
        round, and one call took 2-3x the time of three), and only where each image would
        also run in one pass (fewer boxes in all than ``split_thr``)."""
        nms_cfg = cfg.get('nms')
        if nms_cfg is None or len(candidates) < 2 or nms_cfg.get('type') != 'nms_rotated':
            return False
        return sum(len(c) for c in candidates) < nms_cfg.get('split_thr', 10000)

    @staticmethod
    def _nms_over_batch(candidates: list[InstanceData], nms_cfg: dict) -> list[InstanceData]:
        """Rotated NMS of every image's candidates in one call: label = image * K + label
        (image alone when class-agnostic), so boxes of different images never suppress each
        other. Each image keeps what its own call keeps, in the same order (descending
        score, ties in input order)."""
        counts = [len(c) for c in candidates]
        img_idxs = torch.repeat_interleave(
            torch.arange(len(counts), device=candidates[0].scores.device),
            torch.tensor(counts, device=candidates[0].scores.device),
        )
        labels = torch.cat([c.labels for c in candidates])
        nms_cfg = dict(nms_cfg)
        if nms_cfg.pop('class_agnostic', False):
            groups = img_idxs
        else:
            groups = img_idxs * (int(labels.max()) + 1 if labels.numel() else 1) + labels
        max_num = nms_cfg.pop('max_num', -1)
        det_bboxes, keep = batched_nms(
            torch.cat([c.bboxes.tensor for c in candidates]),
            torch.cat([c.scores for c in candidates]),
            groups,
            nms_cfg,
        )
        starts = [sum(counts[:i]) for i in range(len(counts))]
        out = []
        for i, results in enumerate(candidates):
            mine = img_idxs[keep] == i
            if max_num > 0:
                mine &= torch.cumsum(mine, 0) <= max_num
            kept = results[keep[mine] - starts[i]]
            kept.scores = det_bboxes[mine, -1]
            out.append(kept)
        return out

    def select_candidates_batch(
        self, boxes: Tensor, scores: Tensor, cfg: dict
    ) -> list[InstanceData]:
        """:meth:`select_candidates` of every image of a batch: (B, P, box_dim) boxes and
        (B, P, K) scores -> B ``InstanceData``. Heads override it with one vectorised
        selection over the batch (:meth:`split_by_image` splits its flat result); this
        default calls :meth:`select_candidates` image by image."""
        return [self.select_candidates(boxes[i], scores[i], cfg) for i in range(boxes.size(0))]

    def split_by_image(
        self, img_idxs: Tensor, num_imgs: int, bboxes: Tensor, scores: Tensor, labels: Tensor
    ) -> list[InstanceData]:
        """Candidates of a whole batch, grouped image by image (``img_idxs`` (M,)
        non-decreasing), -> ``num_imgs`` ``InstanceData`` with ``bboxes``
        (``self.box_type``), ``scores`` and ``labels``."""
        counts = torch.bincount(img_idxs, minlength=num_imgs).tolist()
        return [
            InstanceData(bboxes=self.box_type(b), scores=s, labels=la)
            for b, s, la in zip(
                bboxes.split(counts), scores.split(counts), labels.split(counts), strict=True
            )
        ]

    # ------------------------------------------------ the inference contract
    @abstractmethod
    def decode_by_feat(self, *outs: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        """Decoded boxes and final scores of every prior, before any filtering.

        Args:
            *outs: the per-level output lists of ``forward`` (eval mode), in its order.

        Returns:
            tuple[Tensor, Tensor]: ``boxes`` (B, P, box_dim) of ``self.box_type`` in
            network-input pixels, and ``scores`` (B, P, K) in [0, 1] (what the head ranks
            and thresholds: e.g. class probability times objectness).
        """

    @abstractmethod
    def select_candidates(self, boxes: Tensor, scores: Tensor, cfg: dict) -> InstanceData:
        """One image's candidates for post-processing, as the test config says.

        Args:
            boxes (Tensor): (P, box_dim) decoded boxes of one image.
            scores (Tensor): (P, K) their scores.
            cfg (dict): the test config (``score_thr``, ``nms_pre``, ``multi_label``...).

        Returns:
            InstanceData: ``bboxes`` (``self.box_type``), ``scores`` (n,), ``labels`` (n,).
        """

    def finish_detections(
        self,
        results: InstanceData,
        cfg: dict,
        img_meta: dict | None = None,
        rescale: bool = True,
        with_nms: bool = True,
    ) -> InstanceData:
        """Candidates -> detections: :meth:`_bbox_post_process` (rescale, ``min_bbox_size``,
        NMS, ``max_per_img``), then clipping when ``clip_to_image``. Also used for
        detections that already went through NMS elsewhere (``with_nms=False``)."""
        img_meta = img_meta or {}
        results = self._bbox_post_process(results, cfg, rescale, with_nms, img_meta)
        return self._clip(results, img_meta, rescale)

    def _clip(self, results: InstanceData, img_meta: dict, rescale: bool) -> InstanceData:
        """Clip the boxes to the image when ``clip_to_image`` (the last step of
        :meth:`finish_detections`)."""
        if self.clip_to_image:
            clip_shape = img_meta.get('ori_shape') if rescale else img_meta.get('img_shape')
            if clip_shape is not None:
                results.bboxes.clip_(clip_shape[:2])
        return results

    def postprocess_decoded(
        self,
        boxes: Tensor,
        scores: Tensor,
        img_meta: dict | None = None,
        cfg: dict | None = None,
        rescale: bool = True,
        with_nms: bool = True,
    ) -> InstanceData:
        """One image's detections from its decoded rows (one row of :meth:`decode_by_feat`'s
        outputs, or of an exported graph's): :meth:`select_candidates` then
        :meth:`finish_detections`.

        Args:
            boxes (Tensor): (P, box_dim) boxes in network-input pixels.
            scores (Tensor): (P, K) scores.
            img_meta (dict, optional): ``scale_factor``, ``ori_shape``, optional
                ``pad_param``; needed with ``rescale``.
            cfg (dict, optional): overrides ``self.test_cfg``.
            rescale (bool): map the boxes to the original image.
            with_nms (bool): run class-aware NMS.
        """
        cfg = self.test_cfg if cfg is None else cfg
        if cfg is None:
            raise ValueError(f'{type(self).__name__}: no test_cfg given')
        results = self.select_candidates(boxes, scores, cfg)
        return self.finish_detections(results, cfg, img_meta, rescale, with_nms)

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
        results = self._rescale_and_filter(results, cfg, rescale, img_meta)
        if with_nms and len(results) > 0:
            det_bboxes, keep = batched_nms(
                results.bboxes.tensor, results.scores, results.labels, self._nms_cfg(cfg)
            )
            results = results[keep]
            results.scores = det_bboxes[:, -1]
        return self._cap_per_image(results, cfg)

    def _nms_cfg(self, cfg) -> dict:
        nms_cfg = cfg.get('nms')
        if nms_cfg is None:
            raise ValueError(f'{type(self).__name__}: test_cfg.nms is required when with_nms')
        return dict(nms_cfg)

    def _rescale_and_filter(
        self, results: InstanceData, cfg, rescale: bool, img_meta: dict | None
    ) -> InstanceData:
        """The steps of :meth:`_bbox_post_process` before NMS: rescale, ``min_bbox_size``."""
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
        return results

    @staticmethod
    def _cap_per_image(results: InstanceData, cfg) -> InstanceData:
        """The step of :meth:`_bbox_post_process` after NMS: keep ``max_per_img``."""
        max_per_img = cfg.get('max_per_img')
        if max_per_img is not None and len(results) > max_per_img:
            results = results[results.scores.argsort(descending=True)[:max_per_img]]
        return results
