"""tools/analysis_tools/get_flops.py counts what a hand count gives on a tiny network."""

import importlib.util
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from torch import nn

from ai4rs.registry import MODELS
from tests.conftest import REPO_ROOT


def _load_tool():
    path = osp.join(REPO_ROOT, 'tools', 'analysis_tools', 'get_flops.py')
    spec = importlib.util.spec_from_file_location('ai4rs_get_flops_tool', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _TinyFlopsNet(nn.Module):
    """conv 3x3 (3 -> 4, pad 1) then conv 1x1 stride 2 (4 -> 2), no biases."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(4, 2, 1, stride=2, bias=False)

    def forward(self, x, mode='tensor'):
        assert mode == 'tensor'
        return (self.conv2(self.conv1(x)),)


@pytest.mark.parametrize('shape', [(8, 8), (8, 6)])
def test_model_complexity_matches_hand_count(shape):
    MODELS.register_module(name='_TinyFlopsNet', module=_TinyFlopsNet, force=True)
    h, w = shape
    # one multiply-add = one FLOP: output pixels x out channels x in channels x kernel area
    conv1 = h * w * 4 * 3 * 3 * 3
    conv2 = ((h + 1) // 2) * ((w + 1) // 2) * 2 * 4 * 1 * 1
    info = _load_tool().model_complexity(Config(dict(model=dict(type='_TinyFlopsNet'))), shape)
    assert info['params'] == 3 * 4 * 9 + 4 * 2
    assert info['flops'] == conv1 + conv2
    assert (
        torch.Size([1, 2, (h + 1) // 2, (w + 1) // 2])
        == _TinyFlopsNet()(torch.zeros(1, 3, h, w))[0].shape
    )
