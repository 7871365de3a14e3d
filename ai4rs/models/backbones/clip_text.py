"""Text encoders of YOLO-World: the CLIP text model and a saved-embeddings stand-in.

``transformers`` is an optional extra (``pip install "ai4rs[multimodal]"``): it is
imported only when a CLIP text model is built, so ``import ai4rs`` and the rotated
detectors work without it.

Loading never goes to the network unless the user allows it: ``model_name`` (a local
directory or a hub id such as ``openai/clip-vit-base-patch32``) is looked up in the
directory, then in the local Hugging Face cache. Set the environment variable
``AI4RS_ALLOW_DOWNLOAD=1`` to let a hub id be downloaded into that cache
(``HF_HUB_OFFLINE=1`` still wins and keeps everything offline).
"""

from __future__ import annotations

import json
import os
import os.path as osp
from collections.abc import Sequence

import numpy as np
import torch
from mmengine.model import BaseModule
from torch import Tensor

from ai4rs.registry import MODELS

ALLOW_DOWNLOAD_ENV = 'AI4RS_ALLOW_DOWNLOAD'


def download_allowed() -> bool:
    """Whether hub ids may be downloaded: ``AI4RS_ALLOW_DOWNLOAD`` is set to
    1/true/yes and ``HF_HUB_OFFLINE`` is not set to 1/true/yes."""

    def on(name):
        return os.environ.get(name, '').strip().lower() in ('1', 'true', 'yes', 'on')

    return on(ALLOW_DOWNLOAD_ENV) and not on('HF_HUB_OFFLINE')


def _import_transformers():
    try:
        import transformers
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            'The CLIP text encoder of YOLO-World needs the optional package `transformers`: '
            'pip install "ai4rs[multimodal]" (or pip install transformers)'
        ) from err
    return transformers


def _hf_cache_dir() -> str:
    try:
        from huggingface_hub import constants

        return str(constants.HF_HUB_CACHE)
    except ImportError:  # pragma: no cover
        return osp.join(osp.expanduser('~'), '.cache', 'huggingface', 'hub')


def where_looked(model_name: str, missing: str) -> tuple[str, str]:
    """Where a CLIP model ``model_name`` was looked for (the lines of a not-found message;
    ``missing`` names what a local directory lacked) and the hub id to fetch it by."""
    local = osp.abspath(osp.expanduser(model_name))
    if osp.isdir(local):
        where = (
            f'  - the local directory {local} exists but holds no {missing} '
            f'(it contains: {sorted(os.listdir(local))})\n'
        )
    else:
        where = f'  - the local directory {local} (does not exist)\n'
    where += f'  - the Hugging Face cache {_hf_cache_dir()} (as hub id {model_name!r})\n'
    hub_id = (
        model_name
        if model_name.count('/') == 1 and not osp.isdir(local)
        else 'openai/clip-vit-base-patch32'
    )
    return where, hub_id


def clip_not_found_message(model_name: str, reason: str = '') -> str:
    """The one error text for a CLIP text model that cannot be loaded: where it
    was looked for and how to get it."""
    where, hub_id = where_looked(model_name, 'complete CLIP text model + tokenizer')
    msg = (
        f'HuggingCLIPLanguageBackbone: cannot load the CLIP text model {model_name!r}.\n'
        f'Looked in:\n{where}'
        f'Downloads are {"allowed" if download_allowed() else "off"} '
        f'(ai4rs loads offline unless {ALLOW_DOWNLOAD_ENV}=1).\n'
        'To get the model, either\n'
        f'  hf download {hub_id} --local-dir <DIR>   (then model_name=<DIR>; with an older\n'
        f'  huggingface_hub: huggingface-cli download {hub_id} --local-dir <DIR>), or\n'
        '  python -c "from transformers import AutoTokenizer, CLIPTextModelWithProjection as M; '
        f"M.from_pretrained('{hub_id}').save_pretrained('<DIR>'); "
        f"AutoTokenizer.from_pretrained('{hub_id}').save_pretrained('<DIR>')\", or\n"
        f'  run once with {ALLOW_DOWNLOAD_ENV}=1 to download {hub_id!r} into the cache.'
    )
    if reason:
        msg += (
            f'\nUnderlying error (transformers, local_files_only='
            f'{not download_allowed()}): {reason}'
        )
    return msg


WEIGHT_FILES = (
    'model.safetensors',
    'model.safetensors.index.json',
    'pytorch_model.bin',
    'pytorch_model.bin.index.json',
)


def is_config_only_dir(path: str) -> bool:
    """A local directory with ``config.json`` but no weight file: the text model
    is then built from the config and its weights must come from a checkpoint."""
    path = osp.expanduser(path)
    return (
        osp.isdir(path)
        and osp.isfile(osp.join(path, 'config.json'))
        and not any(osp.isfile(osp.join(path, f)) for f in WEIGHT_FILES)
    )


def load_clip_text(model_name: str, dropout: float = 0.0):
    """Load ``(tokenizer, CLIPTextModelWithProjection, has_weights)`` offline
    unless allowed.

    A local directory holding only ``config.json`` and the tokenizer files
    (no weight file) gives a model built from the config with
    ``has_weights=False``: its weights must then come from a detector
    checkpoint (YOLO-World checkpoints hold them).

    Args:
        model_name (str): a local directory or a hub id.
        dropout (float): the text config's ``attention_dropout``.

    Raises:
        FileNotFoundError: one message saying where the model was looked for and
            how to get it.
        ValueError: the checkpoint lacks weights the model needs (e.g. a
            ``CLIPTextModel`` has no ``text_projection``).
    """
    transformers = _import_transformers()
    local_only = not download_allowed()
    path = osp.expanduser(model_name)
    source = path if osp.isdir(path) else model_name
    if is_config_only_dir(path):
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(source, local_files_only=True)
            config = transformers.CLIPTextConfig.from_pretrained(
                source, attention_dropout=dropout, local_files_only=True
            )
        except (OSError, ValueError, KeyError) as err:
            raise FileNotFoundError(clip_not_found_message(model_name, str(err))) from None
        return tokenizer, transformers.CLIPTextModelWithProjection(config), False
    verbosity = transformers.logging.get_verbosity()
    # a full CLIPModel checkpoint (the usual hub layout) holds vision weights that the text
    # model does not use; transformers would print them all as unexpected keys
    transformers.logging.set_verbosity_error()
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(source, local_files_only=local_only)
        config = transformers.CLIPTextConfig.from_pretrained(
            source, attention_dropout=dropout, local_files_only=local_only
        )
        model, info = transformers.CLIPTextModelWithProjection.from_pretrained(
            source, config=config, local_files_only=local_only, output_loading_info=True
        )
    except (OSError, ValueError, KeyError) as err:
        raise FileNotFoundError(clip_not_found_message(model_name, str(err))) from None
    finally:
        transformers.logging.set_verbosity(verbosity)
    missing = sorted(k for k in info.get('missing_keys', ()) if not k.endswith('position_ids'))
    mismatched = list(info.get('mismatched_keys', ()))
    if missing or mismatched:
        raise ValueError(
            f'HuggingCLIPLanguageBackbone: {model_name!r} is not a complete CLIP text model with '
            f'projection: no weights for {missing[:5]}, shape mismatch for {mismatched[:5]}. '
            'Use a CLIPModel or CLIPTextModelWithProjection checkpoint such as '
            'openai/clip-vit-base-patch32 (a CLIPTextModel has no text_projection).'
        )
    return tokenizer, model, True


def _flatten_texts(text: Sequence[Sequence[str]]) -> tuple[list[str], int]:
    """B lists of K strings -> (B*K strings, K); all lists must have the same K."""
    if isinstance(text, str) or not all(isinstance(t, (list, tuple)) for t in text):
        raise TypeError(
            'text must be a list (batch) of lists of strings, got '
            f'{type(text).__name__} of {[type(t).__name__ for t in text][:3]}'
        )
    num_per_batch = [len(t) for t in text]
    if len(set(num_per_batch)) != 1:
        raise ValueError(
            f'every image of a batch needs the same number of texts, got {num_per_batch}'
        )
    flat = [s for t in text for s in t]
    bad = [s for s in flat if not isinstance(s, str)]
    if bad:
        raise TypeError(f'texts must be strings, got {bad[:3]}')
    return flat, num_per_batch[0]


@MODELS.register_module()
class HuggingCLIPLanguageBackbone(BaseModule):
    """CLIP text encoder: ``transformers.CLIPTextModelWithProjection`` + tokenizer.

    The text embedding of a string is the projected EOS feature
    (``text_embeds``, ``projection_dim`` wide: 512 for ViT-B/32), L2-normalised.

    State dict keys: ``model.text_model.*`` and ``model.text_projection.weight``
    (as upstream). ``model.text_model.embeddings.position_ids``, which older
    transformers versions saved, is accepted and dropped when loading.

    Freezing and the cache: ``frozen_modules=('all',)`` keeps the whole model in
    eval mode with ``requires_grad=False`` (also through ``train()``); a prefix
    list such as ``('text_model.embeddings',)`` freezes those submodules only.
    While the whole model is frozen (no parameter requires grad and it is in eval
    mode) the embedding of each string is computed once (outside any autocast,
    in the model's dtype) and cached, so a fixed vocabulary does not re-run CLIP
    every iteration. As soon as the model can
    change (any parameter trainable, or ``load_state_dict``) the cache is
    cleared and not used.

    Args:
        model_name (str): local directory or hub id (loaded offline, see the
            module docstring).
        frozen_modules (Sequence[str]): ``('all',)`` or module-name prefixes;
            ``()`` trains the text model. Defaults to ``('all',)``.
        dropout (float): ``attention_dropout`` of the text config. Defaults to 0.
        training_use_cache (bool): accepted for upstream config compatibility;
            upstream b1b09f2 stores it without using it. Caching here depends on
            the frozen state only.
        init_cfg (dict, optional): unused for the pretrained text model, which
            ``init_weights`` never re-initialises.

    Weights from a checkpoint only: when ``model_name`` is a directory with
    ``config.json`` and the tokenizer files but no weight file, the model is
    built from the config and must get its weights from ``load_state_dict``
    (e.g. ``load_from`` a YOLO-World checkpoint); until then ``forward`` raises
    instead of returning embeddings of random weights.
    """

    def __init__(
        self,
        model_name: str,
        frozen_modules: Sequence[str] = ('all',),
        dropout: float = 0.0,
        training_use_cache: bool = False,
        init_cfg=None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        self.model_name = model_name
        self.frozen_modules = tuple(frozen_modules)
        self.training_use_cache = training_use_cache
        self.tokenizer, self.model, self.has_weights = load_clip_text(model_name, dropout)
        self._cache: dict[str, Tensor] = {}
        self._freeze_modules()
        self._register_load_state_dict_pre_hook(self._drop_legacy_keys)

    # ----------------------------------------------------------- freezing
    def _freeze_modules(self) -> None:
        if not self.frozen_modules:
            return
        if self.frozen_modules[0] == 'all':
            self.model.eval()
            for param in self.model.parameters():
                param.requires_grad = False
            return
        for name, module in self.model.named_modules():
            if any(name.startswith(prefix) for prefix in self.frozen_modules):
                module.eval()
                for param in module.parameters():
                    param.requires_grad = False

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_modules()
        if not self.is_frozen:
            self._cache.clear()
        return self

    def init_weights(self) -> None:
        """The text model is pretrained: never re-initialise it."""
        self._is_init = True

    @property
    def is_frozen(self) -> bool:
        """True when the text model cannot change: every parameter has
        ``requires_grad=False`` and the model is in eval mode."""
        return not self.model.training and not any(p.requires_grad for p in self.model.parameters())

    def clear_cache(self) -> None:
        """Forget every cached embedding."""
        self._cache.clear()

    def _drop_legacy_keys(self, state_dict, prefix, *args, **kwargs) -> None:
        # older transformers versions saved the position_ids buffer; current ones do
        # not (non-persistent buffer), so an old checkpoint would show it as an
        # unexpected key. Any load may change the weights: the cache is dropped.
        state_dict.pop(prefix + 'model.text_model.embeddings.position_ids', None)
        self._cache.clear()
        own = [prefix + 'model.' + k for k in self.model.state_dict()]
        if all(k in state_dict for k in own):
            self.has_weights = True

    # ----------------------------------------------------------- forward
    def encode(self, texts: list[str]) -> Tensor:
        """Strings -> (N, D) L2-normalised projected EOS features.

        Runs the text model on all strings at once (padded to the longest,
        truncated to the model's ``max_position_embeddings`` tokens).
        """
        max_len = self.model.config.max_position_embeddings
        tokens = self.tokenizer(
            text=list(texts), return_tensors='pt', padding=True, truncation=True, max_length=max_len
        )
        tokens = tokens.to(device=self.model.device)
        txt_feats = self.model(**tokens).text_embeds
        return txt_feats / txt_feats.norm(p=2, dim=-1, keepdim=True)

    def forward(self, text: Sequence[Sequence[str]]) -> Tensor:
        """Args:
            text (list[list[str]]): B lists of K strings (same K for all).

        Returns:
            Tensor: (B, K, D) L2-normalised text embeddings (D = projection_dim).
        """
        flat, num_per_image = _flatten_texts(text)
        if not self.has_weights:
            raise RuntimeError(
                f'HuggingCLIPLanguageBackbone: {self.model_name} holds no text-model weights '
                '(config and tokenizer only) and no checkpoint has supplied them yet; load a '
                'YOLO-World checkpoint (load_from / load_checkpoint) or point model_name at a '
                'full CLIP model'
            )
        if not self.is_frozen:
            self._cache.clear()
            return self.encode(flat).reshape(-1, num_per_image, self.model.config.projection_dim)
        missing = list(dict.fromkeys(s for s in flat if s not in self._cache))
        if missing:
            # cached once and reused in every later precision context, so computed in the
            # model's own dtype (never under an AMP autocast that may be active now)
            with torch.no_grad(), torch.autocast(self.model.device.type, enabled=False):
                feats = self.encode(missing)
            self._cache.update(zip(missing, feats.detach()))
        device = self.model.device
        feats = torch.stack([self._cache[s].to(device) for s in flat])
        return feats.reshape(-1, num_per_image, feats.shape[-1])


def load_text_embeddings(path: str, texts: Sequence[str] | str | None = None) -> dict[str, Tensor]:
    """Read a saved text-embedding file into ``{text: (D,) float tensor}``.

    Formats:
        - ``.pt`` / ``.pth``: a dict ``{text: (D,) tensor}`` (upstream's
          PseudoLanguageBackbone format, also written by
          ``tools/misc/generate_text_embeddings.py``), or
          ``{'texts': [...], 'embeddings': (K, D) tensor}``.
        - ``.npy``: a (K, D) array (upstream ``generate_text_prompts.py``);
          ``texts`` then gives the K strings in row order: a list, or the path
          of a JSON file holding a list of strings or of lists of strings (as
          ``coco_class_texts.json``: the first string of each list is used).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: malformed content, or row count != number of texts.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'text embedding file not found: {path}')
    if isinstance(texts, str):
        with open(texts, encoding='utf-8') as f:
            texts = json.load(f)
    if texts is not None:
        texts = [t[0] if isinstance(t, (list, tuple)) else t for t in texts]
    if path.endswith('.npy'):
        array = np.load(path, allow_pickle=False)
        embeds = torch.from_numpy(np.asarray(array, dtype=np.float32))
        if texts is None:
            raise ValueError(
                f'{path}: a .npy embedding file holds no texts; pass texts '
                '(a list or a class-text JSON file) giving its rows in order'
            )
    else:
        data = torch.load(path, map_location='cpu', weights_only=True)
        if isinstance(data, dict) and 'embeddings' in data and 'texts' in data:
            texts = list(data['texts'])
            embeds = torch.as_tensor(data['embeddings']).float()
        elif isinstance(data, dict):
            out = {}
            for key, value in data.items():
                value = torch.as_tensor(value).float().reshape(-1)
                if not isinstance(key, str):
                    raise ValueError(f'{path}: keys must be strings, got {key!r}')
                out[key] = value
            if len({v.numel() for v in out.values()}) > 1:
                raise ValueError(f'{path}: embeddings of different lengths')
            return out
        else:
            embeds = torch.as_tensor(data).float()
            if texts is None:
                raise ValueError(f'{path}: a bare (K, D) tensor holds no texts; pass texts')
    if embeds.dim() != 2 or embeds.shape[0] != len(texts):
        raise ValueError(
            f'{path}: expected ({len(texts)}, D) embeddings for {len(texts)} '
            f'texts, got {tuple(embeds.shape)}'
        )
    return {t: e for t, e in zip(texts, embeds)}


@MODELS.register_module()
class PseudoLanguageBackbone(BaseModule):
    """Text "encoder" that looks embeddings up in a saved file (no CLIP needed).

    For inference and fine-tuning with a fixed vocabulary. A text is looked up
    as is, then by its part before the first ``/`` (upstream's key rule).

    Args:
        text_embed_path (str): embedding file used in training (and in testing
            when ``test_embed_path`` is None); see :func:`load_text_embeddings`.
        test_embed_path (str, optional): embedding file used in eval mode.
        texts (list[str] | str, optional): row texts of a ``.npy`` file (ai4rs
            extension; upstream reads ``.pt`` dicts only).
        init_cfg (dict, optional): unused.
    """

    def __init__(
        self,
        text_embed_path: str = '',
        test_embed_path: str | None = None,
        texts: Sequence[str] | str | None = None,
        init_cfg=None,
    ) -> None:
        super().__init__(init_cfg)
        self.text_embed_path = text_embed_path
        self.test_embed_path = test_embed_path or text_embed_path
        self.text_embed = load_text_embeddings(text_embed_path, texts)
        self.test_embed = (
            self.text_embed
            if test_embed_path is None
            else load_text_embeddings(test_embed_path, texts)
        )
        # upstream's device anchor (a buffer named ``buff`` is in its state dict)
        self.register_buffer('buff', torch.zeros([1]))

    def lookup(self, texts: Sequence[str], table: dict[str, Tensor], path: str) -> Tensor:
        """Strings -> (N, D) embeddings; a clear error names unknown strings."""
        rows, unknown = [], []
        for text in texts:
            key = text if text in table else text.split('/')[0]
            if key in table:
                rows.append(table[key])
            else:
                unknown.append(text)
        if unknown:
            hint = (
                " ('' is the padding text of RandomLoadText(padding_to_max=True): write its "
                "embedding too, e.g. generate_text_embeddings.py ... --texts ... '')"
                if '' in unknown
                else ''
            )
            raise KeyError(
                f'PseudoLanguageBackbone: no embedding for {unknown[:10]} in {path} '
                f'({len(table)} texts, e.g. {list(table)[:5]}){hint}'
            )
        return torch.stack(rows)

    def forward(self, text: Sequence[Sequence[str]]) -> Tensor:
        """Args:
            text (list[list[str]]): B lists of K strings.

        Returns:
            Tensor: (B, K, D) float embeddings on the module's device, no grad.
        """
        flat, num_per_image = _flatten_texts(text)
        table, path = (
            (self.text_embed, self.text_embed_path)
            if self.training
            else (self.test_embed, self.test_embed_path)
        )
        feats = self.lookup(flat, table, path).to(self.buff.device).float()
        return feats.reshape(-1, num_per_image, feats.shape[-1])
