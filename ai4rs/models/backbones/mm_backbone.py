"""Multi-modal backbone of YOLO-World: an image model and a text model side by side."""

from collections.abc import Sequence

from mmengine.model import BaseModule
from torch import Tensor, nn

from ai4rs.registry import MODELS

from ..utils.freeze import freeze_module


def _build(cfg: dict | nn.Module) -> nn.Module:
    return cfg if isinstance(cfg, nn.Module) else MODELS.build(cfg)


@MODELS.register_module()
class MultiModalYOLOBackbone(BaseModule):
    """``image_model`` (e.g. :class:`YOLOv8CSPDarknet`) plus ``text_model`` (e.g.
    ``HuggingCLIPLanguageBackbone``), as in YOLO-World.

    State dict keys are ``image_model.*`` and ``text_model.*``.

    Args:
        image_model (dict | nn.Module): config (or module) of the image backbone; it
            must list its stage names in ``layers`` for ``frozen_stages``.
        text_model (dict | nn.Module | None): config (or module) of the text encoder,
            called with ``texts`` (list of B lists of K strings) and returning
            (B, K, C) embeddings. None means no text model.
        frozen_stages (int): freeze ``image_model.layers[0..frozen_stages]`` (eval
            mode, no gradients), also after every ``train()``. -1: nothing.
        with_text_model (bool): build the text model. False (or ``text_model``
            None) gives an image-only backbone (e.g. after reparameterization).
        init_cfg (dict, optional): initialization config.
    """

    def __init__(
        self,
        image_model: dict | nn.Module,
        text_model: dict | nn.Module | None,
        frozen_stages: int = -1,
        with_text_model: bool = True,
        init_cfg: dict | None = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        self.with_text_model = with_text_model and text_model is not None
        self.image_model = _build(image_model)
        self.text_model = _build(text_model) if self.with_text_model else None
        layers = getattr(self.image_model, 'layers', None)
        if frozen_stages >= 0 and (layers is None or frozen_stages >= len(layers)):
            raise ValueError(
                f'MultiModalYOLOBackbone: frozen_stages={frozen_stages} needs an '
                f'image model with more than {frozen_stages} entries in '
                f'`layers`; {type(self.image_model).__name__} has '
                f'{None if layers is None else list(layers)}'
            )
        self.frozen_stages = frozen_stages
        self._freeze_stages()

    def _freeze_stages(self) -> None:
        if self.frozen_stages < 0:
            return
        for name in self.image_model.layers[: self.frozen_stages + 1]:
            freeze_module(getattr(self.image_model, name))

    def train(self, mode: bool = True):
        """Train mode, keeping the frozen image stages in eval mode."""
        super().train(mode)
        self._freeze_stages()
        return self

    def forward(
        self, image: Tensor, text: Sequence[Sequence[str]] | None
    ) -> tuple[tuple[Tensor, ...], Tensor | None]:
        """Image features and text embeddings.

        Args:
            image (Tensor): (B, 3, H, W) images.
            text (list[list[str]] | None): B lists of K texts, or None.

        Returns:
            tuple: (image features, a tuple of (B, C_i, H_i, W_i) maps from
            ``image_model``; text features (B, K, C), or None when ``text`` is None or
            there is no text model).
        """
        img_feats = self.image_model(image)
        if text is not None and self.with_text_model:
            return img_feats, self.text_model(text)
        return img_feats, None

    def forward_text(self, text: Sequence[Sequence[str]]) -> Tensor:
        """Text embeddings (B, K, C) of B lists of K texts."""
        if not self.with_text_model:
            raise RuntimeError(
                'MultiModalYOLOBackbone.forward_text() needs a text model, '
                'but this backbone was built without one'
            )
        return self.text_model(text)

    def forward_image(self, image: Tensor) -> tuple[Tensor, ...]:
        """Image features of (B, 3, H, W) images: a tuple of (B, C_i, H_i, W_i)."""
        return self.image_model(image)
