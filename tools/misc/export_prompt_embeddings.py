"""Write the class embeddings learned by prompt tuning as an embeddings file.

    python tools/misc/export_prompt_embeddings.py CHECKPOINT [--texts T1 T2 ...] --out tuned.pt

CHECKPOINT is a checkpoint of ``SimpleYOLOWorldDetector`` (e.g. trained with
configs/yolo_world_v2/yolo_world_v2_quickstart_prompt_tuning.py). The file holds
``{text: (D,) tensor}``: the embeddings the tuned network scores regions against (the
learned ``embeddings``, through the MLP adapter if any, L2-normalised), row i named by
the i-th text. ``--texts`` (strings, or one .json / .txt file) defaults to the
``prompt_texts`` of the config saved in the checkpoint.

The file is read by ``PseudoLanguageBackbone`` (``text_embed_path``),
``inference_detector(..., prompt_embeddings=FILE)`` and the demo's ``--image-prompts FILE``,
with the YOLO-World checkpoint the tuning started from (its network is unchanged).
"""

import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import ai4rs  # noqa: E402,F401,I001  (first: sets the OpenMP wait policy before torch loads)
import torch  # noqa: E402

from ai4rs.datasets.class_texts import read_vocabulary  # noqa: E402
from ai4rs.models.detectors.simple_yolo_world import build_adapter, prompt_feats  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Save the class embeddings of prompt tuning')
    parser.add_argument('checkpoint', help='SimpleYOLOWorldDetector checkpoint')
    parser.add_argument(
        '--texts',
        nargs='+',
        default=None,
        help="the rows' texts, or one .json / .txt file (default: the checkpoint config's "
        'model.prompt_texts)',
    )
    parser.add_argument('--out', required=True, help='output file (.pt or .pth)')
    return parser.parse_args(argv)


def checkpoint_prompt_texts(checkpoint: dict) -> list[str] | None:
    """``model.prompt_texts`` of the config an mmengine Runner saved in the checkpoint."""
    cfg_text = checkpoint.get('meta', {}).get('cfg')
    if not cfg_text:
        return None
    from mmengine.config import Config

    cfg = Config.fromstring(cfg_text, '.py')
    texts = cfg.get('model', {}).get('prompt_texts')
    return None if texts is None else list(texts)


def learned_embeddings(state_dict: dict, path: str = 'checkpoint') -> torch.Tensor:
    """The (K, D) class embeddings the tuned detector uses, from its state dict."""
    state_dict = {k.removeprefix('module.'): v for k, v in state_dict.items()}
    if 'embeddings' not in state_dict:
        raise ValueError(
            f'{path}: no `embeddings` in the state dict: not a SimpleYOLOWorldDetector '
            f'checkpoint (keys e.g. {list(state_dict)[:5]})'
        )
    embeddings = state_dict['embeddings'].float()
    adapter = None
    if any(k.startswith('adapter.') for k in state_dict):
        adapter = build_adapter(embeddings.shape[1])
        adapter_state = {
            k.removeprefix('adapter.'): v.float()
            for k, v in state_dict.items()
            if k.startswith('adapter.')
        }
        adapter.load_state_dict(adapter_state)
    with torch.no_grad():
        return prompt_feats(embeddings, adapter)


def export(checkpoint_path: str, out: str, texts: list[str] | None = None) -> dict:
    """Write ``{text: (D,)}`` to ``out`` and return it.

    Raises:
        ValueError: an output that is not .pt / .pth, no texts, duplicate texts, or a
            number of texts that is not the number of embeddings.
    """
    if not out.endswith(('.pt', '.pth')):
        raise ValueError(f'--out must end with .pt or .pth, got {out}')
    if not osp.isfile(checkpoint_path):
        raise FileNotFoundError(f'checkpoint not found: {checkpoint_path}')
    checkpoint = torch.load(checkpoint_path, map_location='cpu', weights_only=False)
    state_dict = checkpoint.get('state_dict', checkpoint)
    feats = learned_embeddings(state_dict, checkpoint_path)
    if texts is None:
        texts = checkpoint_prompt_texts(checkpoint)
        if texts is None:
            raise ValueError(
                f'{checkpoint_path}: its config names no model.prompt_texts; give --texts'
            )
    if len(set(texts)) != len(texts):
        raise ValueError(f'--texts holds duplicates: {texts}')
    if len(texts) != feats.shape[0]:
        raise ValueError(
            f'{len(texts)} texts {texts[:5]} for {feats.shape[0]} learned embeddings in '
            f'{checkpoint_path}'
        )
    table = {t: e.clone() for t, e in zip(texts, feats)}
    torch.save(table, out)
    return table


def main(argv=None):
    args = parse_args(argv)
    texts = None if args.texts is None else read_vocabulary(args.texts)
    table = export(args.checkpoint, args.out, texts)
    width = next(iter(table.values())).numel()
    print(f'wrote {len(table)} embeddings of width {width} to {args.out}: {", ".join(table)}')


if __name__ == '__main__':
    main()
