"""mmyolo's ``BatchShapePolicy``: per-batch padded input shapes for batched testing."""

import numpy as np

from ai4rs.registry import TASK_UTILS


@TASK_UTILS.register_module()
class BatchShapePolicy:
    """mmyolo's ``BatchShapePolicy``: per-batch padded input shapes for batched testing.

    Images are sorted by aspect ratio h / w; consecutive groups of ``batch_size`` share one
    ``batch_shape`` (h, w): ``ceil(shape * img_size / size_divisor + extra_pad_ratio) *
    size_divisor`` with shape ``[max_ratio, 1]`` when all ratios < 1, ``[1, 1 / min_ratio]``
    when all > 1, else ``[1, 1]``. Each data dict gets ``batch_shape`` (np.ndarray (2,) int64).

    Args:
        batch_size (int): test batch size per GPU. Defaults to 32.
        img_size (int): network input size. Defaults to 640.
        size_divisor (int): shapes are multiples of it. Defaults to 32.
        extra_pad_ratio (float): extra padding in units of ``size_divisor``. Defaults to 0.5.
    """

    def __init__(
        self,
        batch_size: int = 32,
        img_size: int = 640,
        size_divisor: int = 32,
        extra_pad_ratio: float = 0.5,
    ) -> None:
        self.batch_size = batch_size
        self.img_size = img_size
        self.size_divisor = size_divisor
        self.extra_pad_ratio = extra_pad_ratio

    def __call__(self, data_list: list[dict]) -> list[dict]:
        """Return ``data_list`` sorted by aspect ratio, each dict with its ``batch_shape``."""
        if not data_list:
            return data_list
        wh = np.array([(d['width'], d['height']) for d in data_list], dtype=np.float64)
        ratios = wh[:, 1] / wh[:, 0]
        order = np.argsort(ratios)
        data_list = [data_list[i] for i in order]
        ratios = ratios[order]
        batch_index = np.arange(len(data_list)) // self.batch_size
        num_batches = int(batch_index[-1]) + 1
        shapes = np.ones((num_batches, 2), dtype=np.float64)
        for b in range(num_batches):
            r = ratios[batch_index == b]
            if r.max() < 1:
                shapes[b] = (r.max(), 1)
            elif r.min() > 1:
                shapes[b] = (1, 1 / r.min())
        batch_shapes = (
            np.ceil(shapes * self.img_size / self.size_divisor + self.extra_pad_ratio).astype(
                np.int64
            )
            * self.size_divisor
        )
        for i, data_info in enumerate(data_list):
            data_info['batch_shape'] = batch_shapes[batch_index[i]]
        return data_list
