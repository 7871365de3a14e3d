"""Fold a fixed vocabulary into a YOLO-World checkpoint for the Rep configs.

    python tools/model_converters/reparameterize_yolo_world.py CHECKPOINT \\
        --texts "person,bicycle,car" --config ORIGINAL_CONFIG --out rep.pth
    python tools/model_converters/reparameterize_yolo_world.py CHECKPOINT \\
        --texts coco.pt --out rep.pth          # a saved embeddings file {text: (D,)}
    python tools/model_converters/reparameterize_yolo_world.py --model CHECKPOINT \\
        --texts configs/_base_/texts/coco_class_texts.json --text-embed coco.npy --out-dir out/

``--texts``: "a,b,c", a .txt file (one text per line), a .json class-text file, or an
embeddings file (.pt/.pth, ``tools/misc/generate_text_embeddings.py``'s format: the
vocabulary is its texts, in order). The K text embeddings come from that file, from
``--text-embed`` (.pt/.pth dict, or upstream's (K, D) .npy in ``--texts`` order), or from the
text model of ``--config`` (the original, non-Rep config; the checkpoint's own
``backbone.text_model.*`` weights are loaded into it when it has them).

What is folded (upstream b1b09f2 ``tools/reparameterize_yoloworld.py`` with ``--conv-neck``):

- head, every level i: ``cls_contrasts.{i}.{logit_scale,bias}`` become the 1x1 conv of
  ``RepBNContrastiveHead`` / ``RepContrastiveHead``: weight ``l2(t_k) * exp(logit_scale)``
  (K, D, 1, 1), bias ``bias`` (K,);
- neck, every ``*.attn_block``: ``guide_fc`` is applied to the texts and head m of the result
  becomes ``guide_convs.{m}.weight`` (K, E / M, 1, 1) of ``RepConvMaxSigmoidAttnBlock``,
  scaled by ``sqrt(out_channels / embed_channels)`` (the Rep block divides by
  ``sqrt(out_channels / M)``, the original by ``sqrt(embed_channels / M)``; a positive scale
  commutes with the max) and a ``with_scale`` per-head ``scale`` is folded into
  ``project_conv``'s BatchNorm;
- ``backbone.text_model.*`` is dropped.

The written checkpoint holds the folded ``state_dict`` and the original's ``meta`` (plus the
texts), not its training state (optimizer, EMA copy...); the ``*_rep_*`` configs with
``num_classes`` = K load it with strict key matching.
"""

import argparse
import math
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import ai4rs  # noqa: E402,F401,I001  (first: sets the OpenMP wait policy before torch loads)
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

HEAD_PREFIX = 'bbox_head.head_module.cls_contrasts.'
TEXT_MODEL_PREFIX = 'backbone.text_model.'


class ReparameterizeError(ValueError):
    """The checkpoint, texts or embeddings cannot be folded (the message says why)."""


def contrast_levels(state_dict: dict) -> list[str]:
    """Prefixes ``bbox_head.head_module.cls_contrasts.{i}.`` of the levels whose contrastive
    head has ``logit_scale`` and ``bias`` (the foldable form), in level order."""
    levels = sorted(
        {
            k[: -len('logit_scale')]
            for k in state_dict
            if k.startswith(HEAD_PREFIX) and k.endswith('.logit_scale')
        },
        key=lambda p: int(p[len(HEAD_PREFIX) :].split('.')[0]),
    )
    return levels


def attn_blocks(state_dict: dict) -> list[str]:
    """Prefixes (``neck....attn_block.``) of the neck's max-sigmoid attention blocks that still
    have a ``guide_fc``."""
    suffix = 'guide_fc.weight'
    return sorted(
        k[: -len(suffix)]
        for k in state_dict
        if k.startswith('neck.') and k.endswith('.attn_block.' + suffix)
    )


def fold_contrastive_head(
    logit_scale: torch.Tensor, bias: torch.Tensor, text_embeds: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The 1x1 conv equal to a contrastive head for fixed texts.

    ``<x', l2(t_k)> * exp(s) + b`` (x' = BN(x) or l2(x)) is ``conv(x')`` with

    Args:
        logit_scale (Tensor): () the head's ``logit_scale`` s.
        bias (Tensor): () the head's ``bias`` b.
        text_embeds (Tensor): (K, D) text embeddings (normalised here).

    Returns:
        tuple: conv weight (K, D, 1, 1) ``l2(t_k) * exp(s)`` and bias (K,) filled with b.
    """
    weight = F.normalize(text_embeds.float(), dim=-1, p=2) * logit_scale.float().exp()
    num_texts, dims = weight.shape
    return weight.reshape(num_texts, dims, 1, 1), bias.float().reshape(()).repeat(num_texts)


def fold_guide(
    guide_fc_weight: torch.Tensor,
    guide_fc_bias: torch.Tensor,
    text_embeds: torch.Tensor,
    num_heads: int,
    out_channels: int,
) -> list[torch.Tensor]:
    """The ``guide_convs`` weights of a ``RepConvMaxSigmoidAttnBlock`` equal to a
    ``MaxSigmoidAttnBlock`` for fixed texts.

    Args:
        guide_fc_weight (Tensor): (E, G) ``guide_fc.weight``.
        guide_fc_bias (Tensor): (E,) ``guide_fc.bias``.
        text_embeds (Tensor): (K, G) the texts as the original block receives them.
        num_heads (int): M.
        out_channels (int): the block's output channels (``project_conv``'s).

    Returns:
        list[Tensor]: M weights (K, E / M, 1, 1): head m of ``guide_fc(texts)`` times
        ``sqrt(out_channels / E)``.
    """
    guide = text_embeds.float() @ guide_fc_weight.float().t() + guide_fc_bias.float()
    embed_channels = guide.shape[1]
    guide = guide * math.sqrt(out_channels / embed_channels)
    return [g[:, :, None, None].contiguous() for g in guide.split(embed_channels // num_heads, 1)]


def _project_bn_prefix(state_dict: dict, block: str) -> str:
    for prefix in (block + 'project_conv.bn.', block + 'project_conv.pointwise_conv.bn.'):
        if prefix + 'weight' in state_dict:
            return prefix
    raise ReparameterizeError(f'{block}project_conv has no BatchNorm to fold the scale into')


def reparameterize_state_dict(state_dict: dict, text_embeds: torch.Tensor) -> dict:
    """A YOLO-World state dict with the K texts of ``text_embeds`` folded in (see the module
    docstring); the input is not modified.

    Args:
        state_dict (dict): keys of a ``YOLOWorldDetector`` (head ``cls_contrasts`` with
            ``logit_scale`` / ``bias``; optionally neck ``attn_block.guide_fc``).
        text_embeds (Tensor): (K, D) L2-normalised text embeddings.

    Raises:
        ReparameterizeError: not a YOLO-World state dict, or D differs from the model's text
            width (both named).
    """
    text_embeds = text_embeds.detach().float().cpu()
    if text_embeds.dim() != 2 or text_embeds.shape[0] == 0:
        raise ReparameterizeError(
            f'text embeddings must be (K, D) with K >= 1, got {tuple(text_embeds.shape)}'
        )
    levels = contrast_levels(state_dict)
    if not levels:
        raise ReparameterizeError(
            'not a YOLO-World checkpoint: no '
            f'{HEAD_PREFIX}<i>.logit_scale key (a YOLOWorldHeadModule, not yet reparameterized)'
        )
    out = {k: v for k, v in state_dict.items() if not k.startswith(TEXT_MODEL_PREFIX)}
    dims = text_embeds.shape[1]
    for level in levels:
        # the last conv of cls_preds.{i} gives the region embedding width
        embed_key = level.replace('cls_contrasts', 'cls_preds') + '2.bias'
        model_dims = state_dict[embed_key].numel() if embed_key in state_dict else None
        if model_dims is not None and model_dims != dims:
            raise ReparameterizeError(
                f'text embeddings have width {dims} but the model embeds regions in '
                f'{model_dims} channels ({embed_key}); use the text model of this checkpoint'
            )
        weight, bias = fold_contrastive_head(
            out.pop(level + 'logit_scale'), out.pop(level + 'bias'), text_embeds
        )
        out[level + 'conv.weight'] = weight
        out[level + 'conv.bias'] = bias
    for block in attn_blocks(state_dict):
        fc_weight = out.pop(block + 'guide_fc.weight')
        fc_bias = out.pop(block + 'guide_fc.bias')
        if fc_weight.shape[1] != dims:
            raise ReparameterizeError(
                f'text embeddings have width {dims} but {block}guide_fc takes '
                f"{fc_weight.shape[1]} (the model's guide_channels)"
            )
        num_heads = out[block + 'bias'].numel()
        bn = _project_bn_prefix(out, block)
        out_channels = out[bn + 'weight'].numel()
        for m, w in enumerate(fold_guide(fc_weight, fc_bias, text_embeds, num_heads, out_channels)):
            out[f'{block}guide_convs.{m}.weight'] = w
        scale = out.pop(block + 'scale', None)
        if scale is not None:
            # sigmoid(.) * scale_m multiplies head m's project_conv channels: fold it into the BN
            per_channel = scale.float().reshape(-1).repeat_interleave(out_channels // num_heads)
            out[bn + 'weight'] = out[bn + 'weight'] * per_channel
            out[bn + 'bias'] = out[bn + 'bias'] * per_channel
    return out


def read_texts_and_embeddings(
    texts_arg: str | None, text_embed: str | None, config: str | None, state_dict: dict
) -> tuple[list[str], torch.Tensor]:
    """The vocabulary and its (K, D) L2-normalised embeddings, from the arguments (see the
    module docstring)."""
    from ai4rs.datasets.class_texts import read_vocabulary
    from ai4rs.models.backbones.clip_text import load_text_embeddings

    embed_exts = ('.pt', '.pth', '.npy')
    if texts_arg and texts_arg.endswith(embed_exts):
        if text_embed:
            raise ReparameterizeError('give the embeddings file once: --texts or --text-embed')
        text_embed, texts = texts_arg, None
    else:
        if not texts_arg:
            raise ReparameterizeError('--texts is required')
        texts = read_vocabulary(texts_arg)
    if text_embed:
        table = load_text_embeddings(text_embed, texts)
        texts = list(table) if texts is None else texts
        missing = [t for t in texts if t not in table]
        if missing:
            raise ReparameterizeError(f'{text_embed}: no embedding for {missing[:5]}')
        embeds = torch.stack([table[t].float() for t in texts])
    else:
        if config is None:
            raise ReparameterizeError(
                'no text embeddings: give --config (the original config, whose text model '
                'encodes --texts) or an embeddings file (--texts FILE.pt or --text-embed)'
            )
        embeds = encode_with_config(texts, config, state_dict)
    return texts, F.normalize(embeds.float(), dim=-1, p=2)


def encode_with_config(texts: list[str], config: str, state_dict: dict) -> torch.Tensor:
    """(K, D) embeddings of ``texts`` by the text model of ``config``, with the checkpoint's
    ``backbone.text_model.*`` weights when it has them."""
    from ai4rs.registry import MODELS
    from ai4rs.utils import register_all_modules
    from ai4rs.utils.config import load_config

    register_all_modules(init_default_scope=False)
    cfg = load_config(config)
    text_cfg = cfg.model.get('backbone', {}).get('text_model')
    if not text_cfg:
        raise ReparameterizeError(f'{config}: no model.backbone.text_model to encode texts with')
    text_model = MODELS.build(text_cfg)
    own = {
        k[len(TEXT_MODEL_PREFIX) :]: v
        for k, v in state_dict.items()
        if k.startswith(TEXT_MODEL_PREFIX)
    }
    if own:
        text_model.load_state_dict(own, strict=True)
    text_model.eval()
    with torch.no_grad():
        return text_model([texts])[0].float().cpu()


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Fold a vocabulary into a YOLO-World checkpoint (for the *_rep_* configs)'
    )
    parser.add_argument('checkpoint', nargs='?', help='YOLO-World checkpoint to fold')
    parser.add_argument('--model', help="the checkpoint (upstream's name for it)")
    parser.add_argument('--texts', help='"a,b,c", a .txt / .json text file or an embeddings file')
    parser.add_argument(
        '--text-embed', help="embeddings file: .pt/.pth {text: (D,)} or upstream's (K, D) .npy"
    )
    parser.add_argument('--config', help='the original (non-Rep) config, for its text model')
    parser.add_argument('--out', help='output checkpoint (.pth)')
    parser.add_argument(
        '--out-dir', help="output folder (upstream's): writes <name>_rep_conv.pth there"
    )
    parser.add_argument(
        '--conv-neck',
        action='store_true',
        help="upstream's flag; the conv form (RepConvMaxSigmoidAttnBlock) is always written",
    )
    args = parser.parse_args(argv)
    args.checkpoint = args.checkpoint or args.model
    if not args.checkpoint:
        parser.error('give the checkpoint (positional or --model)')
    if bool(args.out) == bool(args.out_dir):
        parser.error('give exactly one of --out and --out-dir')
    if args.out is None:
        name = osp.splitext(osp.basename(args.checkpoint))[0]
        args.out = osp.join(args.out_dir, f'{name}_rep_conv.pth')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from ai4rs.utils.checkpoint import load_checkpoint_safely

    if not osp.isfile(args.checkpoint):
        print(f'error: checkpoint not found: {args.checkpoint}', file=sys.stderr)
        return 1
    try:
        ckpt = load_checkpoint_safely(args.checkpoint)
        state_dict = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
        if not isinstance(state_dict, dict):
            raise ReparameterizeError('not a checkpoint (no state dict)')
        texts, embeds = read_texts_and_embeddings(
            args.texts, args.text_embed, args.config, state_dict
        )
        folded = reparameterize_state_dict(state_dict, embeds)
    except (ReparameterizeError, ValueError, FileNotFoundError, RuntimeError) as err:
        print(f'error: {args.checkpoint}: {err}', file=sys.stderr)
        return 1
    # the folded weights and the meta only: the training state (optimizer, schedulers, message
    # hub, an EMA copy with the unfolded keys) belongs to the original model
    out = {'state_dict': folded}
    meta = dict(ckpt.get('meta') or {}) if 'state_dict' in ckpt else {}
    meta['reparameterized_texts'] = list(texts)
    meta['dataset_meta'] = dict(meta.get('dataset_meta') or {}, classes=tuple(texts))
    out['meta'] = meta
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    torch.save(out, args.out)
    print(
        f'wrote {args.out}: {len(texts)} texts of width {embeds.shape[1]} folded into the '
        'head and neck; use a *_rep_* config with num_classes = '
        f'{len(texts)} (its labels are the texts in this order)'
    )
    return 0


if __name__ == '__main__':
    sys.exit(main())
