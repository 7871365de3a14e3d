"""``--text-model``: the CLIP text model and vocabulary of YOLO-World configs (analysis tools).

``get_flops.py``, ``benchmark.py`` and ``profile_train_step.py`` take ``--text-model DIR``
(a local CLIP directory such as a download of ``openai/clip-vit-base-patch32``). Without
it they write a randomly initialised text model of CLIP ViT-B/32's architecture
(:func:`ai4rs.testing.tiny_clip.make_tiny_clip` with ``size='vit-b-32'``) to a temporary
directory: parameter and FLOP counts and timings depend on the architecture only (and on
the token count: the vocabulary's words are made single tokens, as CLIP's tokenizer does
for common words).
"""

import ai4rs  # noqa: F401,I001  (first: sets the OpenMP wait policy before torch loads)
import argparse
import json
import os.path as osp

from mmengine.config import Config

from ai4rs.testing.tiny_clip import make_tiny_clip

WORLD_DETECTORS = ('YOLOWorldDetector',)


def add_text_model_argument(parser: argparse.ArgumentParser) -> None:
    """``--text-model DIR`` (YOLO-World configs only)."""
    parser.add_argument(
        '--text-model',
        default=None,
        metavar='DIR',
        help='YOLO-World configs: a local CLIP text model directory (e.g. '
        'openai/clip-vit-base-patch32 downloaded with `hf download ... --local-dir DIR`); '
        'default: a randomly initialised CLIP ViT-B/32 text model written to a temp dir',
    )


def is_yolo_world(cfg: Config) -> bool:
    """Whether ``cfg.model`` is a YOLO-World detector (a text model + image model)."""
    return str(cfg.model.get('type', '')).split('.')[-1] in WORLD_DETECTORS


def vocabulary(cfg: Config, num_texts: int) -> list[str]:
    """``num_texts`` strings: the config's class texts (``class_text_path``: a JSON list of
    lists of strings, the first string of each list is taken), repeated or cut to
    ``num_texts``; ``class 0``, ``class 1``, ... when the config names no file."""
    path = cfg.get('class_text_path')
    texts = []
    if isinstance(path, str) and osp.isfile(path):
        with open(path, encoding='utf-8') as f:
            texts = [t[0] if isinstance(t, (list, tuple)) else t for t in json.load(f)]
    if not texts:
        texts = [f'class {i}' for i in range(num_texts)]
    return [texts[i % len(texts)] for i in range(num_texts)]


def set_text_model(
    cfg: Config, text_model: str | None, tmpdir: str, words: list[str] = ()
) -> tuple[str, bool]:
    """Point ``cfg.model.backbone.text_model.model_name`` at ``text_model``, or at a random
    ViT-B/32-sized CLIP written to ``tmpdir`` (``words`` become single tokens).

    Returns:
        tuple: (the directory, whether its weights are random).
    """
    text_cfg = cfg.model.backbone.get('text_model')
    if text_cfg is None or 'model_name' not in text_cfg:
        raise ValueError(
            'YOLO-World config without a HuggingCLIPLanguageBackbone text model '
            f'(model.backbone.text_model = {text_cfg})'
        )
    if text_model is not None:
        if not osp.isdir(text_model):
            raise FileNotFoundError(f'--text-model {text_model}: no such directory')
        text_cfg.model_name = text_model
        return text_model, False
    path = make_tiny_clip(osp.join(tmpdir, 'clip_vit_b32_random'), size='vit-b-32', words=words)
    text_cfg.model_name = path
    return path, True
