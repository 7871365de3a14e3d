"""Parameters and FLOPs of a config's model at a given input size.

    python tools/analysis_tools/get_flops.py CONFIG [--shape 1024 1024] [--cfg-options ...]

FLOPs count one multiply-add as one FLOP (mmengine's / fvcore's convention, as
mmdet's get_flops.py) for the network forward (backbone, neck, head
convolutions), without post-processing.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import torch  # noqa: E402
from mmengine.config import DictAction  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

from ai4rs.registry import MODELS  # noqa: E402
from ai4rs.utils import register_all_modules  # noqa: E402
from ai4rs.utils.config import load_config  # noqa: E402
from ai4rs.utils.paths import add_project_paths  # noqa: E402


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
        info = get_model_complexity_info(_TensorForward(model), inputs=(x, ), show_table=False,
                                         show_arch=False)
    params = sum(p.numel() for p in model.parameters())
    return dict(params=params, flops=int(info['flops']))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Parameters and FLOPs of a model')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--shape', type=int, nargs='+', default=[1024, 1024],
                        help='input height and width (one value: square)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    add_project_paths()
    shape = tuple(args.shape) * (2 if len(args.shape) == 1 else 1)
    if len(shape) != 2:
        raise SystemExit('--shape takes one or two integers')
    cfg = load_config(args.config, args.cfg_options)
    info = model_complexity(cfg, shape)
    split = '=' * 40
    print(f'{split}\nInput shape: (1, 3, {shape[0]}, {shape[1]})\n'
          f'Flops: {info["flops"] / 1e9:.2f} G\nParams: {info["params"]:,} '
          f'({info["params"] / 1e6:.2f} M)\n{split}')


if __name__ == '__main__':
    main()
