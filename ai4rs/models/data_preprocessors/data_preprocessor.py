"""Batching, padding and batch-level augmentation of detection inputs."""

import math
import random
from collections.abc import Sequence
from numbers import Number

import torch
import torch.nn.functional as F
from mmengine import dist
from mmengine.logging import MessageHub
from mmengine.model import ImgDataPreprocessor
from mmengine.utils import is_seq_of
from torch import Tensor, nn

from ai4rs.registry import MODELS
from ai4rs.structures.bbox import scale_boxes

from ..utils import samplelist_boxtype2tensor


@MODELS.register_module()
class DetDataPreprocessor(ImgDataPreprocessor):
    """mmdet's ``DetDataPreprocessor``: stack, pad, normalise, batch-augment.

    On top of mmengine's ``ImgDataPreprocessor`` (move to device, BGR->RGB,
    ``(x - mean) / std``, pad to a multiple of ``pad_size_divisor`` with
    ``pad_value``, stack), it records ``batch_input_shape`` and ``pad_shape``
    in every data sample, in training applies ``batch_augments`` in order (on the
    box objects, which carry their format) and then, with ``boxtype2tensor``, turns
    box objects into (N, box_dim) tensors for heads that want plain tensors (the
    ai4rs heads accept both: set ``boxtype2tensor=False`` to keep the box type for
    the metric and the visualizer).

    Args:
        mean, std (Sequence[Number], optional): per-channel normalisation;
            None keeps raw pixel values.
        pad_size_divisor (int): Defaults to 1.
        pad_value (Number): Defaults to 0.
        bgr_to_rgb, rgb_to_bgr (bool): channel order conversion.
        boxtype2tensor (bool): replace box objects by (N, box_dim) tensors. Defaults to True.
        non_blocking (bool): non-blocking device transfer.
        batch_augments (list[dict], optional): e.g. ``BatchSyncRandomResize``.
        pad_mask, pad_seg: not supported (raise if True).
    """

    def __init__(
        self,
        mean: Sequence[Number] | None = None,
        std: Sequence[Number] | None = None,
        pad_size_divisor: int = 1,
        pad_value: float | int = 0,
        pad_mask: bool = False,
        mask_pad_value: int = 0,
        pad_seg: bool = False,
        seg_pad_value: int = 255,
        bgr_to_rgb: bool = False,
        rgb_to_bgr: bool = False,
        boxtype2tensor: bool = True,
        non_blocking: bool = False,
        batch_augments: list[dict] | None = None,
    ) -> None:
        super().__init__(
            mean=mean,
            std=std,
            pad_size_divisor=pad_size_divisor,
            pad_value=pad_value,
            bgr_to_rgb=bgr_to_rgb,
            rgb_to_bgr=rgb_to_bgr,
            non_blocking=non_blocking,
        )
        if pad_mask or pad_seg:
            raise NotImplementedError(
                'DetDataPreprocessor: pad_mask / pad_seg are not supported '
                'in ai4rs (no masks or semantic maps)'
            )
        self.batch_augments = (
            nn.ModuleList([MODELS.build(aug) for aug in batch_augments]) if batch_augments else None
        )
        self.pad_mask = pad_mask
        self.mask_pad_value = mask_pad_value
        self.pad_seg = pad_seg
        self.seg_pad_value = seg_pad_value
        self.boxtype2tensor = boxtype2tensor

    def forward(self, data: dict, training: bool = False) -> dict:
        batch_pad_shape = self._get_pad_shape(data)
        data = super().forward(data=data, training=training)
        inputs, data_samples = data['inputs'], data['data_samples']
        if data_samples is not None:
            batch_input_shape = tuple(inputs[0].size()[-2:])
            for data_sample, pad_shape in zip(data_samples, batch_pad_shape):
                data_sample.set_metainfo(
                    {'batch_input_shape': batch_input_shape, 'pad_shape': pad_shape}
                )
        if training and self.batch_augments is not None:
            # batch augments work on box objects, which know their own format
            for batch_aug in self.batch_augments:
                inputs, data_samples = batch_aug(inputs, data_samples)
        if data_samples is not None and self.boxtype2tensor:
            samplelist_boxtype2tensor(data_samples)
        return {'inputs': inputs, 'data_samples': data_samples}

    def _get_pad_shape(self, data: dict) -> list[tuple[int, int]]:
        """(pad_h, pad_w) of each image after padding to ``pad_size_divisor``."""
        inputs = data['inputs']
        div = self.pad_size_divisor

        def padded(h, w):
            return (int(math.ceil(h / div)) * div, int(math.ceil(w / div)) * div)

        if is_seq_of(inputs, torch.Tensor):
            return [padded(img.shape[1], img.shape[2]) for img in inputs]
        if isinstance(inputs, torch.Tensor):
            if inputs.dim() != 4:
                raise ValueError(
                    'DetDataPreprocessor: a batched input must be (N, C, H, W), '
                    f'got {tuple(inputs.shape)}'
                )
            return [padded(inputs.shape[2], inputs.shape[3])] * inputs.shape[0]
        raise TypeError(
            'DetDataPreprocessor: data["inputs"] must be a Tensor or a list of '
            f'Tensors, got {type(inputs)}'
        )


@MODELS.register_module()
class BatchSyncRandomResize(nn.Module):
    """Resize a whole batch to a random size drawn every ``interval`` iterations.

    The size is drawn on rank 0 and broadcast, so every process trains at the
    same size. The height is ``size_divisor * randint(lo, hi)`` with
    ``(lo, hi) = round(random_size_range / size_divisor)``, and the width
    keeps the batch's aspect ratio. The first call keeps the input size.

    Boxes must be box objects and are rescaled in their own format (see
    :func:`ai4rs.structures.bbox.scale_boxes`); ``DetDataPreprocessor`` runs its
    batch augments before turning boxes into tensors.
    Upstream (mmdet) multiplies every even column by sx and every odd column
    by sy, which for rotated boxes wrongly scales (cx, w, angle) by sx and
    (cy, h) by sy; this implementation scales rotated boxes correctly.

    Args:
        random_size_range (tuple[int, int]): range of the height in pixels.
        interval (int): iterations between size changes. Defaults to 10.
        size_divisor (int): sizes are multiples of it. Defaults to 32.
    """

    def __init__(
        self, random_size_range: tuple[int, int], interval: int = 10, size_divisor: int = 32
    ) -> None:
        super().__init__()
        if len(random_size_range) != 2 or random_size_range[0] > random_size_range[1]:
            raise ValueError(
                'BatchSyncRandomResize: random_size_range must be (min, max), '
                f'got {random_size_range}'
            )
        self._input_size = None
        self._random_size_range = (
            round(random_size_range[0] / size_divisor),
            round(random_size_range[1] / size_divisor),
        )
        self._interval = interval
        self._size_divisor = size_divisor

    def forward(self, inputs: Tensor, data_samples: list) -> tuple[Tensor, list]:
        h, w = inputs.shape[-2:]
        if self._input_size is None:
            self._input_size = (h, w)
        scale_y = self._input_size[0] / h
        scale_x = self._input_size[1] / w
        if scale_x != 1 or scale_y != 1:
            inputs = F.interpolate(
                inputs, size=self._input_size, mode='bilinear', align_corners=False
            )
            for data_sample in data_samples:
                img_shape = (
                    int(data_sample.img_shape[0] * scale_y),
                    int(data_sample.img_shape[1] * scale_x),
                )
                pad_shape = (
                    int(data_sample.pad_shape[0] * scale_y),
                    int(data_sample.pad_shape[1] * scale_x),
                )
                data_sample.set_metainfo(
                    {
                        'img_shape': img_shape,
                        'pad_shape': pad_shape,
                        'batch_input_shape': self._input_size,
                    }
                )
                for key in ('gt_instances', 'ignored_instances'):
                    instances = data_sample.get(key, None)
                    if instances is not None and 'bboxes' in instances:
                        instances.bboxes = scale_boxes(instances.bboxes, (scale_x, scale_y))
        iteration = MessageHub.get_current_instance().get_info('iter')
        if ((iteration or 0) + 1) % self._interval == 0:
            self._input_size = self._get_random_size(
                aspect_ratio=float(w / h), device=inputs.device
            )
        return inputs, data_samples

    def _get_random_size(self, aspect_ratio: float, device: torch.device) -> tuple[int, int]:
        tensor = torch.zeros(2, dtype=torch.long, device=device)
        if dist.get_rank() == 0:
            size = random.randint(*self._random_size_range)
            tensor[0] = self._size_divisor * size
            tensor[1] = self._size_divisor * int(aspect_ratio * size)
        if dist.get_world_size() > 1:
            dist.barrier()
            dist.broadcast(tensor, 0)
        return int(tensor[0]), int(tensor[1])
