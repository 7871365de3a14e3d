"""A vocabulary whose entries are given embeddings (image prompts) or texts (text model)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from mmengine.model import BaseModule
from torch import Tensor


def text_model_width(text_model) -> int | None:
    """Width D of a text model's embeddings (CLIP's ``projection_dim``, a saved table's
    width), None when it cannot be told without running it."""
    model = getattr(text_model, 'model', None)
    config = getattr(model, 'config', None)
    if config is not None and getattr(config, 'projection_dim', None):
        return int(config.projection_dim)
    table = getattr(text_model, 'test_embed', None)
    if table:
        return int(next(iter(table.values())).numel())
    return None


class PromptEmbeddingTable(BaseModule):
    """Text encoder stand-in: prompts found in ``table`` get its embeddings (e.g. image
    prompts from example crops), the others go through ``text_model`` (CLIP), so one
    vocabulary mixes image and text prompts. Used exactly where the text model is
    (``model.backbone.text_model``).

    Args:
        table (Mapping[str, Tensor]): ``{prompt: (D,) embedding}``, L2-normalised here.
        text_model (nn.Module, optional): the encoder of the other prompts; without one
            every prompt must be in ``table``.

    Raises:
        ValueError: empty table, embeddings of different widths, or a width that is not
            the text model's (both named).
    """

    def __init__(self, table: Mapping[str, Tensor], text_model=None) -> None:
        super().__init__()
        if not table:
            raise ValueError('PromptEmbeddingTable: the table holds no prompt')
        rows = {k: torch.as_tensor(v).float().reshape(-1) for k, v in table.items()}
        widths = {v.numel() for v in rows.values()}
        if len(widths) > 1:
            raise ValueError(
                f'PromptEmbeddingTable: embeddings of different widths {sorted(widths)}'
            )
        self.embed_dim = widths.pop()
        width = text_model_width(text_model) if text_model is not None else None
        if width is not None and width != self.embed_dim:
            raise ValueError(
                f'prompt embeddings of width {self.embed_dim} do not fit the text model, whose '
                f'embeddings (and the detector) have width {width}'
            )
        self.table = {k: v / v.norm(p=2).clamp_min(1e-12) for k, v in rows.items()}
        self.text_model = text_model

    def forward(self, text: Sequence[Sequence[str]]) -> Tensor:
        """Args:
            text (list[list[str]]): B lists of K strings.

        Returns:
            Tensor: (B, K, D) embeddings.
        """
        flat = [s for texts in text for s in texts]
        num = len(text[0]) if len(text) else 0
        others = list(dict.fromkeys(s for s in flat if s not in self.table))
        found = {}
        if others:
            if self.text_model is None:
                raise KeyError(
                    f'no prompt embedding for {others[:10]} and no text model to encode '
                    f'them (the table has {list(self.table)[:10]})'
                )
            feats = self.text_model([others])[0]
            if feats.shape[-1] != self.embed_dim:
                raise ValueError(
                    f'prompt embeddings of width {self.embed_dim} do not fit the text '
                    f'model, whose embeddings have width {feats.shape[-1]}'
                )
            found = dict(zip(others, feats))
        device = next(iter(found.values())).device if found else torch.device('cpu')
        rows = [self.table[s].to(device) if s in self.table else found[s] for s in flat]
        feats = torch.stack(rows)
        return feats.reshape(-1, num, feats.shape[-1])
