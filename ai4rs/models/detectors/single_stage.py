"""Single-stage detector: backbone -> (neck) -> dense head."""

from torch import Tensor

from ai4rs.registry import MODELS

from .base import BaseDetector


@MODELS.register_module()
class SingleStageDetector(BaseDetector):
    """Backbone, optional neck and a dense head that does both loss and prediction.

    Args:
        backbone (dict): backbone config.
        neck (dict, optional): neck config.
        bbox_head (dict): head config; ``train_cfg`` and ``test_cfg`` are passed to it.
        train_cfg (dict, optional): e.g. ``dict(assigner=...)``.
        test_cfg (dict, optional): e.g. ``dict(score_thr=..., nms=...)``.
        data_preprocessor (dict, optional): e.g. ``dict(type='DetDataPreprocessor')``.
        init_cfg (dict, optional): initialization config.
    """

    def __init__(
        self,
        backbone: dict,
        neck: dict | None = None,
        bbox_head: dict | None = None,
        train_cfg: dict | None = None,
        test_cfg: dict | None = None,
        data_preprocessor: dict | None = None,
        init_cfg=None,
    ) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if bbox_head is None:
            raise ValueError(f'{type(self).__name__}: bbox_head is required')
        self.backbone = MODELS.build(backbone)
        if neck is not None:
            self.neck = MODELS.build(neck)
        bbox_head = dict(bbox_head)
        bbox_head.update(train_cfg=train_cfg, test_cfg=test_cfg)
        self.bbox_head = MODELS.build(bbox_head)
        self.train_cfg = train_cfg
        self.test_cfg = test_cfg

    def extract_feat(self, batch_inputs: Tensor) -> tuple[Tensor, ...]:
        """(B, 3, H, W) -> multi-level features (after the neck if any)."""
        x = self.backbone(batch_inputs)
        if self.with_neck:
            x = self.neck(x)
        return x

    def loss(self, batch_inputs: Tensor, batch_data_samples: list) -> dict:
        return self.bbox_head.loss(self.extract_feat(batch_inputs), batch_data_samples)

    def predict(self, batch_inputs: Tensor, batch_data_samples: list, rescale: bool = True) -> list:
        """Data samples with ``pred_instances`` (boxes in the original image
        when ``rescale``)."""
        results_list = self.bbox_head.predict(
            self.extract_feat(batch_inputs), batch_data_samples, rescale=rescale
        )
        return self.add_pred_to_datasample(batch_data_samples, results_list)

    def _forward(self, batch_inputs: Tensor, batch_data_samples: list | None = None) -> tuple:
        """Raw head outputs, e.g. (cls_scores, bbox_preds, angle_preds, objectnesses)."""
        return self.bbox_head(self.extract_feat(batch_inputs))  # through its hooks (bf16)
