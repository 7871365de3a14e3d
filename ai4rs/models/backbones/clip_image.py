"""CLIP's image tower for image prompts: example crops -> embeddings in the text space.

YOLO-World scores regions against L2-normalised CLIP text embeddings. CLIP's image tower
(``CLIPVisionModelWithProjection``) maps an image into the same space, so the embedding of
example crops of an object can stand where a class's text embedding stands (an *image
prompt*). Loading follows the text model's rules (:mod:`.clip_text`): a local directory,
then the local Hugging Face cache, never the network unless ``AI4RS_ALLOW_DOWNLOAD=1``. A
whole CLIP checkpoint (``openai/clip-vit-base-patch32``, the directory a YOLO-World config
names as its text model) holds the image tower too.

Crops are prepared as CLIP's image processor does: shortest side resized to the tower's
``image_size`` (bicubic; OpenCV's, where the reference processor uses PIL's), centre crop
to ``image_size`` x ``image_size``, RGB scaled to [0, 1], normalised with the mean / std
of ``preprocessor_config.json`` when the directory has one, else CLIP's.
"""

from __future__ import annotations

import json
import os.path as osp
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from .clip_text import (
    ALLOW_DOWNLOAD_ENV,
    _import_transformers,
    download_allowed,
    where_looked,
)

# CLIP's image normalisation (the processor config of openai/clip-vit-base-patch32)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def clip_vision_not_found_message(model_name: str, reason: str = '') -> str:
    """Where the image tower was looked for and how to get it."""
    where, hub_id = where_looked(model_name, 'CLIP image tower with projection')
    msg = (
        f'cannot load the CLIP image tower {model_name!r} (for image prompts).\n'
        f'Looked in:\n{where}'
        f'Downloads are {"allowed" if download_allowed() else "off"} '
        f'(ai4rs loads offline unless {ALLOW_DOWNLOAD_ENV}=1).\n'
        'A whole CLIP checkpoint holds it (the same one as the text model); to get one:\n'
        f'  hf download {hub_id} --local-dir <DIR>   (then --vision-model <DIR>), or\n'
        f'  run once with {ALLOW_DOWNLOAD_ENV}=1 to download {hub_id!r} into the cache.'
    )
    if reason:
        msg += f'\nUnderlying error (transformers): {reason}'
    return msg


def _processor_settings(path: str, image_size: int) -> tuple[int, tuple, tuple]:
    """(size, mean, std) from ``preprocessor_config.json`` in ``path`` if present."""
    size, mean, std = image_size, CLIP_MEAN, CLIP_STD
    config = osp.join(path, 'preprocessor_config.json')
    if osp.isfile(config):
        with open(config, encoding='utf-8') as f:
            cfg = json.load(f)
        mean = tuple(cfg.get('image_mean', mean))
        std = tuple(cfg.get('image_std', std))
    return size, mean, std


class CLIPImageEncoder:
    """``CLIPVisionModelWithProjection`` + CLIP's crop preparation.

    Args:
        model_name (str): a local directory (a whole CLIP checkpoint or an image tower
            saved with ``save_pretrained``) or a hub id (offline unless allowed).
        device (str): e.g. ``'cpu'``.

    Attributes:
        embed_dim (int): width D of the embeddings (``projection_dim``; 512 for
            ViT-B/32, the width of its text embeddings).
        image_size (int): the side the crops are resized / cropped to.

    Raises:
        FileNotFoundError: the tower cannot be found (the message says where it was
            looked for and how to get it).
    """

    def __init__(self, model_name: str, device: str = 'cpu') -> None:
        transformers = _import_transformers()
        path = osp.expanduser(model_name)
        source = path if osp.isdir(path) else model_name
        verbosity = transformers.logging.get_verbosity()
        transformers.logging.set_verbosity_error()  # a whole CLIP's text weights are unused
        try:
            model, info = transformers.CLIPVisionModelWithProjection.from_pretrained(
                source, local_files_only=not download_allowed(), output_loading_info=True
            )
        except (OSError, ValueError, KeyError) as err:
            raise FileNotFoundError(clip_vision_not_found_message(model_name, str(err))) from None
        finally:
            transformers.logging.set_verbosity(verbosity)
        missing = [k for k in info.get('missing_keys', ()) if not k.endswith('position_ids')]
        if missing:
            raise ValueError(
                f'{model_name!r} is not a complete CLIP image tower with projection: no '
                f'weights for {sorted(missing)[:5]} (a text-only CLIP checkpoint has none)'
            )
        self.model_name = model_name
        self.model = model.to(device).eval()
        self.embed_dim = int(model.config.projection_dim)
        self.image_size, self.mean, self.std = _processor_settings(
            path if osp.isdir(path) else '', int(model.config.image_size)
        )

    def prepare(self, crops_bgr: Sequence[np.ndarray]) -> Tensor:
        """BGR uint8 crops (H, W, 3), any sizes -> (N, 3, S, S) normalised float32."""
        import cv2

        s = self.image_size
        out = []
        for crop in crops_bgr:
            h, w = crop.shape[:2]
            scale = s / min(h, w)
            nh, nw = max(s, round(h * scale)), max(s, round(w * scale))
            img = cv2.resize(crop, (nw, nh), interpolation=cv2.INTER_CUBIC)
            top, left = (nh - s) // 2, (nw - s) // 2
            img = img[top : top + s, left : left + s, ::-1].astype(np.float32) / 255.0
            img = (img - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
            out.append(torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))))
        return torch.stack(out)

    @torch.no_grad()
    def encode(self, crops_bgr: Sequence[np.ndarray], batch_size: int = 32) -> Tensor:
        """BGR uint8 crops -> (N, D) L2-normalised image embeddings."""
        feats = []
        device = next(self.model.parameters()).device
        for i in range(0, len(crops_bgr), batch_size):
            pixels = self.prepare(crops_bgr[i : i + batch_size]).to(device)
            feats.append(self.model(pixel_values=pixels).image_embeds.float().cpu())
        feats = torch.cat(feats)
        return feats / feats.norm(p=2, dim=-1, keepdim=True)
