"""Small helpers shared by heads, detectors and data preprocessors."""

from functools import partial

from mmengine import dist
from torch import Tensor

from ai4rs.structures.bbox import BaseBoxes


def multi_apply(func, *args, **kwargs) -> tuple[list, ...]:
    """Apply ``func`` to each tuple of ``args`` items; transpose the results.

    ``multi_apply(f, [a1, a2], [b1, b2])`` with ``f`` returning ``(x, y)``
    gives ``([x1, x2], [y1, y2])``.
    """
    pfunc = partial(func, **kwargs) if kwargs else func
    map_results = map(pfunc, *args)
    return tuple(map(list, zip(*map_results)))


def reduce_mean(tensor: Tensor) -> Tensor:
    """Mean of ``tensor`` over all processes (itself when not distributed)."""
    if dist.get_world_size() == 1:
        return tensor
    tensor = tensor.clone()
    dist.all_reduce(tensor, op='mean')
    return tensor


def unpack_gt_instances(batch_data_samples: list) -> tuple[list, list, list]:
    """Split data samples into (gt_instances, ignored_instances or None, metainfo) lists."""
    batch_gt_instances, batch_gt_instances_ignore, batch_img_metas = [], [], []
    for data_sample in batch_data_samples:
        batch_img_metas.append(data_sample.metainfo)
        batch_gt_instances.append(data_sample.gt_instances)
        batch_gt_instances_ignore.append(data_sample.get('ignored_instances', None))
    return batch_gt_instances, batch_gt_instances_ignore, batch_img_metas


def samplelist_boxtype2tensor(batch_data_samples: list) -> None:
    """Replace box objects in gt/pred/ignored instances by their tensors, in place."""
    for data_sample in batch_data_samples:
        for key in ('gt_instances', 'pred_instances', 'ignored_instances'):
            instances = data_sample.get(key, None)
            if instances is None or 'bboxes' not in instances:
                continue
            if isinstance(instances.bboxes, BaseBoxes):
                instances.bboxes = instances.bboxes.tensor
