"""Parameters and FLOPs of a config's model at a given input size.

    python tools/analysis_tools/get_flops.py CONFIG [--shape 1024 1024] [--cfg-options ...] \
        [--text-model DIR] [--num-texts N] [--text-feats FILE]

FLOPs count one multiply-add as one FLOP (mmengine's / fvcore's convention, as
mmdet's get_flops.py) for the network forward (backbone, neck, head
convolutions), without post-processing.

YOLO-World configs: the image network is counted after ``reparameterize`` with a
vocabulary of ``--num-texts`` texts (default the config's ``num_test_classes``, its class
texts), i.e. what image-only inference and export run; the text model (CLIP,
``--text-model DIR`` or a randomly initialised ViT-B/32) is counted separately on that
vocabulary padded to its full context (K texts x 77 tokens, eager attention so that the
attention products are counted). Printed: params and FLOPs of the image model alone, of the
text model, and of both. ``--text-feats FILE`` (a saved embedding file, see
``PseudoLanguageBackbone``) bakes those embeddings in instead and counts the image model
only, without building a text model.
"""

import argparse
import os.path as osp
import sys
import tempfile

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))  # text_model_args.py, beside it

import ai4rs  # noqa: E402,F401,I001  (first: sets the OpenMP wait policy before torch loads)
import torch  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

from ai4rs.registry import MODELS  # noqa: E402
from ai4rs.utils import register_all_modules  # noqa: E402
from ai4rs.utils.cli import (  # noqa: E402
    add_config_arguments,
    add_shape_argument,
    config_from_args,
    shape_from_args,
)
from text_model_args import (  # noqa: E402
    add_text_model_argument,
    is_yolo_world,
    set_text_model,
    vocabulary,
)


class _TensorForward(torch.nn.Module):
    """Runs ``model(x, mode='tensor')``: the network without post-processing."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x, mode='tensor')


def model_complexity(cfg, shape=(1024, 1024)):
    """``dict(params=int, flops=int)`` of ``cfg.model`` on a (1, 3, H, W) input."""
    from mmengine.analysis import get_model_complexity_info

    register_all_modules(init_default_scope=False)
    init_default_scope(cfg.get('default_scope', 'ai4rs'))
    model = MODELS.build(cfg.model)
    model.eval()
    x = torch.zeros(1, 3, *shape)
    with torch.no_grad():
        info = get_model_complexity_info(
            _TensorForward(model), inputs=(x,), show_table=False, show_arch=False
        )
    params = sum(p.numel() for p in model.parameters())
    return dict(params=params, flops=int(info['flops']))


def num_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


class _TextForward(torch.nn.Module):
    """Runs a ``CLIPTextModelWithProjection`` on token ids: (N, L) ids -> (N, D) embeds."""

    def __init__(self, clip):
        super().__init__()
        self.clip = clip

    def forward(self, input_ids, attention_mask):
        return self.clip(input_ids=input_ids, attention_mask=attention_mask).text_embeds


def text_model_flops(text_backbone, num_texts: int, num_tokens: int | None = None) -> int:
    """FLOPs of the CLIP text model of a ``HuggingCLIPLanguageBackbone`` on ``num_texts``
    sequences of ``num_tokens`` tokens (default: its context, 77 for CLIP), counted with
    eager attention (linear layers, the two attention products, layer norms)."""
    from mmengine.analysis import FlopAnalyzer

    clip = text_backbone.model
    num_tokens = num_tokens or clip.config.max_position_embeddings
    ids = torch.full((num_texts, num_tokens), clip.config.eos_token_id, dtype=torch.long)
    mask = torch.ones_like(ids)
    previous = clip.config._attn_implementation
    clip.set_attn_implementation('eager')
    try:
        with torch.no_grad():
            analyzer = FlopAnalyzer(_TextForward(clip), (ids, mask))
            analyzer.unsupported_ops_warnings(False)
            analyzer.uncalled_modules_warnings(False)
            flops = int(analyzer.total())
    finally:
        clip.set_attn_implementation(previous)
    return flops


def world_complexity(
    cfg,
    shape=(640, 640),
    text_model: str | None = None,
    num_texts: int | None = None,
    text_feats: str | None = None,
) -> dict:
    """Params and FLOPs of a YOLO-World config on a (1, 3, H, W) input.

    Returns:
        dict: ``image_params``, ``image_flops`` (image network with the vocabulary baked in),
        ``text_params``, ``text_flops`` (the text model on ``num_texts`` x 77 tokens; None
        with ``text_feats``), ``params`` and ``flops`` (both together), ``num_texts``.
    """
    from mmengine.analysis import FlopAnalyzer

    from ai4rs.models.backbones.clip_text import load_text_embeddings

    register_all_modules(init_default_scope=False)
    init_default_scope(cfg.get('default_scope', 'ai4rs'))
    num_texts = num_texts or cfg.model.get('num_test_classes', 80)
    texts = vocabulary(cfg, num_texts)
    with tempfile.TemporaryDirectory() as tmpdir:
        if text_feats is not None:
            table = load_text_embeddings(text_feats)
            texts = list(table)
            num_texts = len(texts)
            cfg.model.backbone.with_text_model = False
            model = MODELS.build(cfg.model)
            model.texts = [texts]
            model.text_feats = torch.stack([table[t] for t in texts])[None].float()
        else:
            set_text_model(cfg, text_model, tmpdir, words=texts)
            model = MODELS.build(cfg.model)
            model.reparameterize(texts)
    model.eval()
    text = model.backbone.text_model
    text_params = num_params(text) if text is not None else 0
    image_params = num_params(model) - text_params
    x = torch.zeros(1, 3, *shape)
    with torch.no_grad():
        analyzer = FlopAnalyzer(_TensorForward(model), (x,))
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        image_flops = int(analyzer.total())
    text_flops = text_model_flops(text, num_texts) if text is not None else None
    return dict(
        image_params=image_params,
        image_flops=image_flops,
        text_params=text_params,
        text_flops=text_flops,
        params=image_params + text_params,
        flops=image_flops + (text_flops or 0),
        num_texts=num_texts,
    )


def world_table(info: dict, shape) -> str:
    """A markdown table of :func:`world_complexity`'s result."""

    def row(name, params, flops):
        flops_text = 'n/a' if flops is None else f'{flops / 1e9:.2f} G'
        return f'| {name} | {params:,} ({params / 1e6:.2f} M) | {flops_text} |'

    k = info['num_texts']
    lines = [
        '| part | params | FLOPs |',
        '|---|---:|---:|',
        row(
            f'image model ({shape[0]}x{shape[1]}, {k} texts baked in)',
            info['image_params'],
            info['image_flops'],
        ),
    ]
    if info['text_flops'] is not None:
        lines.append(
            row(f'text model ({k} texts x 77 tokens)', info['text_params'], info['text_flops'])
        )
        lines.append(row('image + text model', info['params'], info['flops']))
    return '\n'.join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Parameters and FLOPs of a model')
    add_config_arguments(parser)
    add_shape_argument(parser)
    add_text_model_argument(parser)
    parser.add_argument(
        '--num-texts',
        type=int,
        default=None,
        help='YOLO-World: vocabulary size (default: num_test_classes)',
    )
    parser.add_argument(
        '--text-feats',
        default=None,
        metavar='FILE',
        help='YOLO-World: bake these saved text embeddings in (no text model)',
    )
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    shape = shape_from_args(args)
    cfg = config_from_args(args, init_scope=False)
    split = '=' * 40
    if is_yolo_world(cfg):
        info = world_complexity(cfg, shape, args.text_model, args.num_texts, args.text_feats)
        print(
            f'{split}\n{osp.basename(args.config)}: input shape (1, 3, {shape[0]}, '
            f'{shape[1]})\n{world_table(info, shape)}\n{split}'
        )
        return info
    info = model_complexity(cfg, shape)
    print(
        f'{split}\nInput shape: (1, 3, {shape[0]}, {shape[1]})\n'
        f'Flops: {info["flops"] / 1e9:.2f} G\nParams: {info["params"]:,} '
        f'({info["params"] / 1e6:.2f} M)\n{split}'
    )
    return info


if __name__ == '__main__':
    main()
