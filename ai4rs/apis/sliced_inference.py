"""Inference on images larger than the model input: overlapping patches, merged by rotated NMS."""

import copy
import os.path as osp
import sys

import cv2
import numpy as np
import torch
from mmengine.structures import InstanceData
from mmengine.utils import ProgressBar

from ai4rs.datasets.image_io import config_to_uint8_rule, read_image, to_uint8
from ai4rs.datasets.sliding_windows import crop_patch, get_sliding_windows
from ai4rs.evaluation.functional import merge_patch_boxes
from ai4rs.structures import DetDataSample
from ai4rs.structures.bbox import BaseBoxes

from .inference import model_vocabulary
from .pipeline import build_inference_pipeline, pipeline_input


def patch_boxes_to_image(
    boxes: BaseBoxes, origin: tuple[float, float], scale: tuple[float, float] = (1.0, 1.0)
) -> BaseBoxes:
    """Boxes predicted on a patch, in full-image coordinates (a new box object).

    The patch was cut at ``origin = (x, y)`` from the image resized by ``(rx, ry)``; its boxes
    are translated by ``origin`` and then rescaled by ``scale = (1 / rx, 1 / ry)`` with the
    box type's own ``rescale_`` (``RotatedBoxes``: exact for ``rx = ry``, the mmrotate
    approximation of the sheared rectangle otherwise).

    Args:
        boxes (BaseBoxes): (N, box_dim) boxes in patch pixels.
        origin (tuple[float, float]): the patch's top-left corner in the resized image.
        scale (tuple[float, float]): ``(sx, sy)`` from the resized image back to the image.
    """
    boxes = copy.deepcopy(boxes)
    boxes.translate_([float(origin[0]), float(origin[1])])
    if tuple(scale) != (1.0, 1.0):
        boxes.rescale_([float(scale[0]), float(scale[1])])
    return boxes


def inference_detector_by_patches(
    model,
    img,
    sizes=(1024,),
    steps=(824,),
    ratios=(1.0,),
    merge_iou_thr=0.1,
    batch_size=4,
    pad_value=114,
    progress=None,
    texts=None,
):
    """Detect on a large image by running the model on overlapping patches.

    The image is (optionally) rescaled by each ratio, cut into ``size`` x
    ``size`` windows every ``step`` pixels (the last window of a row or column
    is moved back to the border; patches at the edges are padded with
    ``pad_value``), the patches go through the model's test pipeline in
    batches, their predictions are moved back to full-image coordinates
    (:func:`patch_boxes_to_image`) and merged per class at ``merge_iou_thr`` by
    :func:`ai4rs.evaluation.functional.merge_patch_boxes`, the routine that also
    merges DOTA patch results.

    Args:
        model (nn.Module): from :func:`init_detector`.
        img (str | ndarray): image file or BGR uint8 array (H, W, 3).
        sizes (Sequence[int]): patch sizes (pixels of the rescaled image).
        steps (Sequence[int]): patch strides, one per size (< size).
        ratios (Sequence[float]): image scales to run at.
        merge_iou_thr (float): IoU threshold of the final NMS.
        batch_size (int): patches per forward pass.
        pad_value (int | tuple): fill value of padded patch borders.
        progress (bool, optional): show a progress bar; ``None`` (default): when stdout
            is a terminal.
        texts (list[str], optional): the vocabulary of an open-vocabulary model (as for
            :func:`ai4rs.apis.inference_detector`); labels index these texts.

    Returns:
        DetDataSample: ``pred_instances`` (``bboxes`` in full-image
        coordinates, ``scores``, ``labels``) and ``ori_shape``.
    """
    # the whole image is brought to 8 bits once, by the test pipeline's rule, so every
    # patch sees the same conversion (a per-patch bit depth or percentile would differ)
    rule = config_to_uint8_rule(model.cfg)
    if isinstance(img, str):
        if not osp.isfile(img):
            raise FileNotFoundError(f'image {img} does not exist')
        img = read_image(img, to_uint8_rule=rule)
    else:
        img = to_uint8(img, rule)
    if len(sizes) != len(steps):
        raise ValueError(f'sizes and steps must have the same length, got {sizes}, {steps}')
    for size, step in zip(sizes, steps):
        if not 0 < step <= size:
            raise ValueError(f'each step must be in (0, size], got size {size}, step {step}')
    predictor = PatchPredictor(model, texts)
    height, width = img.shape[:2]

    jobs = []  # (ratio, window, patch)
    for ratio in ratios:
        scaled = (
            img
            if ratio == 1
            else cv2.resize(
                img,
                (max(1, round(width * ratio)), max(1, round(height * ratio))),
                interpolation=cv2.INTER_LINEAR,
            )
        )
        windows = get_sliding_windows(
            scaled.shape[1],
            scaled.shape[0],
            sizes,
            [s - t for s, t in zip(sizes, steps)],
            img_rate_thr=0.0,
        )
        for window in windows:
            jobs.append((ratio, window, scaled))

    if progress is None:
        progress = sys.stdout.isatty()
    bar = ProgressBar(len(jobs)) if progress else None
    all_boxes, all_scores, all_labels = [], [], []
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start : start + batch_size]
        patches = [crop_patch(scaled, win, padding_value=pad_value) for _, win, scaled in chunk]
        for (ratio, window, scaled), pred in zip(chunk, predictor(patches, first_id=start)):
            # the exact per-axis factors of the resize (the sizes were rounded)
            scale = (width / scaled.shape[1], height / scaled.shape[0])
            all_boxes.append(patch_boxes_to_image(pred.bboxes, window[:2], scale))
            all_scores.append(pred.scores)
            all_labels.append(pred.labels)
        if bar is not None:
            bar.update(len(chunk))
    return merge_detections(
        all_boxes, all_scores, all_labels, merge_iou_thr, (height, width), predictor.vocab
    )


class PatchPredictor:
    """Runs a model on image patches (arrays), a batch per forward pass.

    The one path from patches to patch-pixel predictions, shared by sliced inference
    (:func:`inference_detector_by_patches`) and scene inference
    (:func:`ai4rs.apis.inference_scene`): the config's test pipeline for arrays (with the
    texts of an open-vocabulary model), then ``model.test_step``.

    Args:
        model (nn.Module): from :func:`init_detector`.
        texts (list[str], optional): the vocabulary of an open-vocabulary model (as for
            :func:`ai4rs.apis.inference_detector`); labels index these texts.
    """

    def __init__(self, model, texts=None):
        self.model = model
        self.vocab = model_vocabulary(model, texts)
        self.pipeline = build_inference_pipeline(
            model.cfg, from_array=True, with_texts=self.vocab is not None
        )

    def __call__(self, patches, first_id: int = 0) -> list[InstanceData]:
        """``patches``: BGR uint8 arrays (h, w, 3) -> one ``InstanceData`` each (``bboxes``
        in patch pixels as the model's box type, ``scores``, ``labels``)."""
        if not patches:
            return []
        inputs, samples = [], []
        for i, patch in enumerate(patches):
            data = pipeline_input(np.ascontiguousarray(patch), first_id + i, self.vocab)
            data = self.pipeline(data)
            inputs.append(data['inputs'])
            samples.append(data['data_samples'])
        with torch.no_grad():
            results = self.model.test_step(dict(inputs=inputs, data_samples=samples))
        return [result.pred_instances for result in results]


def merge_detections(
    boxes: list[BaseBoxes],
    scores: list[torch.Tensor],
    labels: list[torch.Tensor],
    iou_thr: float,
    shape: tuple[int, int],
    vocab: list[str] | None = None,
) -> DetDataSample:
    """Patch predictions already in image coordinates, merged by the class-aware NMS of
    :func:`ai4rs.evaluation.functional.merge_patch_boxes`.

    Args:
        boxes, scores, labels (list): per patch, ``(n_i, box_dim)`` box objects of one type,
            ``(n_i,)`` scores and ``(n_i,)`` labels. At least one patch.
        iou_thr (float): IoU threshold of the merge.
        shape (tuple[int, int]): the image's (height, width).
        vocab (list[str], optional): the texts the labels index (stored as ``texts``).

    Returns:
        DetDataSample: ``pred_instances`` (``bboxes``, ``scores``, ``labels``), ``ori_shape``,
        ``img_shape`` (and ``texts``).
    """
    bboxes = type(boxes[0]).cat(boxes)
    scores, labels = torch.cat(scores), torch.cat(labels)
    keep = merge_patch_boxes(bboxes, scores, labels, iou_thr)
    metainfo = dict(ori_shape=tuple(shape), img_shape=tuple(shape))
    if vocab is not None:
        metainfo['texts'] = list(vocab)
    out = DetDataSample(metainfo=metainfo)
    out.pred_instances = InstanceData(bboxes=bboxes[keep], scores=scores[keep], labels=labels[keep])
    return out
