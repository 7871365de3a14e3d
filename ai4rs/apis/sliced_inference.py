"""Inference on images larger than the model input: overlapping patches, merged by rotated NMS."""
import copy
import os.path as osp
import sys

import cv2
import numpy as np
import torch
from mmengine.dataset import Compose
from mmengine.structures import InstanceData
from mmengine.utils import ProgressBar

from ai4rs.structures import DetDataSample

from .inference import _test_pipeline_cfg


def _merge_predictions(bboxes, scores, labels, iou_thr):
    """Class-aware NMS over the patches' predictions (rotated NMS for rboxes)."""
    from ai4rs.ops import batched_nms
    if len(scores) == 0:
        return torch.zeros(0, dtype=torch.long)
    if bboxes.box_dim == 8:
        raise ValueError('merging qbox predictions is not supported: predict rboxes')
    nms_type = 'nms_rotated' if bboxes.box_dim == 5 else 'nms'
    _, keep = batched_nms(bboxes.tensor, scores, labels,
                          dict(type=nms_type, iou_threshold=iou_thr))
    return keep


def inference_detector_by_patches(model, img, sizes=(1024, ), steps=(824, ), ratios=(1.0, ),
                                  merge_iou_thr=0.1, batch_size=4, pad_value=114,
                                  progress=None):
    """Detect on a large image by running the model on overlapping patches.

    The image is (optionally) rescaled by each ratio, cut into ``size`` x
    ``size`` windows every ``step`` pixels (the last window of a row or column
    is moved back to the border; patches at the edges are padded with
    ``pad_value``), the patches go through the model's test pipeline in
    batches, their predictions are moved back to full-image coordinates and
    merged per class by rotated NMS at ``merge_iou_thr``.

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

    Returns:
        DetDataSample: ``pred_instances`` (``bboxes`` in full-image
        coordinates, ``scores``, ``labels``) and ``ori_shape``.
    """
    from ai4rs.datasets.dota_split import crop_patch, get_sliding_windows
    from ai4rs.datasets.image_io import config_to_uint8_rule, read_image, to_uint8
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
    pipeline = Compose(_test_pipeline_cfg(model.cfg, from_array=True))
    height, width = img.shape[:2]

    jobs = []  # (ratio, window, patch)
    for ratio in ratios:
        scaled = img if ratio == 1 else cv2.resize(
            img, (max(1, round(width * ratio)), max(1, round(height * ratio))),
            interpolation=cv2.INTER_LINEAR)
        windows = get_sliding_windows(scaled.shape[1], scaled.shape[0], sizes,
                                      [s - t for s, t in zip(sizes, steps)], img_rate_thr=0.0)
        for window in windows:
            jobs.append((ratio, window, scaled))

    if progress is None:
        progress = sys.stdout.isatty()
    bar = ProgressBar(len(jobs)) if progress else None
    all_boxes, all_scores, all_labels = [], [], []
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start:start + batch_size]
        inputs, samples = [], []
        for i, (ratio, window, scaled) in enumerate(chunk):
            patch = crop_patch(scaled, window, padding_value=pad_value)
            data = pipeline(dict(img=np.ascontiguousarray(patch), img_id=start + i))
            inputs.append(data['inputs'])
            samples.append(data['data_samples'])
        with torch.no_grad():
            results = model.test_step(dict(inputs=inputs, data_samples=samples))
        for (ratio, window, _), result in zip(chunk, results):
            pred = result.pred_instances
            boxes = copy.deepcopy(pred.bboxes)
            boxes.translate_([float(window[0]), float(window[1])])
            if ratio != 1:
                boxes.rescale_([1.0 / ratio, 1.0 / ratio])
            all_boxes.append(boxes)
            all_scores.append(pred.scores)
            all_labels.append(pred.labels)
        if bar is not None:
            bar.update(len(chunk))

    bboxes = type(all_boxes[0]).cat(all_boxes)
    scores, labels = torch.cat(all_scores), torch.cat(all_labels)
    keep = _merge_predictions(bboxes, scores, labels, merge_iou_thr)
    out = DetDataSample(metainfo=dict(ori_shape=(height, width), img_shape=(height, width)))
    out.pred_instances = InstanceData(bboxes=bboxes[keep], scores=scores[keep],
                                      labels=labels[keep])
    return out
