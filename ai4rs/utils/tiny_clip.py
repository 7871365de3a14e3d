"""A tiny, randomly initialised CLIP text model written to a directory (tests, quick start).

``make_tiny_clip(dirpath)`` writes a randomly initialised
``CLIPTextModelWithProjection`` (hidden 32, 2 layers, 2 heads, projection 512,
so its embeddings have the width the YOLO-World head expects) with
``save_pretrained``, plus CLIP tokenizer files made here: a byte-level BPE
vocabulary (``vocab.json``: the 256 byte symbols, the same with ``</w>``, a few
merges, then ``<|startoftext|>`` and ``<|endoftext|>``), ``merges.txt`` and
``tokenizer_config.json``. ``AutoTokenizer.from_pretrained(dirpath)`` and
``CLIPTextModelWithProjection.from_pretrained(dirpath)`` then load it offline.
The tests (session fixture ``tiny_clip_dir`` in tests/conftest.py) and the
open-vocabulary quick start (``tools/quickstart_yolo_world.py``) use it in place of
``openai/clip-vit-base-patch32``: it exercises the real loading code, offline, but its
embeddings mean nothing, so only words seen in training are recognised.
"""
import json
import os
import os.path as osp

BOS, EOS = '<|startoftext|>', '<|endoftext|>'
# a few merges so that some words become single tokens (byte-level BPE proper)
MERGES = (('c', 'a'), ('ca', 't</w>'), ('d', 'o'), ('do', 'g</w>'), ('p', 'e'),
          ('pe', 'r'), ('per', 's'), ('pers', 'o'), ('perso', 'n</w>'))


def byte_symbols() -> list[str]:
    """The 256 printable symbols byte-level BPE uses for the bytes 0..255 (GPT-2 /
    CLIP convention: printable Latin-1 bytes map to themselves, the others to
    code points from 256 upwards), in CLIP's vocabulary order."""
    kept = (list(range(ord('!'), ord('~') + 1)) + list(range(ord('¡'), ord('¬') + 1))
            + list(range(ord('®'), ord('ÿ') + 1)))
    points = list(kept)
    extra = 0
    for b in range(256):
        if b not in kept:
            points.append(256 + extra)
            extra += 1
    return [chr(p) for p in points]


def tiny_clip_vocab() -> list[str]:
    symbols = byte_symbols()
    vocab = symbols + [s + '</w>' for s in symbols] + [a + b for a, b in MERGES]
    return vocab + [BOS, EOS]


def make_tiny_clip(dirpath, seed: int = 0, full_clip: bool = False, weights: bool = True,
                   **config_overrides) -> str:
    """Write a tiny random CLIP text model + tokenizer to ``dirpath``; returns it.

    ``config_overrides`` replace :class:`transformers.CLIPTextConfig` fields
    (e.g. the ViT-B/32 text dims for a key/shape test). ``full_clip=True``
    saves a whole ``CLIPModel`` (text + a one-layer vision tower), the layout of
    hub checkpoints such as ``openai/clip-vit-base-patch32``. ``weights=False``
    writes the config and tokenizer only (the text model's weights must then
    come from a checkpoint).
    """
    import torch
    from transformers import (
        CLIPConfig,
        CLIPModel,
        CLIPTextConfig,
        CLIPTextModelWithProjection,
        CLIPVisionConfig,
    )

    dirpath = str(dirpath)
    os.makedirs(dirpath, exist_ok=True)
    vocab = tiny_clip_vocab()
    ids = {tok: i for i, tok in enumerate(vocab)}
    with open(osp.join(dirpath, 'vocab.json'), 'w', encoding='utf-8') as f:
        json.dump(ids, f, ensure_ascii=False)
    with open(osp.join(dirpath, 'merges.txt'), 'w', encoding='utf-8') as f:
        f.write('#version: 0.2\n' + ''.join(f'{a} {b}\n' for a, b in MERGES))
    with open(osp.join(dirpath, 'tokenizer_config.json'), 'w', encoding='utf-8') as f:
        json.dump({'tokenizer_class': 'CLIPTokenizer', 'bos_token': BOS, 'eos_token': EOS,
                   'unk_token': EOS, 'pad_token': EOS, 'model_max_length': 77}, f)
    config = dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64,
                  num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=77,
                  projection_dim=512, bos_token_id=ids[BOS], eos_token_id=ids[EOS],
                  pad_token_id=ids[EOS])
    config.update(config_overrides)
    if not weights:
        CLIPTextConfig(**config).save_pretrained(dirpath)
        return dirpath
    torch.manual_seed(seed)
    if full_clip:
        vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                  num_attention_heads=2, image_size=32, patch_size=16)
        model = CLIPModel(CLIPConfig(text_config=CLIPTextConfig(**config).to_dict(),
                                     vision_config=vision.to_dict(),
                                     projection_dim=config['projection_dim']))
    else:
        model = CLIPTextModelWithProjection(CLIPTextConfig(**config))
    model.save_pretrained(dirpath)
    return dirpath
