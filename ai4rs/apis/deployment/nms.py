"""NMS inside an exported graph: ONNX ``NonMaxSuppression`` with an equal PyTorch forward.

ONNX has a horizontal-box NMS operator only: :func:`graph_nms_supported` says whether a
model's box type can end its graph with NMS (rotated boxes cannot: their NMS runs after the
graph, in :meth:`BaseDenseHead.postprocess_decoded`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ai4rs.structures.bbox import BaseBoxes, HorizontalBoxes


def graph_nms_supported(box_type: type[BaseBoxes]) -> bool:
    """Whether an exported graph can run NMS on boxes of ``box_type`` (``HorizontalBoxes``)."""
    return issubclass(box_type, HorizontalBoxes)


class MultiClassNMS(torch.autograd.Function):
    """ONNX ``NonMaxSuppression`` with an equal PyTorch forward (for tracing).

    ``boxes`` (1, P, 4) x1, y1, x2, y2 and ``scores`` (1, K, P) -> (M, 3) int64 rows
    (batch, class, box): per class, the boxes with score > ``score_thr`` kept by NMS
    (suppressed when IoU > ``iou_thr``), best first, at most ``max_per_class``.
    """

    @staticmethod
    def forward(
        ctx, boxes: Tensor, scores: Tensor, max_per_class: int, iou_thr: float, score_thr: float
    ) -> Tensor:
        from ai4rs.ops import nms

        rows = []
        for k in range(scores.size(1)):
            valid = (scores[0, k] > score_thr).nonzero()[:, 0]
            _, keep = nms(boxes[0, valid], scores[0, k, valid], iou_thr, max_num=max_per_class)
            inds = valid[keep]
            rows.append(torch.stack([torch.zeros_like(inds), torch.full_like(inds, k), inds], 1))
        return torch.cat(rows) if rows else boxes.new_zeros((0, 3), dtype=torch.long)

    @staticmethod
    def symbolic(g, boxes, scores, max_per_class, iou_thr, score_thr):
        def const(value, dtype):
            return g.op('Constant', value_t=torch.tensor([value], dtype=dtype))

        return g.op(
            'NonMaxSuppression',
            boxes,
            scores,
            const(max_per_class, torch.long),
            const(iou_thr, torch.float32),
            const(score_thr, torch.float32),
        )


def graph_nms(boxes: Tensor, scores: Tensor, cfg: dict) -> tuple[Tensor, Tensor, Tensor]:
    """Class-aware NMS of one image's decoded outputs, traceable to ONNX.

    Args:
        boxes (Tensor): (1, P, 4) x1, y1, x2, y2.
        scores (Tensor): (1, P, K).
        cfg (dict): the head's test config: ``score_thr``, ``nms.iou_threshold``,
            ``max_per_img``, ``multi_label``.

    Returns:
        tuple[Tensor, Tensor, Tensor]: ``dets`` (N, 4), ``scores`` (N,), ``labels`` (N,),
        best first, at most ``max_per_img``.
    """
    max_per_img = int(cfg.get('max_per_img') or 10000)
    iou_thr = float(cfg['nms'].get('iou_threshold', 0.7))
    score_thr = float(cfg.get('score_thr', 0.0))
    if cfg.get('multi_label', False) and scores.size(-1) > 1:
        sel = MultiClassNMS.apply(boxes, scores.transpose(1, 2), max_per_img, iou_thr, score_thr)
        labels, inds = sel[:, 1], sel[:, 2]
        det_scores = scores[0, inds, labels]
    else:  # one label per prior: class-aware NMS by offsetting each class's boxes
        best, best_labels = scores[0].max(-1)
        offsets = best_labels[:, None].to(boxes.dtype) * (boxes.max() + 1)
        sel = MultiClassNMS.apply(
            boxes + offsets[None], best[None, None], max_per_img, iou_thr, score_thr
        )
        inds = sel[:, 2]
        labels, det_scores = best_labels[inds], best[inds]
    order = det_scores.argsort(descending=True)[:max_per_img]
    return boxes[0, inds[order]], det_scores[order], labels[order]
