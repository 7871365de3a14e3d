"""Embed example crops with CLIP's image tower: one embedding per class (image prompts).

    python tools/misc/generate_image_prompts.py PROMPTS --vision-model CLIP_DIR_OR_CONFIG \\
        [--texts "person,dog" --text-model CLIP_DIR_OR_CONFIG] --out prompts.pt

PROMPTS is a folder with one sub-folder of crop images per class, or a JSON file
``{"class": [{"image": "scene.jpg", "box": [x1, y1, x2, y2]}, ...]}`` (boxes in pixels;
relative paths relative to the JSON file); see ai4rs/apis/image_prompts.py. Each crop is
embedded (L2-normalised), the embeddings of a class averaged and normalised. ``--texts``
adds text classes encoded by the CLIP text model, so one file holds a mixed vocabulary (a
class named both ways is refused). ``--vision-model`` / ``--text-model`` take a CLIP
directory (a whole CLIP checkpoint such as a download of ``openai/clip-vit-base-patch32``
holds both towers) or a YOLO-World config (its ``model.backbone.text_model.model_name``).

Output: a ``.pt`` dict ``{class: (D,) tensor}`` (the text-embedding file format), read by
``inference_detector(..., prompt_embeddings=FILE)`` and ``demo/yolo_world_demo.py
--image-prompts FILE``.
"""

import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import ai4rs  # noqa: E402,F401,I001  (first: sets the OpenMP wait policy before torch loads)
import torch  # noqa: E402

from ai4rs.apis.image_prompts import (  # noqa: E402
    image_prompt_embeddings,
    load_crops,
    mixed_vocabulary,
    read_prompt_spec,
    save_prompt_embeddings,
)
from ai4rs.datasets.class_texts import read_vocabulary  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('prompts', help='folder of per-class crop folders, or a JSON file')
    parser.add_argument(
        '--vision-model', required=True, help='CLIP directory (or a YOLO-World config)'
    )
    parser.add_argument('--texts', default=None, help='text classes to add: "a,b" or a file')
    parser.add_argument(
        '--text-model', default=None, help='CLIP text model for --texts (default: --vision-model)'
    )
    parser.add_argument('--out', required=True, help='output .pt file')
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args(argv)
    if not args.out.endswith(('.pt', '.pth')):
        parser.error(f'--out must end with .pt or .pth, got {args.out}')
    return args


def clip_dir_of(arg: str) -> str:
    """A config's CLIP directory (``model.backbone.text_model.model_name``), or ``arg``."""
    if arg.endswith('.py') and osp.isfile(arg):
        from ai4rs.utils.config import load_config

        try:
            return load_config(arg).model.backbone.text_model.model_name
        except AttributeError as err:
            raise ValueError(f'{arg}: no model.backbone.text_model.model_name') from err
    return arg


def main(argv=None) -> dict:
    args = parse_args(argv)
    from ai4rs.models.backbones.clip_image import CLIPImageEncoder

    spec = read_prompt_spec(args.prompts)
    texts = read_vocabulary(args.texts) if args.texts else []
    mixed_vocabulary(texts, list(spec))  # a class named twice: refused before any work
    encoder = CLIPImageEncoder(clip_dir_of(args.vision_model), device=args.device)
    table = image_prompt_embeddings(encoder, load_crops(spec))
    if texts:
        from ai4rs.models.backbones.clip_text import HuggingCLIPLanguageBackbone

        text_model = HuggingCLIPLanguageBackbone(clip_dir_of(args.text_model or args.vision_model))
        with torch.no_grad():
            feats = text_model.to(args.device).eval()([texts])[0].float().cpu()
        if feats.shape[1] != encoder.embed_dim:
            raise ValueError(
                f'the text model gives embeddings of width {feats.shape[1]}, the image tower '
                f'{encoder.embed_dim}: use the two towers of one CLIP'
            )
        table = {**dict(zip(texts, feats)), **table}
    save_prompt_embeddings(table, args.out)
    crops = sum(len(v) for v in spec.values())
    print(
        f'wrote {len(table)} embeddings of width {encoder.embed_dim} to {args.out} '
        f'({len(spec)} image-prompt classes from {crops} crops'
        + (f', {len(texts)} text classes' if texts else '')
        + ')'
    )
    return table


def cli(argv=None) -> int:
    """:func:`main` for the command line: a bad prompt file, box or tower is one line on
    stderr and status 1."""
    try:
        main(argv)
    except (ValueError, OSError) as e:  # FileNotFoundError too
        print(f'error: {e}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(cli())
