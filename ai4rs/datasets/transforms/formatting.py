"""PackDetInputs: a results dict -> ``dict(inputs=Tensor, data_samples=DetDataSample)``."""

import numpy as np
from mmcv.transforms import BaseTransform, to_tensor
from mmengine.structures import InstanceData, PixelData

from ai4rs.registry import TRANSFORMS
from ai4rs.structures import DetDataSample
from ai4rs.structures.bbox import BaseBoxes
from ai4rs.structures.mask import PolygonMasks


@TRANSFORMS.register_module()
class PackDetInputs(BaseTransform):
    """Pack an image and its annotations for a detector (mmdet 3.x semantics).

    Output: ``inputs`` is the image as a (C, H, W) tensor of the image's dtype
    (uint8 for a loaded image); ``data_samples`` is a :class:`DetDataSample` whose
    ``gt_instances`` holds ``bboxes`` (the box object, or a tensor if the boxes
    are a plain array), ``labels`` (int64 tensor) and, when the results have
    ``gt_masks``, ``masks`` (the mask object as it is, e.g. ``PolygonMasks``, as
    mmdet) of the objects whose ``gt_ignore_flags`` is False, and
    ``ignored_instances`` the others. The meta
    information is ``{key: results[key] for key in meta_keys}``.

    Args:
        meta_keys (Sequence[str]): keys copied to the data sample's metainfo;
            every key must be present in the results dict.
    """

    mapping_table = {
        'gt_bboxes': 'bboxes',
        'gt_bboxes_labels': 'labels',
        'gt_masks': 'masks',
    }

    def __init__(
        self,
        meta_keys=(
            'img_id',
            'img_path',
            'ori_shape',
            'img_shape',
            'scale_factor',
            'flip',
            'flip_direction',
        ),
    ) -> None:
        self.meta_keys = meta_keys

    def transform(self, results: dict) -> dict:
        packed = dict()
        if 'img' in results:
            img = results['img']
            if img.ndim < 3:
                img = np.expand_dims(img, -1)
            packed['inputs'] = to_tensor(np.ascontiguousarray(img.transpose(2, 0, 1)))

        data_sample = DetDataSample()
        gt_instances = InstanceData()
        ignored_instances = InstanceData()
        if 'gt_ignore_flags' in results:
            flags = np.asarray(results['gt_ignore_flags'], dtype=bool)
            valid_idx = np.flatnonzero(~flags)
            ignore_idx = np.flatnonzero(flags)
        for key, name in self.mapping_table.items():
            if key not in results:
                continue
            value = results[key]
            if 'gt_ignore_flags' in results:
                if len(value) != len(flags):
                    raise ValueError(
                        f'PackDetInputs: results[{key!r}] has {len(value)} entries but '
                        f'gt_ignore_flags has {len(flags)}'
                    )
                valid, ignored = value[valid_idx], value[ignore_idx]
            else:
                valid, ignored = value, None
            if not isinstance(value, BaseBoxes | PolygonMasks):
                valid = to_tensor(valid)
                ignored = to_tensor(ignored) if ignored is not None else None
            gt_instances[name] = valid
            if ignored is not None:
                ignored_instances[name] = ignored
        data_sample.gt_instances = gt_instances
        data_sample.ignored_instances = ignored_instances

        if 'proposals' in results:
            data_sample.proposals = InstanceData(bboxes=results['proposals'])
        if 'gt_seg_map' in results:
            data_sample.gt_sem_seg = PixelData(
                sem_seg=to_tensor(results['gt_seg_map'][None, ...].copy())
            )

        img_meta = {}
        for key in self.meta_keys:
            if key not in results:
                raise KeyError(
                    f'PackDetInputs: meta key {key!r} is not in the results dict '
                    f'(available: {sorted(results)}); pass meta_keys=... without it'
                )
            img_meta[key] = results[key]
        data_sample.set_metainfo(img_meta)
        packed['data_samples'] = data_sample
        return packed

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(meta_keys={self.meta_keys})'
