"""Collate functions of the YOLO recipes.

Registered in ``ai4rs.registry.FUNCTIONS`` and, like mmyolo's, also in mmengine's root
``FUNCTIONS``: mmengine's Runner looks a ``collate_fn`` type up in the root registry without the
config's default scope, so ``collate_fn=dict(type='yolow_collate')`` (upstream's spelling) only
resolves there (``'ai4rs.yolow_collate'`` works either way).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS

from ai4rs.registry import FUNCTIONS


@FUNCTIONS.register_module(name=['yolov5_collate', 'yolow_collate'])
def yolov5_collate(data_batch: Sequence[dict], use_ms_training: bool = False) -> dict:
    """Batch packed samples with the ground truth flattened for a vectorised assigner
    (mmyolo's ``yolov5_collate``; YOLO-World's ``yolow_collate`` is the same plus texts).

    Args:
        data_batch: outputs of ``PackDetInputs``: ``inputs`` (C, H, W) tensors of one
            shape (unless ``use_ms_training``) and ``data_samples`` whose ``gt_instances``
            hold ``bboxes`` (a box object, (N_i, 4) [x1, y1, x2, y2]) and ``labels`` (N_i,).
        use_ms_training (bool): keep ``inputs`` as a list (images of different sizes).

    Returns:
        dict: ``inputs``: (B, C, H, W) tensor (or a list); ``data_samples``: a dict with
        ``bboxes_labels`` (sum N_i, 6) float ``[img_idx, label, x1, y1, x2, y2]`` (the
        labels' dtype promoted to the boxes' float dtype), ``texts`` (list of B lists of
        prompts) when the samples carry ``texts``, ``masks`` (sum N_i, H, W) bool when
        ``gt_instances`` has masks (tensors, or ``PolygonMasks`` rasterised).
    """
    if len(data_batch) == 0:
        raise ValueError('yolov5_collate: empty batch')
    imgs, rows, masks = [], [], []
    for i, sample in enumerate(data_batch):
        data_sample = sample['data_samples']
        imgs.append(sample['inputs'])
        gt = data_sample.gt_instances
        bboxes = gt.bboxes
        bboxes = bboxes.tensor if hasattr(bboxes, 'tensor') else torch.as_tensor(bboxes)
        bboxes = bboxes.reshape(-1, 4)
        labels = gt.labels.reshape(-1)
        if len(labels) != len(bboxes):
            raise ValueError(
                f'yolov5_collate: sample {i} has {len(bboxes)} boxes but {len(labels)} labels'
            )
        if 'masks' in gt:
            gt_masks = gt.masks
            if hasattr(gt_masks, 'to_ndarray'):  # PolygonMasks: rasterised (as mmyolo)
                gt_masks = gt_masks.to_ndarray()
            masks.append(torch.as_tensor(gt_masks).to(dtype=torch.bool, device=bboxes.device))
        idx = bboxes.new_full((len(labels), 1), i)
        rows.append(torch.cat((idx, labels[:, None].to(bboxes.dtype), bboxes), dim=1))
    data_samples = {'bboxes_labels': torch.cat(rows, 0)}
    if masks:
        data_samples['masks'] = torch.cat(masks, 0)
    first = data_batch[0]['data_samples']
    if 'texts' in first:
        data_samples['texts'] = [sample['data_samples'].texts for sample in data_batch]
    if 'is_detection' in first:
        data_samples['is_detection'] = torch.tensor(
            [sample['data_samples'].is_detection for sample in data_batch]
        )
    inputs = imgs if use_ms_training else torch.stack(imgs, 0)
    return {'inputs': inputs, 'data_samples': data_samples}


for _name in ('yolov5_collate', 'yolow_collate'):
    if MMENGINE_FUNCTIONS.get(_name) is None:
        MMENGINE_FUNCTIONS.register_module(name=_name, module=yolov5_collate)
