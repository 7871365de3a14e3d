"""SimpleYOLOWorldDetector: YOLO-World with its vocabulary in the weights (no text model)."""

import torch
from mmengine.device import get_device
from mmengine.dist import get_world_size
from mmengine.logging import print_log
from torch import Tensor

from ai4rs.registry import MODELS

from .single_stage import SingleStageDetector


@MODELS.register_module()
class SimpleYOLOWorldDetector(SingleStageDetector):
    """Upstream's (b1b09f2) detector of the reparameterized fine-tuning configs
    (``yolo_world_v2_*_rep_vlpan_bn_*``): a YOLO-World whose K texts are folded into the
    neck's ``RepConvMaxSigmoidCSPLayerWithTwoConv`` and the head's ``RepYOLOWorldHeadModule``
    (see ``tools/model_converters/reparameterize_yolo_world.py``), so it is trained and run
    as a closed-set detector: labels 0..K-1 are the baked texts, in the order given to the
    converter, and no text model is built or called.

    Interfaces used: ``backbone(images, None) -> (img_feats, None)`` (a
    ``MultiModalYOLOBackbone`` with ``with_text_model=False``), ``neck(img_feats, None)``
    when ``mm_neck`` else ``neck(img_feats)``, ``bbox_head.loss(img_feats, None, None,
    data_samples)`` / ``bbox_head.predict(img_feats, None, None, data_samples, rescale=)``.

    Args:
        *args, **kwargs: those of :class:`SingleStageDetector`.
        mm_neck (bool): the neck takes a (here None) text argument. Defaults to False.
        num_train_classes (int): K in training (the head's ``num_classes`` in ``loss``).
        num_test_classes (int): K at test time.
        prompt_dim, num_prompts, embedding_path, freeze_prompt, use_mlp_adapter: upstream's
            prompt-tuning mode (``reparameterized=False``, learnable prompt embeddings);
            accepted for config compatibility, not implemented in ai4rs.
        reparameterized (bool): must be True (see above).
        use_syncbn (bool): as :class:`YOLOWorldDetector`. Defaults to True.

    Raises:
        NotImplementedError: ``reparameterized=False`` (upstream's prompt tuning).
    """

    takes_texts = False

    def __init__(
        self,
        *args,
        mm_neck: bool = False,
        num_train_classes: int = 80,
        num_test_classes: int = 80,
        prompt_dim: int = 512,
        num_prompts: int = 80,
        embedding_path: str = '',
        reparameterized: bool = False,
        freeze_prompt: bool = False,
        use_mlp_adapter: bool = False,
        use_syncbn: bool = True,
        **kwargs,
    ) -> None:
        if not reparameterized:
            raise NotImplementedError(
                'SimpleYOLOWorldDetector: only reparameterized=True (vocabulary folded into '
                'the weights by tools/model_converters/reparameterize_yolo_world.py) is '
                "supported; upstream's prompt tuning (reparameterized=False) is not ported"
            )
        self.mm_neck = mm_neck
        self.num_train_classes = num_train_classes
        self.num_test_classes = num_test_classes
        self.reparameterized = reparameterized
        super().__init__(*args, **kwargs)
        if getattr(self.backbone, 'with_text_model', False):
            raise ValueError(
                'SimpleYOLOWorldDetector(reparameterized=True): the backbone must be built '
                'without a text model (text_model=None, with_text_model=False)'
            )
        if use_syncbn and get_world_size() > 1 and get_device() != 'cpu':
            torch.nn.SyncBatchNorm.convert_sync_batchnorm(self)
            print_log('Using SyncBatchNorm()', 'current')

    def extract_feat(self, batch_inputs: Tensor, batch_data_samples=None) -> tuple[Tensor, ...]:
        """(B, 3, H, W) images -> neck outputs, one (B, C_i, H_i, W_i) map per level; the
        batch's texts, if any, are ignored."""
        img_feats, _ = self.backbone(batch_inputs, None)
        if not self.with_neck:
            return img_feats
        return self.neck(img_feats, None) if self.mm_neck else self.neck(img_feats)

    def loss(self, batch_inputs: Tensor, batch_data_samples) -> dict:
        """Losses of a batch; labels index the baked vocabulary."""
        self.bbox_head.num_classes = self.num_train_classes
        img_feats = self.extract_feat(batch_inputs, batch_data_samples)
        return self.bbox_head.loss(img_feats, None, None, batch_data_samples)

    def predict(self, batch_inputs: Tensor, batch_data_samples: list, rescale: bool = True) -> list:
        """Data samples with ``pred_instances`` (labels index the baked vocabulary)."""
        img_feats = self.extract_feat(batch_inputs, batch_data_samples)
        self.bbox_head.num_classes = self.num_test_classes
        results_list = self.bbox_head.predict(
            img_feats, None, None, batch_data_samples, rescale=rescale
        )
        return self.add_pred_to_datasample(batch_data_samples, results_list)

    def _forward(self, batch_inputs: Tensor, batch_data_samples=None) -> tuple:
        """Raw head outputs per level (no post-processing)."""
        return self.bbox_head.forward(self.extract_feat(batch_inputs, batch_data_samples), None)
