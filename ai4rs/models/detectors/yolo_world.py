"""YOLO-World detector: open-vocabulary YOLO with text embeddings as classifiers."""

from collections.abc import Sequence

import torch
from mmengine.device import get_device
from mmengine.dist import get_world_size
from mmengine.logging import print_log
from torch import Tensor

from ai4rs.registry import MODELS

from .single_stage import SingleStageDetector


def as_vocabulary(texts: Sequence) -> list[str]:
    """One vocabulary (K strings) from the forms users pass to ``reparameterize``:
    ``['cat', 'dog']``, ``[['cat', 'dog']]`` (one image's texts) or upstream's
    demo form ``[['cat'], ['dog']]`` (one list per prompt)."""
    texts = list(texts)
    if texts and all(isinstance(t, str) for t in texts):
        return texts
    if len(texts) == 1 and isinstance(texts[0], (list, tuple)):
        vocab = list(texts[0])
    elif texts and all(isinstance(t, (list, tuple)) and len(t) == 1 for t in texts):
        vocab = [t[0] for t in texts]
    else:
        raise ValueError(
            'texts must be a list of strings, a list holding one list of strings, '
            f'or a list of one-string lists; got {texts[:3]}'
        )
    if not all(isinstance(t, str) for t in vocab):
        raise ValueError(f'texts must be strings, got {vocab[:3]}')
    return vocab


@MODELS.register_module()
class YOLOWorldDetector(SingleStageDetector):
    """YOLO-World (https://arxiv.org/abs/2401.17270): a multi-modal backbone
    (image model + text model), a text-guided neck and a head whose classifier
    is the similarity of region embeddings to the text embeddings, so the
    vocabulary is whatever texts are given.

    Interfaces used (upstream b1b09f2 + text masks):
    ``backbone(images, texts) -> (img_feats, txt_feats (B, K, D))``,
    ``backbone.forward_image(images)``, ``backbone.forward_text(texts)``;
    ``neck(img_feats, txt_feats)`` when ``mm_neck`` else ``neck(img_feats)``;
    ``bbox_head.loss(img_feats, txt_feats, txt_masks, data_samples)``,
    ``bbox_head.predict(img_feats, txt_feats, txt_masks, data_samples, rescale=)``,
    ``bbox_head.forward(img_feats, txt_feats, txt_masks)``.

    Texts of a batch: in training from the YOLO collate dict
    (``data_samples['texts']``, B lists of K strings) or from each
    ``data_sample.texts``; at test time from ``data_sample.texts`` (any
    vocabulary: the head's ``num_classes`` becomes K) or, when the samples carry
    none, from the vocabulary baked in by :meth:`reparameterize`.

    Args:
        *args, **kwargs: those of :class:`SingleStageDetector` (backbone, neck,
            bbox_head, train_cfg, test_cfg, data_preprocessor, init_cfg).
        mm_neck (bool): the neck takes the text features too. Defaults to False.
        num_train_classes (int): texts per image in training (``num_classes`` of
            the head in ``loss``). Defaults to 80.
        num_test_classes (int): kept for upstream config compatibility; at test
            time the number of prompts decides. Defaults to 80.
        use_syncbn (bool): convert BatchNorms to SyncBatchNorm when more than
            one process trains (mmyolo ``YOLODetector``) on an accelerator. On CPU
            (e.g. ``tools/dist_train.sh`` with gloo) the BatchNorms stay per-process:
            PyTorch's SyncBatchNorm and DistributedDataParallel refuse CPU modules.
            Defaults to True.
    """

    def __init__(
        self,
        *args,
        mm_neck: bool = False,
        num_train_classes: int = 80,
        num_test_classes: int = 80,
        use_syncbn: bool = True,
        **kwargs,
    ) -> None:
        self.mm_neck = mm_neck
        self.num_train_classes = num_train_classes
        self.num_test_classes = num_test_classes
        super().__init__(*args, **kwargs)
        # vocabulary baked in by reparameterize(): texts [K words], prompts [K strings as
        # LoadText formats them] and the prompts' (1, K, D) embeddings; a non-persistent
        # buffer so it follows .to(device) but stays out of the state dict
        self.texts: list[list[str]] | None = None
        self.prompts: list[list[str]] | None = None
        self.register_buffer('text_feats', None, persistent=False)
        if use_syncbn and get_world_size() > 1:
            if get_device() == 'cpu':
                print_log(
                    'SyncBatchNorm needs an accelerator; training on CPU keeps '
                    'per-process BatchNorm',
                    'current',
                )
            else:
                torch.nn.SyncBatchNorm.convert_sync_batchnorm(self)
                print_log('Using SyncBatchNorm()', 'current')

    takes_texts = True

    # ------------------------------------------------------------------ texts
    @property
    def vocabulary(self) -> list[str] | None:
        """The vocabulary baked in by :meth:`reparameterize`, or None."""
        return list(self.texts[0]) if self.texts else None

    @property
    def has_text_model(self) -> bool:
        return (
            getattr(self.backbone, 'with_text_model', True)
            and getattr(self.backbone, 'text_model', None) is not None
        )

    @property
    def is_reparameterized(self) -> bool:
        return self.text_feats is not None

    @torch.no_grad()
    def reparameterize(
        self, texts: Sequence, drop_text_model: bool = False, prompt_format: str = '{}'
    ) -> None:
        """Bake a vocabulary in: its text embeddings are computed once and used
        whenever data samples carry no texts (image-only inference, export) or
        carry exactly the baked prompts.

        The prompts are the texts as the test pipeline's ``LoadText`` formats them
        (``prompt_format.format(text)``): inference sends the baked vocabulary
        (``self.texts``) through that pipeline, and the samples then carry the
        prompts, which match the baked ones; the detections are those of the
        un-reparameterized model given the same texts.

        Args:
            texts: K strings (also accepted: ``[[t1, ..., tK]]`` or upstream's
                ``[[t1], ..., [tK]]``).
            drop_text_model (bool): remove the text model from the backbone
                afterwards (``with_text_model=False``); the detector then needs
                no CLIP and its state dict has no text-model keys.
            prompt_format (str): the ``prompt_format`` of the test pipeline's
                ``LoadText``, e.g. ``'a photo of {}'``. Defaults to ``'{}'``.

        Raises:
            ValueError: ``prompt_format`` has no ``{}`` field.
            RuntimeError: the backbone has no text model.
        """
        vocab = as_vocabulary(texts)
        if not self.has_text_model:
            raise RuntimeError(
                'YOLOWorldDetector.reparameterize: the backbone has no text '
                'model to encode the texts with'
            )
        if '{}' not in prompt_format:
            raise ValueError(f"prompt_format must hold one '{{}}' field, got {prompt_format!r}")
        try:
            prompts = [prompt_format.format(t) for t in vocab]
        except (IndexError, KeyError, ValueError) as e:
            raise ValueError(
                f"prompt_format must hold one '{{}}' field, got {prompt_format!r} ({e})"
            ) from None
        self.texts = [vocab]
        self.prompts = [prompts]
        self.text_feats = self.backbone.forward_text([prompts]).detach()
        if drop_text_model:
            self.backbone.text_model = None
            self.backbone.with_text_model = False

    def _batch_texts(self, batch_data_samples) -> list[list[str]] | None:
        """B lists of K strings from the batch, or None when it carries none."""
        if isinstance(batch_data_samples, dict):
            return batch_data_samples.get('texts')
        if (
            isinstance(batch_data_samples, (list, tuple))
            and batch_data_samples
            and all('texts' in sample for sample in batch_data_samples)
        ):
            return [list(sample.texts) for sample in batch_data_samples]
        return None

    def extract_feat(
        self, batch_inputs: Tensor, batch_data_samples=None
    ) -> tuple[tuple[Tensor, ...], Tensor, None]:
        """Image and text features of a batch.

        Args:
            batch_inputs (Tensor): (B, 3, H, W) preprocessed images.
            batch_data_samples: a YOLO-collate dict, a list of data samples, or
                None (then the reparameterized vocabulary is used).

        Returns:
            tuple: ``img_feats`` (neck outputs, one (B, C_i, H_i, W_i) map per
            level), ``txt_feats`` (B, K, D) and ``txt_masks``: always None
            (upstream b1b09f2 masks no texts; the head accepts (B, K) masks).
        """
        texts = None if batch_data_samples is None else self._batch_texts(batch_data_samples)
        use_baked = False
        if texts is None:
            if not self.is_reparameterized:
                raise TypeError(
                    'YOLOWorldDetector: the batch carries no texts (data_sample.texts '
                    "or data_samples['texts']) and no vocabulary was baked in with "
                    'reparameterize(texts)'
                )
            use_baked = True
        elif self.is_reparameterized and all(list(t) == self.prompts[0] for t in texts):
            # the baked prompts (inference of the baked vocabulary through LoadText); in
            # training the text model (possibly trained) encodes them afresh
            use_baked = not self.training or not self.has_text_model
        elif not self.has_text_model:
            baked = self.prompts[0][:5] if self.prompts else None
            raise RuntimeError(
                'YOLOWorldDetector: the backbone has no text model and the batch prompts '
                f'{list(texts[0])[:5]}... differ from the reparameterized prompts {baked}...; '
                "when the test pipeline's LoadText has a prompt_format, bake with "
                'reparameterize(texts, prompt_format=that format)'
            )
        if use_baked:
            img_feats = self.backbone.forward_image(batch_inputs)
            txt_feats = self.text_feats.expand(batch_inputs.shape[0], -1, -1)
        else:
            img_feats, txt_feats = self.backbone(batch_inputs, texts)
        return self._neck(img_feats, txt_feats), txt_feats, None

    def _neck(self, img_feats: tuple, txt_feats: Tensor) -> tuple:
        if not self.with_neck:
            return img_feats
        return self.neck(img_feats, txt_feats) if self.mm_neck else self.neck(img_feats)

    def forward_with_text_feats(self, batch_inputs: Tensor, txt_feats: Tensor) -> tuple:
        """Raw head outputs per level for given text embeddings (no text model, no
        baked-in vocabulary): what an export with a run-time vocabulary traces.

        Args:
            batch_inputs (Tensor): (B, 3, H, W) preprocessed images.
            txt_feats (Tensor): (B, K, D) (or (1, K, D), broadcast) L2-normalised text
                embeddings, as the text model returns them.
        """
        img_feats = self.backbone.forward_image(batch_inputs)
        txt_feats = txt_feats.expand(batch_inputs.shape[0], -1, -1)
        return self.bbox_head.forward(self._neck(img_feats, txt_feats), txt_feats, None)

    # ------------------------------------------------------------------ modes
    def loss(self, batch_inputs: Tensor, batch_data_samples) -> dict:
        """Losses of a batch; texts are the per-image texts of the batch."""
        self.bbox_head.num_classes = self.num_train_classes
        img_feats, txt_feats, txt_masks = self.extract_feat(batch_inputs, batch_data_samples)
        return self.bbox_head.loss(img_feats, txt_feats, txt_masks, batch_data_samples)

    def predict(self, batch_inputs: Tensor, batch_data_samples: list, rescale: bool = True) -> list:
        """Data samples with ``pred_instances`` (labels index the K prompts)."""
        img_feats, txt_feats, txt_masks = self.extract_feat(batch_inputs, batch_data_samples)
        self.bbox_head.num_classes = txt_feats[0].shape[0]
        results_list = self.bbox_head.predict(
            img_feats, txt_feats, txt_masks, batch_data_samples, rescale=rescale
        )
        return self.add_pred_to_datasample(batch_data_samples, results_list)

    def _forward(self, batch_inputs: Tensor, batch_data_samples=None) -> tuple:
        """Raw head outputs per level (no post-processing)."""
        img_feats, txt_feats, txt_masks = self.extract_feat(batch_inputs, batch_data_samples)
        return self.bbox_head.forward(img_feats, txt_feats, txt_masks)
