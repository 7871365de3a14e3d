"""Write the CLIP text embeddings of a vocabulary to a file.

The file replaces the CLIP text model (``PseudoLanguageBackbone``) for inference
or fine-tuning with a fixed vocabulary.

    python tools/misc/generate_text_embeddings.py CONFIG_OR_MODEL \\
        --texts person "traffic light" --out coco.pt
    python tools/misc/generate_text_embeddings.py CONFIG_OR_MODEL \\
        --texts data/texts/coco_class_texts.json --out coco.npy

CONFIG_OR_MODEL is a config file (its ``model.backbone.text_model.model_name``
is used) or a CLIP model directory / hub id (loaded offline unless
``AI4RS_ALLOW_DOWNLOAD=1``). ``--texts`` takes strings, or one ``.json`` file
(a list of strings, or of lists whose first string is used, as
``coco_class_texts.json``) or one ``.txt`` file (one text per line).
Output: ``.pt``/``.pth`` = a dict ``{text: (D,) tensor}`` (upstream's
PseudoLanguageBackbone format); ``.npy`` = a (K, D) float32 array in text order
(upstream's ``generate_text_prompts.py`` format).
"""

import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import ai4rs  # noqa: E402,F401,I001  (first: sets the OpenMP wait policy before torch loads)
import numpy as np  # noqa: E402
import torch  # noqa: E402

from ai4rs.datasets.class_texts import read_vocabulary  # noqa: E402
from ai4rs.models.backbones.clip_text import HuggingCLIPLanguageBackbone  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Save CLIP text embeddings of a vocabulary')
    parser.add_argument('model', help='config file, CLIP model directory or hub id')
    parser.add_argument(
        '--texts', nargs='+', required=True, help='texts, or one .json / .txt file of texts'
    )
    parser.add_argument('--out', required=True, help='output file (.pt, .pth or .npy)')
    parser.add_argument('--device', default='cpu', help='e.g. cpu or cuda:0')
    return parser.parse_args(argv)


def model_name_of(arg: str) -> str:
    """The CLIP model of a config file, or ``arg`` itself."""
    if arg.endswith('.py') and osp.isfile(arg):
        from ai4rs.utils.config import load_config

        cfg = load_config(arg)
        try:
            return cfg.model.backbone.text_model.model_name
        except AttributeError as err:
            raise ValueError(f'{arg}: no model.backbone.text_model.model_name') from err
    return arg


def main(argv=None):
    args = parse_args(argv)
    if not args.out.endswith(('.pt', '.pth', '.npy')):
        raise ValueError(f'--out must end with .pt, .pth or .npy, got {args.out}')
    texts = read_vocabulary(args.texts)
    if len(set(texts)) != len(texts):
        raise ValueError('--texts holds duplicates')
    backbone = HuggingCLIPLanguageBackbone(model_name_of(args.model)).to(args.device).eval()
    with torch.no_grad():
        embeds = backbone([texts])[0].float().cpu()
    if args.out.endswith('.npy'):
        np.save(args.out, embeds.numpy())
    else:
        torch.save({t: e.clone() for t, e in zip(texts, embeds)}, args.out)
    print(f'wrote {len(texts)} embeddings of width {embeds.shape[1]} to {args.out}')


if __name__ == '__main__':
    main()
