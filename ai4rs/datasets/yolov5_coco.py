"""mmyolo's ``YOLOv5CocoDataset``: ``CocoDataset`` with test-time batch shapes and mixing."""

from typing import Any

from ai4rs.registry import DATASETS, TASK_UTILS

from .coco import CocoDataset


@DATASETS.register_module()
class YOLOv5CocoDataset(CocoDataset):
    """mmyolo's ``YOLOv5CocoDataset``: ``CocoDataset`` with ``batch_shapes_cfg``.

    ``batch_shapes_cfg`` (a ``BatchShapePolicy`` config, testing only) is applied to the
    loaded list before filtering. In training mode (``test_mode=False``) each sample passed
    to the pipeline carries ``dataset`` (this dataset), which the mixing transforms
    (Mosaic, MixUp) draw other images from.

    Args:
        batch_shapes_cfg (dict, optional): e.g. ``dict(type='BatchShapePolicy',
            batch_size=1, img_size=640, size_divisor=32, extra_pad_ratio=0.5)``.
        *args, **kwargs: :class:`CocoDataset` arguments.
    """

    def __init__(self, *args, batch_shapes_cfg: dict | None = None, **kwargs) -> None:
        self.batch_shapes_cfg = batch_shapes_cfg
        super().__init__(*args, **kwargs)

    def load_data_list(self) -> list[dict]:
        data_list = super().load_data_list()
        if self.batch_shapes_cfg:
            data_list = TASK_UTILS.build(self.batch_shapes_cfg)(data_list)
        return data_list

    def _run_pipeline(self, idx: int) -> Any:
        if self.test_mode is False:  # the mixing transforms draw more images from the dataset
            data_info = self.get_data_info(idx)
            data_info['dataset'] = self
            return self.pipeline(data_info)
        return super()._run_pipeline(idx)
