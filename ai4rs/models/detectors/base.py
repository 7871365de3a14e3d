"""Base class of detectors: the ``forward(inputs, data_samples, mode)`` dispatch."""

from mmengine.model import BaseModel
from mmengine.structures import InstanceData
from torch import Tensor

from ai4rs.registry import MODELS
from ai4rs.structures.bbox import BaseBoxes


class BaseDetector(BaseModel):
    """mmdet's ``BaseDetector``: ``forward`` dispatches on ``mode``.

    - 'tensor': raw head outputs (no post-processing), for export and FLOPs.
    - 'loss': a dict of losses.
    - 'predict': data samples with ``pred_instances``.

    ``data_preprocessor`` may be a config dict; it is built from the ai4rs
    registry (so ``type='DetDataPreprocessor'`` works without a default scope).

    The inference contract (all that ``ai4rs.apis`` uses of a detector, besides
    ``test_step``, ``cfg`` and ``dataset_meta``):

    - ``forward(inputs, data_samples, mode='tensor')``: the head's raw per-level outputs,
      which ``bbox_head.decode_by_feat`` decodes (see :class:`BaseDenseHead`);
    - :attr:`box_type`: the box class of the predictions;
    - :attr:`takes_texts`: the labels index a vocabulary of texts given at run time
      (open-vocabulary detectors) rather than a fixed class list;
    - :attr:`vocabulary`: the texts baked into the model, if any.
    """

    takes_texts: bool = False

    def __init__(self, data_preprocessor: dict | None = None, init_cfg=None) -> None:
        if isinstance(data_preprocessor, dict):
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)

    @property
    def with_neck(self) -> bool:
        return getattr(self, 'neck', None) is not None

    @property
    def with_bbox(self) -> bool:
        return getattr(self, 'bbox_head', None) is not None

    @property
    def box_type(self) -> type[BaseBoxes]:
        """The box class of the predictions (the head's ``box_type``)."""
        return self.bbox_head.box_type

    @property
    def vocabulary(self) -> list[str] | None:
        """The texts baked into the model (labels index them), or None."""
        return None

    def forward(self, inputs: Tensor, data_samples: list | None = None, mode: str = 'tensor'):
        """Args:
        inputs (Tensor): (B, C, H, W) preprocessed images.
        data_samples (list[DetDataSample], optional): needed for 'loss' and 'predict'.
        mode (str): 'tensor', 'loss' or 'predict'.
        """
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self._forward(inputs, data_samples)
        raise RuntimeError(f'Invalid mode "{mode}". Only supports loss, predict and tensor mode')

    def loss(self, batch_inputs: Tensor, batch_data_samples: list) -> dict:
        raise NotImplementedError

    def predict(self, batch_inputs: Tensor, batch_data_samples: list, rescale: bool = True):
        raise NotImplementedError

    def _forward(self, batch_inputs: Tensor, batch_data_samples: list | None = None):
        raise NotImplementedError

    def extract_feat(self, batch_inputs: Tensor):
        raise NotImplementedError

    @staticmethod
    def add_pred_to_datasample(data_samples: list, results_list: list[InstanceData]) -> list:
        """Set ``pred_instances`` of each data sample; returns the samples."""
        for data_sample, pred_instances in zip(data_samples, results_list):
            data_sample.pred_instances = pred_instances
        return data_samples
