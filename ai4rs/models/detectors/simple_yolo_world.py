"""SimpleYOLOWorldDetector (upstream's name): YOLO-World with a fixed vocabulary in the weights.

Two modes, as upstream's class:

- prompt tuning (``reparameterized=False``): the classifier of the head is a learnable
  ``embeddings`` tensor (num_prompts, prompt_dim) instead of text embeddings, initialised from
  the texts' CLIP embeddings. With the rest of the network frozen (config: ``frozen_stages=4``
  of the image backbone, ``freeze_all`` of the neck and the head module) training changes only
  these embeddings, and ``tools/misc/export_prompt_embeddings.py`` writes them as an embeddings
  file ``{text: (D,)}`` that the unchanged YOLO-World checkpoint uses for those classes;
- reparameterized (``reparameterized=True``): the K texts are folded into the neck's
  ``RepConvMaxSigmoidCSPLayerWithTwoConv`` and the head's ``RepYOLOWorldHeadModule`` (see
  ``tools/model_converters/reparameterize_yolo_world.py``), so the detector is trained and run
  as a closed-set one: labels 0..K-1 are the baked texts, no text and no embedding is an input.
"""

from __future__ import annotations

import os.path as osp
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ai4rs.registry import MODELS

from .yolo_world import YOLOWorldDetector


def read_prompt_embeddings(
    path: str, texts: Sequence[str] | None = None
) -> tuple[list[str] | None, Tensor]:
    """Rows of an embeddings file, in order.

    Args:
        path (str): a ``.npy`` (K, D) array (upstream's ``embedding_path``: rows in class
            order) or a ``.pt`` / ``.pth`` file read by ``load_text_embeddings``
            (``{text: (D,)}`` as written by ``tools/misc/generate_text_embeddings.py``).
        texts (list[str], optional): the rows to take, in this order (a ``.pt`` dict is
            otherwise taken in its own order; a ``.npy`` file must have len(texts) rows).

    Returns:
        tuple: the texts of the rows (None for a ``.npy`` file without ``texts``) and a
        (K, D) float32 tensor.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a text missing from the file, a row count that is not len(texts), or
            not a 2-D table.
    """
    from ai4rs.models.backbones.clip_text import load_text_embeddings

    if not osp.isfile(path):
        raise FileNotFoundError(f'embedding_path: file not found: {path}')
    texts = None if texts is None else list(texts)
    if path.endswith('.npy') and texts is None:
        array = torch.from_numpy(np.asarray(np.load(path, allow_pickle=False), dtype=np.float32))
        if array.dim() != 2:
            raise ValueError(f'{path}: expected a (K, D) array, got {tuple(array.shape)}')
        return None, array
    table = load_text_embeddings(path, texts if path.endswith('.npy') else None)
    order = list(table) if texts is None else texts
    missing = [t for t in order if t not in table]
    if missing:
        raise ValueError(
            f'{path}: no embedding for {missing[:10]} (the file has {list(table)[:10]})'
        )
    return order, torch.stack([table[t].float().reshape(-1) for t in order])


def prompt_feats(embeddings: Tensor, adapter: nn.Module | None = None) -> Tensor:
    """The (K, D) class embeddings the network scores regions against: the learned
    ``embeddings`` (K, D), through the residual MLP ``adapter`` when there is one, then
    L2-normalised (as the text model's embeddings are)."""
    feats = embeddings
    if adapter is not None:
        feats = adapter(feats) + feats
    return nn.functional.normalize(feats, dim=-1, p=2)


def build_adapter(prompt_dim: int) -> nn.Sequential:
    """Upstream's ``use_mlp_adapter``: Linear(D, 2D), ReLU, Linear(2D, D)
    (state dict keys ``adapter.0.*``, ``adapter.2.*``)."""
    return nn.Sequential(
        nn.Linear(prompt_dim, prompt_dim * 2), nn.ReLU(True), nn.Linear(prompt_dim * 2, prompt_dim)
    )


@MODELS.register_module()
class SimpleYOLOWorldDetector(YOLOWorldDetector):
    """YOLO-World whose vocabulary is part of the model: learned class embeddings (prompt
    tuning) or texts folded into the weights (reparameterized); see the module docstring.

    The image side (backbone, neck, head) is that of :class:`YOLOWorldDetector`; the texts of
    the data samples are not used: class ``i`` is row ``i`` of ``embeddings`` (the dataset's
    class order), or the ``i``-th text given to the converter. The backbone needs no text
    model (``text_model=None, with_text_model=False``, as upstream's configs).

    State dict: the detector's keys plus, in prompt tuning, ``embeddings`` (num_prompts,
    prompt_dim) (and ``adapter.*`` with ``use_mlp_adapter``), so loading a YOLO-World
    checkpoint (``load_from``) leaves the embeddings as initialised from ``embedding_path``.

    Args:
        *args, **kwargs: those of :class:`YOLOWorldDetector` (``mm_neck``,
            ``num_train_classes``, ``num_test_classes``, ``use_syncbn``, backbone, neck, ...).
        prompt_dim (int): D, the text embedding width. Defaults to 512.
        num_prompts (int): K, the number of classes (prompt tuning). Defaults to 80.
        embedding_path (str): the initial embeddings (see :func:`read_prompt_embeddings`);
            '' draws random unit vectors (upstream). Defaults to ''.
        prompt_texts (list[str], optional): ai4rs extension: the texts of the K rows,
            picked from a ``.pt`` embeddings file in this order (also the texts the
            export tool names the rows with by default). Defaults to the file's order.
        reparameterized (bool): the vocabulary is folded into the neck and head (Rep
            layers); no embeddings. Defaults to False.
        freeze_prompt (bool): ``embeddings.requires_grad = False``. Defaults to False.
        use_mlp_adapter (bool): learn a residual MLP on the embeddings. Defaults to False.

    Differences from upstream: in prompt tuning the class embeddings the network gets are
    L2-normalised also without the adapter (upstream normalises only after the adapter), so
    an exported embedding means the same to the YOLO-World detector, whose text model and
    prompt tables give unit vectors; predictions always score the K prompts
    (``num_test_classes`` must be K). In the reparameterized mode upstream calls the head
    without its text arguments (a signature its head does not have); here they are None and
    the Rep head ignores them.

    Raises:
        ValueError: the file's table is not (num_prompts, prompt_dim),
            ``num_train_classes`` / ``num_test_classes`` differ from ``num_prompts``, or
            a reparameterized model's backbone has a text model.
    """

    takes_texts = False

    def __init__(
        self,
        *args,
        prompt_dim: int = 512,
        num_prompts: int = 80,
        embedding_path: str = '',
        prompt_texts: Sequence[str] | None = None,
        reparameterized: bool = False,
        freeze_prompt: bool = False,
        use_mlp_adapter: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.prompt_dim = prompt_dim
        self.num_prompts = num_prompts
        self.reparameterized = reparameterized
        self.freeze_prompt = freeze_prompt
        self.use_mlp_adapter = use_mlp_adapter
        self.embedding_path = embedding_path
        self.prompt_texts = None
        self.adapter = None
        if reparameterized:
            if getattr(self.backbone, 'with_text_model', False):
                raise ValueError(
                    'SimpleYOLOWorldDetector(reparameterized=True): the backbone must be built '
                    'without a text model (text_model=None, with_text_model=False)'
                )
            return
        for name in ('num_train_classes', 'num_test_classes'):
            if getattr(self, name) != num_prompts:
                raise ValueError(
                    f'SimpleYOLOWorldDetector: {name}={getattr(self, name)} but '
                    f'num_prompts={num_prompts}: class i is prompt i'
                )
        if embedding_path:
            texts, embeddings = read_prompt_embeddings(embedding_path, prompt_texts)
            if tuple(embeddings.shape) != (num_prompts, prompt_dim):
                raise ValueError(
                    f'SimpleYOLOWorldDetector: {embedding_path} holds a '
                    f'{tuple(embeddings.shape)} table, expected (num_prompts, prompt_dim) = '
                    f'({num_prompts}, {prompt_dim})'
                )
        else:
            texts = None if prompt_texts is None else list(prompt_texts)
            embeddings = nn.functional.normalize(torch.randn(num_prompts, prompt_dim), dim=-1)
        if texts is not None and len(texts) != num_prompts:
            raise ValueError(
                f'SimpleYOLOWorldDetector: {len(texts)} prompt_texts for num_prompts={num_prompts}'
            )
        self.prompt_texts = texts
        self.embeddings = nn.Parameter(embeddings, requires_grad=not freeze_prompt)
        self.adapter = build_adapter(prompt_dim) if use_mlp_adapter else None

    def class_feats(self, batch_size: int) -> Tensor:
        """(B, K, D) class embeddings for a batch of ``batch_size`` images (prompt tuning)."""
        feats = prompt_feats(self.embeddings, self.adapter)
        return feats[None].expand(batch_size, -1, -1)

    def extract_feat(self, batch_inputs: Tensor, batch_data_samples=None) -> tuple:
        """Image features (through the neck, guided by the class embeddings when
        ``mm_neck``), the (B, K, D) class embeddings (None when reparameterized: the
        vocabulary is in the weights) and no text masks; the data samples' texts are
        ignored."""
        img_feats = self.backbone.forward_image(batch_inputs)
        if self.reparameterized:
            if not self.with_neck:
                return img_feats, None, None
            neck = self.neck(img_feats, None) if self.mm_neck else self.neck(img_feats)
            return neck, None, None
        txt_feats = self.class_feats(batch_inputs.shape[0])
        return self._neck(img_feats, txt_feats), txt_feats, None

    def predict(self, batch_inputs: Tensor, batch_data_samples: list, rescale: bool = True) -> list:
        """Data samples with ``pred_instances`` (labels index the K prompts)."""
        img_feats, txt_feats, txt_masks = self.extract_feat(batch_inputs, batch_data_samples)
        self.bbox_head.num_classes = (
            self.num_test_classes if self.reparameterized else self.num_prompts
        )
        results_list = self.bbox_head.predict(
            img_feats, txt_feats, txt_masks, batch_data_samples, rescale=rescale
        )
        return self.add_pred_to_datasample(batch_data_samples, results_list)

    def reparameterize(self, *args, **kwargs) -> None:
        raise RuntimeError(
            'SimpleYOLOWorldDetector: the vocabulary is part of the model already; for prompt '
            'tuning export the learned embeddings (tools/misc/export_prompt_embeddings.py) and '
            'use them with YOLOWorldDetector'
        )
