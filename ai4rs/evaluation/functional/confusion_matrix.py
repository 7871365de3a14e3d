"""Detection confusion matrix (mmdet 3.x's ``tools/analysis_tools/confusion_matrix.py`` rules).

The matrix is ``(num_classes + 1, num_classes + 1)`` int64 counts: rows are ground truth
classes, columns predicted classes, and the last row / column is *background*:

- a detection with ``score >= score_thr`` and IoU ``>= tp_iou_thr`` with a ground truth adds
  one to ``[gt class, det class]``, for every such ground truth (mmdet's rule: the overlap test
  ignores the classes, and a detection that overlaps two objects counts twice);
- a detection above the threshold that overlaps no ground truth adds to ``[background, det
  class]`` (a false positive on background);
- a ground truth that no detection *of its class* overlaps adds to ``[gt class, background]``
  (a missed object; it may also appear in a wrong-class cell, as in mmdet).

Ignored ground truth (``ignored_instances``: DOTA objects above ``diff_thr``, COCO crowd
boxes) is neither counted nor missed: a detection that overlaps only ignored objects adds
nothing (mmdet counts ignored objects as ordinary ground truth).

The IoU is chosen by the ground truth's box type: :class:`RotatedBoxes` (and
:class:`QuadriBoxes`, converted to rotated boxes) use the exact rotated IoU
(:func:`ai4rs.ops.box_iou_rotated`), :class:`HorizontalBoxes` the axis-aligned one
(:func:`ai4rs.structures.bbox.bbox_overlaps`). Predictions are read as boxes of that type.
"""

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from ai4rs.ops import box_iou_rotated, nms, nms_rotated
from ai4rs.structures.bbox import (
    BaseBoxes,
    HorizontalBoxes,
    QuadriBoxes,
    RotatedBoxes,
    bbox_overlaps,
)


def _as_matching_boxes(boxes: BaseBoxes) -> BaseBoxes:
    """Quadrilaterals become rotated boxes; other types are kept."""
    return boxes.convert_to('rbox') if isinstance(boxes, QuadriBoxes) else boxes


def typed_predictions(bboxes, gt_bboxes: BaseBoxes, where: str = 'predictions') -> BaseBoxes:
    """Predicted boxes as a box object of the ground truth's (matching) type.

    Args:
        bboxes (Tensor | BaseBoxes): (n, box_dim) predictions, or a box object.
        gt_bboxes (BaseBoxes): the image's ground truth; its type decides.
        where (str): named in the error.

    Raises:
        ValueError: the predictions' width is not the box dimension of that type (e.g. (n, 4)
            predictions against rotated ground truth).
    """
    cls = type(_as_matching_boxes(gt_bboxes))
    if isinstance(bboxes, BaseBoxes):
        return _as_matching_boxes(bboxes).convert_to(cls)
    tensor = torch.as_tensor(bboxes, dtype=torch.float32)
    if tensor.numel() == 0:
        tensor = tensor.reshape(0, cls.box_dim)
    if tensor.ndim != 2 or tensor.shape[1] != cls.box_dim:
        raise ValueError(
            f'{where}: boxes of shape {tuple(tensor.shape)}, but the ground truth is '
            f'{cls.__name__} of {cls.box_dim} numbers per box: were the results made by a '
            'model of this box type?'
        )
    return cls(tensor)


def box_ious(det_bboxes: BaseBoxes, gt_bboxes: BaseBoxes) -> Tensor:
    """(n, m) IoU of detections and ground truths, chosen by the ground truth's box type.

    Args:
        det_bboxes (BaseBoxes): n detections, of the ground truth's type (see
            :func:`typed_predictions`).
        gt_bboxes (BaseBoxes): m ground truths: HorizontalBoxes (x1, y1, x2, y2),
            RotatedBoxes (cx, cy, w, h, t) or QuadriBoxes (converted to rotated boxes).
    """
    gt = _as_matching_boxes(gt_bboxes)
    det = _as_matching_boxes(det_bboxes)
    if type(det) is not type(gt):
        raise TypeError(f'detections are {type(det).__name__}, ground truth {type(gt).__name__}')
    if isinstance(gt, RotatedBoxes):
        return box_iou_rotated(det.tensor.double(), gt.tensor.double()).float()
    if isinstance(gt, HorizontalBoxes):
        return bbox_overlaps(det.tensor.float(), gt.tensor.float())
    raise TypeError(f'no IoU for ground truth of type {type(gt).__name__}')


def _nms_keep(bboxes: BaseBoxes, scores: Tensor, iou_thr: float) -> Tensor:
    """Indices kept by NMS of one class's detections, by score descending."""
    if isinstance(bboxes, RotatedBoxes):
        _, keep = nms_rotated(bboxes.tensor.float(), scores.float(), iou_thr)
    else:
        _, keep = nms(bboxes.tensor.float(), scores.float(), iou_thr)
    return keep.long()


def analyze_per_img_dets(
    confusion_matrix: np.ndarray,
    gt_bboxes: BaseBoxes,
    gt_labels: Tensor,
    det_bboxes: BaseBoxes,
    det_scores: Tensor,
    det_labels: Tensor,
    score_thr: float = 0.0,
    tp_iou_thr: float = 0.5,
    nms_iou_thr: float | None = None,
    ignored_bboxes: BaseBoxes | None = None,
) -> None:
    """Add one image's counts to ``confusion_matrix`` (in place); see the module docstring.

    Args:
        confusion_matrix (ndarray): (C + 1, C + 1) counts, rows = ground truth.
        gt_bboxes (BaseBoxes): (m, box_dim) ground truth kept for evaluation.
        gt_labels (Tensor): (m,) int64 labels in [0, C).
        det_bboxes (BaseBoxes): (n, box_dim) detections, of the ground truth's type.
        det_scores (Tensor): (n,) scores.
        det_labels (Tensor): (n,) int64 labels in [0, C).
        score_thr (float): detections with a score below it are left out.
        tp_iou_thr (float): IoU at which a detection overlaps a ground truth.
        nms_iou_thr (float, optional): when set, each class's detections first go through NMS
            at this IoU (rotated NMS for rotated boxes).
        ignored_bboxes (BaseBoxes, optional): ignored ground truth (never counted).
    """
    gt_labels = torch.as_tensor(gt_labels).long().reshape(-1)
    det_scores = torch.as_tensor(det_scores).reshape(-1)
    det_labels = torch.as_tensor(det_labels).long().reshape(-1)
    true_positives = np.zeros(len(gt_labels), dtype=np.int64)
    for det_label in torch.unique(det_labels).tolist():
        mask = det_labels == det_label
        boxes, scores = det_bboxes[mask], det_scores[mask]
        if nms_iou_thr is not None and len(scores):
            keep = _nms_keep(boxes, scores, nms_iou_thr)
            boxes, scores = boxes[keep], scores[keep]
        above = scores >= score_thr
        boxes, scores = boxes[above], scores[above]
        if not len(scores):
            continue
        ious = box_ious(boxes, gt_bboxes).numpy() if len(gt_labels) else np.zeros((len(scores), 0))
        hits = ious >= tp_iou_thr
        ignored = np.zeros(len(scores), dtype=bool)
        if ignored_bboxes is not None and len(ignored_bboxes):
            ignored = (box_ious(boxes, ignored_bboxes).numpy() >= tp_iou_thr).any(axis=1)
        for i in range(len(scores)):
            matched = np.flatnonzero(hits[i])
            for j in matched:
                gt_label = int(gt_labels[j])
                confusion_matrix[gt_label, det_label] += 1
                if gt_label == det_label:
                    true_positives[j] += 1
            if not len(matched) and not ignored[i]:
                confusion_matrix[-1, det_label] += 1
    for num_tp, gt_label in zip(true_positives, gt_labels.tolist()):
        if num_tp == 0:
            confusion_matrix[gt_label, -1] += 1


def calculate_confusion_matrix(
    samples: Sequence[dict],
    num_classes: int,
    score_thr: float = 0.0,
    tp_iou_thr: float = 0.5,
    nms_iou_thr: float | None = None,
) -> np.ndarray:
    """The confusion matrix of a dataset's predictions.

    Args:
        samples (list[dict]): one per image (e.g.
            :attr:`ai4rs.evaluation.offline.OfflineResults.samples`): ``pred_instances``
            (``bboxes`` (n, box_dim) Tensor or box object, ``scores`` (n,), ``labels`` (n,)),
            ``gt_instances`` (``bboxes`` box object, ``labels`` (m,)) and optionally
            ``ignored_instances`` (the same).
        num_classes (int): C.
        score_thr, tp_iou_thr, nms_iou_thr: see :func:`analyze_per_img_dets`.

    Returns:
        ndarray: (C + 1, C + 1) int64 counts; rows ground truth, columns predictions, the last
        of each is background.

    Raises:
        ValueError: a label outside [0, C) or predictions not of the ground truth's box type
            (the message names the image).
    """
    if not 0 < tp_iou_thr <= 1:
        raise ValueError(f'tp_iou_thr must be in (0, 1], got {tp_iou_thr}')
    matrix = np.zeros((num_classes + 1, num_classes + 1), dtype=np.int64)
    for i, sample in enumerate(samples):
        where = f'image {i} ({sample.get("img_path", sample.get("img_id"))})'
        gt, pred = sample['gt_instances'], sample['pred_instances']
        ignored = sample.get('ignored_instances') or {}
        for what, labels in (('ground truth', gt['labels']), ('predicted', pred['labels'])):
            labels = torch.as_tensor(labels).reshape(-1)
            if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
                raise ValueError(
                    f'{where}: {what} label {int(labels.max())} outside the {num_classes} classes'
                )
        analyze_per_img_dets(
            matrix,
            gt['bboxes'],
            gt['labels'],
            typed_predictions(pred['bboxes'], gt['bboxes'], where),
            pred['scores'],
            pred['labels'],
            score_thr=score_thr,
            tp_iou_thr=tp_iou_thr,
            nms_iou_thr=nms_iou_thr,
            ignored_bboxes=ignored.get('bboxes'),
        )
    return matrix
