"""The result of assigning ground truths to predictions (mmdet's ``AssignResult``)."""

import torch
from torch import Tensor


class AssignResult:
    """Which ground truth (if any) each prediction is assigned to.

    Args:
        num_gts (int): number of ground truths considered.
        gt_inds (LongTensor): (num_preds,) 1-based index of the assigned GT;
            0 means background, -1 means ignored.
        max_overlaps (Tensor): (num_preds,) IoU between each prediction and
            its assigned GT.
        labels (LongTensor, optional): (num_preds,) class of the assigned GT,
            -1 for background.
    """

    def __init__(
        self, num_gts: int, gt_inds: Tensor, max_overlaps: Tensor, labels: Tensor | None = None
    ) -> None:
        self.num_gts = num_gts
        self.gt_inds = gt_inds
        self.max_overlaps = max_overlaps
        self.labels = labels
        self._extra_properties = {}

    @property
    def num_preds(self) -> int:
        return len(self.gt_inds)

    def set_extra_property(self, key: str, value) -> None:
        if key in self.info:
            raise KeyError(f'AssignResult: {key!r} is a basic property')
        self._extra_properties[key] = value

    def get_extra_property(self, key: str):
        return self._extra_properties.get(key, None)

    @property
    def info(self) -> dict:
        basic = dict(
            num_gts=self.num_gts,
            num_preds=self.num_preds,
            gt_inds=self.gt_inds,
            max_overlaps=self.max_overlaps,
            labels=self.labels,
        )
        basic.update(self._extra_properties)
        return basic

    def add_gt_(self, gt_labels: Tensor) -> None:
        """Prepend the ground truths themselves as assigned predictions."""
        self_inds = torch.arange(1, len(gt_labels) + 1, dtype=torch.long, device=gt_labels.device)
        self.gt_inds = torch.cat([self_inds, self.gt_inds])
        self.max_overlaps = torch.cat(
            [self.max_overlaps.new_ones(len(gt_labels)), self.max_overlaps]
        )
        if self.labels is not None:
            self.labels = torch.cat([gt_labels, self.labels])

    def __repr__(self) -> str:
        return (
            f'{self.__class__.__name__}(num_gts={self.num_gts}, '
            f'num_preds={self.num_preds}, num_pos={int((self.gt_inds > 0).sum())})'
        )
