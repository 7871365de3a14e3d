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
    add_config_arguments(parser)
    add_shape_argument(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    shape = shape_from_args(args)
    cfg = config_from_args(args, init_scope=False)
    info = model_complexity(cfg, shape)
    split = '=' * 40
    print(f'{split}\nInput shape: (1, 3, {shape[0]}, {shape[1]})\n'
          f'Flops: {info["flops"] / 1e9:.2f} G\nParams: {info["params"]:,} '
          f'({info["params"] / 1e6:.2f} M)\n{split}')


if __name__ == '__main__':
    main()
