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

``size='vit-b-32'`` writes the same tokenizer with a randomly initialised text model of
CLIP ViT-B/32's architecture (:data:`CLIP_TEXT_SIZES`): the profiling, benchmark and
FLOP-count tools use it when no real CLIP is at hand, since speed and counts depend on the
architecture only (and on the token count: ``words`` makes whole words single tokens, as
CLIP's 49k-token BPE does for common words).
"""

import json
import os
import os.path as osp

BOS, EOS = '<|startoftext|>', '<|endoftext|>'
# a few merges so that some words become single tokens (byte-level BPE proper)
MERGES = (
    ('c', 'a'),
    ('ca', 't</w>'),
    ('d', 'o'),
    ('do', 'g</w>'),
    ('p', 'e'),
    ('pe', 'r'),
    ('per', 's'),
    ('pers', 'o'),
    ('perso', 'n</w>'),
)


def byte_symbols() -> list[str]:
    """The 256 printable symbols byte-level BPE uses for the bytes 0..255 (GPT-2 /
    CLIP convention: printable Latin-1 bytes map to themselves, the others to
    code points from 256 upwards), in CLIP's vocabulary order."""
    kept = (
        list(range(ord('!'), ord('~') + 1))
        + list(range(ord('¡'), ord('¬') + 1))
        + list(range(ord('®'), ord('ÿ') + 1))
    )
    points = list(kept)
    extra = 0
    for b in range(256):
        if b not in kept:
            points.append(256 + extra)
            extra += 1
    return [chr(p) for p in points]


BYTE_SET = frozenset(byte_symbols())


# CLIPTextConfig fields of each size; 'vit-b-32' is openai/clip-vit-base-patch32's text model
# (63,428,096 parameters with its projection)
CLIP_TEXT_SIZES = {
    'tiny': dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=77,
        projection_dim=512,
    ),
    'vit-b-32': dict(
        hidden_size=512,
        intermediate_size=2048,
        num_hidden_layers=12,
        num_attention_heads=8,
        max_position_embeddings=77,
        projection_dim=512,
        vocab_size=49408,
    ),
}


def bpe(symbols: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    """Byte-pair encoding of one word: merge the adjacent pair of lowest rank until none
    is left (the rule of CLIP's tokenizer)."""
    symbols = list(symbols)
    while len(symbols) > 1:
        pairs = [(ranks.get(p, len(ranks)), i) for i, p in enumerate(zip(symbols, symbols[1:]))]
        rank, i = min(pairs)
        if rank == len(ranks):
            break
        symbols[i : i + 2] = [symbols[i] + symbols[i + 1]]
    return symbols


def word_merges(words=()) -> list[tuple[str, str]]:
    """:data:`MERGES` plus merges that make each word of ``words`` (texts are split on
    spaces) one token: after the merges so far, the pieces ``t1 .. tn`` of a word get
    the chain ``(t1, t2), (t1t2, t3), ...``. New merges rank last, so they cannot change
    how an earlier word (already one token) is split."""
    merges = list(MERGES)
    ranks = {pair: i for i, pair in enumerate(merges)}
    for text in words:
        for word in text.lower().split():
            if not all(ch in BYTE_SET for ch in word):
                continue
            pieces = bpe(list(word[:-1]) + [word[-1] + '</w>'], ranks)
            left = pieces[0]
            for right in pieces[1:]:
                if (left, right) not in ranks:
                    ranks[(left, right)] = len(merges)
                    merges.append((left, right))
                left = left + right
    return merges


def tiny_clip_vocab(merges=MERGES) -> list[str]:
    symbols = byte_symbols()
    merged = list(dict.fromkeys(a + b for a, b in merges))
    vocab = symbols + [s + '</w>' for s in symbols] + merged
    return vocab + [BOS, EOS]


def make_tiny_clip(
    dirpath,
    seed: int = 0,
    full_clip: bool = False,
    weights: bool = True,
    size: str = 'tiny',
    words=(),
    **config_overrides,
) -> str:
    """Write a random CLIP text model + tokenizer to ``dirpath``; returns it.

    ``size`` picks the architecture from :data:`CLIP_TEXT_SIZES` ('tiny' or
    'vit-b-32'); ``words`` (strings) become single tokens of the tokenizer
    (:func:`word_merges`). ``config_overrides`` replace
    :class:`transformers.CLIPTextConfig` fields. ``full_clip=True``
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
    if size not in CLIP_TEXT_SIZES:
        raise ValueError(
            f'make_tiny_clip: size must be one of {sorted(CLIP_TEXT_SIZES)}, got {size!r}'
        )
    merges = word_merges(words)
    vocab = tiny_clip_vocab(merges)
    ids = {tok: i for i, tok in enumerate(vocab)}
    with open(osp.join(dirpath, 'vocab.json'), 'w', encoding='utf-8') as f:
        json.dump(ids, f, ensure_ascii=False)
    with open(osp.join(dirpath, 'merges.txt'), 'w', encoding='utf-8') as f:
        f.write('#version: 0.2\n' + ''.join(f'{a} {b}\n' for a, b in merges))
    with open(osp.join(dirpath, 'tokenizer_config.json'), 'w', encoding='utf-8') as f:
        json.dump(
            {
                'tokenizer_class': 'CLIPTokenizer',
                'bos_token': BOS,
                'eos_token': EOS,
                'unk_token': EOS,
                'pad_token': EOS,
                'model_max_length': 77,
            },
            f,
        )
    config = dict(
        vocab_size=len(vocab), bos_token_id=ids[BOS], eos_token_id=ids[EOS], pad_token_id=ids[EOS]
    )
    config.update(CLIP_TEXT_SIZES[size])
    if config['vocab_size'] < len(vocab):
        raise ValueError(
            f'make_tiny_clip: {len(words)} words need {len(vocab)} tokens, more '
            f'than the vocab_size {config["vocab_size"]} of size {size!r}'
        )
    config.update(config_overrides)
    if not weights:
        CLIPTextConfig(**config).save_pretrained(dirpath)
        return dirpath
    torch.manual_seed(seed)
    if full_clip:
        vision = CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=32,
            patch_size=16,
        )
        model = CLIPModel(
            CLIPConfig(
                text_config=CLIPTextConfig(**config).to_dict(),
                vision_config=vision.to_dict(),
                projection_dim=config['projection_dim'],
            )
        )
    else:
        model = CLIPTextModelWithProjection(CLIPTextConfig(**config))
    model.save_pretrained(dirpath)
    return dirpath


def make_tiny_clip_vision(
    dirpath, seed: int = 0, projection_dim: int = 512, image_size: int = 32
) -> str:
    """Write a random tiny ``CLIPVisionModelWithProjection`` (one layer, ``image_size``
    px, 16 px patches) with ``save_pretrained`` to ``dirpath``; returns it. Its
    ``projection_dim`` matches the tiny text model's (512), as CLIP's two towers do."""
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    dirpath = str(dirpath)
    os.makedirs(dirpath, exist_ok=True)
    torch.manual_seed(seed)
    config = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=image_size,
        patch_size=16,
        projection_dim=projection_dim,
    )
    CLIPVisionModelWithProjection(config).save_pretrained(dirpath)
    return dirpath
