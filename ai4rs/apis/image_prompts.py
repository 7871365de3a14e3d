"""Image prompts for YOLO-World: example crops of an object instead of (or beside) a text.

A prompt file or folder names classes and their example crops:

- a folder with one sub-folder per class, each holding crop images
  (``prompts/my_mug/1.jpg``, ``prompts/my_mug/2.png``, ...): each whole image is a crop;
- a JSON file ``{"my_mug": [{"image": "desk.jpg", "box": [x1, y1, x2, y2]}, ...], ...}``:
  boxes in pixels of the image (relative image paths are relative to the JSON file); an
  entry without ``box`` uses the whole image;
- a saved embeddings file (``.pt``/``.pth``, written by
  ``tools/misc/generate_image_prompts.py``): ``{class: (D,) embedding}``.

:func:`image_prompt_embeddings` embeds every crop with CLIP's image tower
(:class:`ai4rs.models.backbones.clip_image.CLIPImageEncoder`), L2-normalises each, averages
them per class and normalises the mean: one (D,) embedding per class, in the space of
CLIP's text embeddings. :func:`inference_detector` (``prompt_embeddings=``) then uses them
exactly where text embeddings are used; prompts not in the table still go through the text
model, so a vocabulary mixes both.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import os.path as osp
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
EMBEDDING_EXTS = ('.pt', '.pth')


def read_prompt_spec(path: str) -> dict[str, list[dict]]:
    """A prompt folder or JSON file -> ``{class: [{'image': path, 'box': box | None}]}``.

    Raises:
        FileNotFoundError: ``path`` (or a folder's class) has no crops.
        ValueError: malformed JSON (names the file and the entry).
    """
    if osp.isdir(path):
        spec = {}
        for name in sorted(os.listdir(path)):
            folder = osp.join(path, name)
            if not osp.isdir(folder):
                continue
            files = sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTS))
            if not files:
                raise FileNotFoundError(
                    f'image prompts {path}: class folder {name!r} holds no image'
                )
            spec[name] = [dict(image=osp.join(folder, f), box=None) for f in files]
        if not spec:
            raise FileNotFoundError(
                f'image prompts {path}: expected one sub-folder of crop images per class'
            )
        return spec
    if not osp.isfile(path):
        raise FileNotFoundError(f'image prompts {path}: no such file or folder')
    with open(path, encoding='utf-8') as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f'image prompts {path}: not JSON ({err})') from None
    if not isinstance(data, dict) or not data:
        raise ValueError(
            f'image prompts {path}: expected {{"class": [{{"image": ..., "box": ...}}]}}'
        )
    root = osp.dirname(osp.abspath(path))
    spec = {}
    for name, entries in data.items():
        if not isinstance(entries, list) or not entries:
            raise ValueError(f'image prompts {path}: class {name!r} needs a non-empty list')
        spec[name] = []
        for i, entry in enumerate(entries):
            if isinstance(entry, str):
                entry = dict(image=entry)
            if not isinstance(entry, dict) or 'image' not in entry:
                raise ValueError(f'image prompts {path}: {name!r} entry {i} has no "image"')
            image = entry['image'] if osp.isabs(entry['image']) else osp.join(root, entry['image'])
            spec[name].append(
                dict(image=image, box=entry.get('box'), where=f'{path}: {name!r} entry {i}')
            )
    return spec


def crop_box(img: np.ndarray, box, where: str) -> np.ndarray:
    """The pixels of ``box`` (x1, y1, x2, y2, pixels) in ``img`` (H, W, 3).

    Raises:
        ValueError: not 4 finite numbers, zero or negative area, or outside the image
            (``where`` names the file and entry).
    """
    h, w = img.shape[:2]
    try:
        x1, y1, x2, y2 = (float(v) for v in box)
    except (TypeError, ValueError):
        raise ValueError(f'{where}: box must be [x1, y1, x2, y2], got {box!r}') from None
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        raise ValueError(f'{where}: box {box} is not finite')
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f'{where}: box {box} has zero area (x2 <= x1 or y2 <= y1)')
    if x1 < 0 or y1 < 0 or x2 > w or y2 > h:
        raise ValueError(f'{where}: box {box} lies outside the image ({w} x {h} pixels)')
    c = img[int(math.floor(y1)) : int(math.ceil(y2)), int(math.floor(x1)) : int(math.ceil(x2))]
    if c.size == 0:
        raise ValueError(f'{where}: box {box} covers no whole pixel')
    return c


def load_crops(spec: Mapping[str, Sequence[dict]]) -> dict[str, list[np.ndarray]]:
    """``{class: [BGR uint8 crop]}`` from :func:`read_prompt_spec`'s entries."""
    import cv2

    crops = {}
    for name, entries in spec.items():
        crops[name] = []
        for entry in entries:
            img = cv2.imread(entry['image'], cv2.IMREAD_COLOR)
            where = entry.get('where', entry['image'])
            if img is None:
                raise ValueError(
                    f'{where}: cannot read image {entry["image"]} (missing or corrupt)'
                )
            box = entry.get('box')
            crops[name].append(img if box is None else crop_box(img, box, where))
    return crops


def image_prompt_embeddings(
    encoder, crops: Mapping[str, Sequence[np.ndarray]]
) -> dict[str, Tensor]:
    """``{class: (D,)}``: the mean of the L2-normalised embeddings of its crops,
    normalised (``encoder``: a :class:`~ai4rs.models.backbones.clip_image.CLIPImageEncoder`)."""
    names = list(crops)
    flat = [c for n in names for c in crops[n]]
    feats = encoder.encode(flat)
    out, start = {}, 0
    for name in names:
        mean = feats[start : start + len(crops[name])].mean(0)
        out[name] = mean / mean.norm(p=2).clamp_min(1e-12)
        start += len(crops[name])
    return out


def save_prompt_embeddings(table: Mapping[str, Tensor], path: str) -> None:
    """Write ``{class: (D,)}`` as a ``.pt`` file (the format of text-embedding files, read
    by :func:`load_prompt_embeddings` and ``PseudoLanguageBackbone``)."""
    if not path.endswith(EMBEDDING_EXTS):
        raise ValueError(f'prompt embeddings are written as .pt / .pth, got {path}')
    torch.save({k: v.detach().float().cpu().clone() for k, v in table.items()}, path)


def load_prompt_embeddings(path: str) -> dict[str, Tensor]:
    """A saved ``{class: (D,)}`` file (image or text embeddings)."""
    from ai4rs.models.backbones.clip_text import load_text_embeddings

    return load_text_embeddings(path)


def image_prompts_from(
    path: str, vision_model: str | None = None, device: str = 'cpu'
) -> dict[str, Tensor]:
    """``{class: (D,)}`` from a saved embeddings file, or from a folder / JSON file of crops
    embedded with the CLIP image tower ``vision_model`` (a local directory)."""
    if path.endswith(EMBEDDING_EXTS):
        return load_prompt_embeddings(path)
    spec = read_prompt_spec(path)
    if vision_model is None:
        raise ValueError(f'image prompts {path}: crops need a CLIP image tower (vision_model)')
    from ai4rs.models.backbones.clip_image import CLIPImageEncoder

    encoder = CLIPImageEncoder(vision_model, device=device)
    return image_prompt_embeddings(encoder, load_crops(spec))


def mixed_vocabulary(texts: Sequence[str] | None, image_classes: Sequence[str]) -> list[str]:
    """``texts`` then the image-prompt classes; a class named twice is refused."""
    texts = list(texts or [])
    both = sorted(set(texts) & set(image_classes))
    if both:
        raise ValueError(
            f'{both} named both as texts and as image prompts: give each class one prompt'
        )
    return texts + list(image_classes)


def model_embed_dim(model) -> int | None:
    """Width D of the embeddings ``model`` scores regions against."""
    if getattr(model, 'text_input', False):  # an OnnxDetector with a run-time vocabulary
        return int(model.meta['text_dim'])
    head_module = getattr(getattr(model, 'bbox_head', None), 'head_module', None)
    return getattr(head_module, 'embed_dims', None)


@contextlib.contextmanager
def prompt_embeddings_installed(
    model, table: Mapping[str, Tensor], vocab: Sequence[str], prompt_format: str = '{}'
):
    """Within the block ``model`` encodes the prompts of ``table`` (``{class: (D,)}``)
    with those embeddings and the other prompts of ``vocab`` with its text model.

    ``prompt_format`` is the test pipeline's ``LoadText`` format (the data samples carry
    formatted prompts). A PyTorch YOLO-World detector or an :class:`OnnxDetector`
    exported with ``--text-input``.

    Raises:
        ValueError: a width that is not the model's (both named), or a model with its
            vocabulary baked in (an ONNX file exported without ``--text-input``).
    """
    from ai4rs.models.backbones.prompt_table import PromptEmbeddingTable

    width = {int(torch.as_tensor(v).numel()) for v in table.values()}
    expected = model_embed_dim(model)
    if expected is not None and width != {expected}:
        raise ValueError(
            f'prompt embeddings of width {sorted(width)} do not fit the model, which takes '
            f'embeddings of width {expected}'
        )
    formatted = {prompt_format.format(k): v for k, v in table.items()}
    needs_text_model = any(t not in table for t in vocab)
    if hasattr(model, 'backbone'):
        backbone = model.backbone
        old = backbone.text_model, backbone.with_text_model
        fallback = old[0] if needs_text_model else None
        if needs_text_model and fallback is None:
            raise ValueError(
                f'{[t for t in vocab if t not in table][:10]}: no prompt embedding, and the '
                'model has no text model to encode them'
            )
        backbone.text_model = PromptEmbeddingTable(formatted, fallback)
        backbone.with_text_model = True
        try:
            yield model
        finally:
            backbone.text_model, backbone.with_text_model = old
        return
    if not getattr(model, 'text_input', False):
        raise ValueError(
            f'{type(model).__name__} has its vocabulary baked in: prompt embeddings need a '
            'model with a text model, or an .onnx file exported with --text-input'
        )
    old = model.swap_text_model(
        PromptEmbeddingTable(formatted, model.text_model if needs_text_model else None)
    )
    try:
        yield model
    finally:
        model.swap_text_model(old)
