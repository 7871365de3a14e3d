"""IoU between rotated boxes, as an assigner's ``iou_calculator``."""

import torch
from torch import Tensor

from ai4rs.registry import TASK_UTILS
from ai4rs.structures.bbox import get_box_tensor, rbbox_overlaps


def clamp_rboxes(boxes: Tensor) -> Tensor:
    """(N, 5) rboxes with w, h >= 1e-3 and |cx|, |cy| <= 1e7 (as mmrotate does
    before its IoU), so that degenerate predictions get finite IoUs."""
    return torch.cat(
        [boxes[:, 0:2].clamp(min=-1e7, max=1e7), boxes[:, 2:4].clamp(min=1e-3), boxes[:, 4:5]],
        dim=1,
    )


@TASK_UTILS.register_module()
class RBboxOverlaps2D:
    """IoU calculator for rotated boxes (mmrotate's ``RBboxOverlaps2D``).

    ``__call__(bboxes1 (N, 5|6), bboxes2 (M, 5|6), mode='iou'|'iof', is_aligned=False)``
    returns (N, M), or (N,) if aligned; a 6th column (score) is dropped and box
    objects are accepted. Sizes and centres are clamped (:func:`clamp_rboxes`)
    and the exact polygon IoU is computed in float32 with autocast disabled.
    """

    def __call__(self, bboxes1, bboxes2, mode: str = 'iou', is_aligned: bool = False) -> Tensor:
        bboxes1, bboxes2 = get_box_tensor(bboxes1), get_box_tensor(bboxes2)
        for name, boxes in (('bboxes1', bboxes1), ('bboxes2', bboxes2)):
            if boxes.size(-1) not in (0, 5, 6):
                raise ValueError(
                    f'RBboxOverlaps2D: {name} must have 5 or 6 columns, '
                    f'got shape {tuple(boxes.shape)}'
                )
        if mode not in ('iou', 'iof'):
            raise ValueError(f"RBboxOverlaps2D: mode must be 'iou' or 'iof', got {mode!r}")
        bboxes1 = bboxes1[..., :5].reshape(-1, 5)
        bboxes2 = bboxes2[..., :5].reshape(-1, 5)
        if bboxes1.size(0) * bboxes2.size(0) == 0:
            shape = (bboxes1.size(0),) if is_aligned else (bboxes1.size(0), bboxes2.size(0))
            return bboxes1.new_zeros(shape)
        with torch.autocast(device_type=bboxes1.device.type, enabled=False):
            return rbbox_overlaps(
                clamp_rboxes(bboxes1.float()),
                clamp_rboxes(bboxes2.float()),
                mode=mode,
                is_aligned=is_aligned,
            )

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}()'
