"""Faster modules with the same outputs for the inference model: mmcv's Swish replaced by
nn.SiLU, SPPBottleneck's parallel pools as a chain of the first (SPPF's trick)."""

import copy

import pytest
import torch
from mmcv.cnn.bricks.swish import Swish
from torch import nn

from ai4rs.models.layers.spp_bottleneck import SPPBottleneck
from ai4rs.models.utils.inference_ops import chain_spp_pools, swish_to_silu
from tests.test_models.yolox_builders import build_rotated_yolox


def _direct_pools(x, sizes):
    """Each pool computed on its own, by unfolding: the max over a k x k window, -inf outside."""
    out = []
    for k in sizes:
        padded = nn.functional.pad(x, (k // 2,) * 4, value=float('-inf'))
        windows = padded.unfold(2, k, 1).unfold(3, k, 1)  # (B, C, H, W, k, k)
        out.append(windows.amax(dim=(-1, -2)))
    return out


@pytest.mark.parametrize('sizes', [(5, 9, 13), (3, 5, 7, 9), (5,)])
def test_chained_pools_are_exactly_the_parallel_pools(sizes):
    torch.manual_seed(0)
    spp = SPPBottleneck(8, 8, kernel_sizes=sizes).eval()
    x = torch.randn(2, 4, 11, 17) * 3
    assert spp.pools_chainable()
    assert spp.chain_pools() and spp.pools_chained
    chained = spp._pooled(x)
    for got, want in zip(chained, _direct_pools(x, sizes), strict=True):
        assert torch.equal(got, want)
    y = torch.randn(1, 8, 13, 9)
    parallel = copy.deepcopy(spp)
    parallel.pools_chained = False
    assert torch.equal(spp(y), parallel(y))


@pytest.mark.parametrize('sizes', [(5, 9, 11), (4, 7), (5, 13, 9)])
def test_pools_that_do_not_chain_stay_parallel(sizes):
    spp = SPPBottleneck(8, 8, kernel_sizes=sizes)
    assert not spp.pools_chainable()
    assert spp.chain_pools() is False and not spp.pools_chained


def test_a_detector_gets_silu_and_chained_pools_with_the_same_outputs():
    model = build_rotated_yolox('tiny').eval()
    swishes = sum(type(m) is Swish for m in model.modules())
    assert swishes > 10  # rotated YOLOX's act_cfg is Swish
    keys = {k: v.clone() for k, v in model.state_dict().items()}
    fast = copy.deepcopy(model)
    assert swish_to_silu(fast) == swishes
    assert swish_to_silu(fast) == 0  # nothing left
    assert sum(type(m) is nn.SiLU for m in fast.modules()) == swishes
    assert chain_spp_pools(fast) == sum(isinstance(m, SPPBottleneck) for m in model.modules()) == 1
    state = fast.state_dict()
    assert state.keys() == keys.keys() and all(torch.equal(state[k], keys[k]) for k in keys)
    x = torch.rand(2, 3, 64, 64) * 255
    with torch.no_grad():
        for a, b in zip(model(x, mode='tensor'), fast(x, mode='tensor'), strict=True):
            for p, q in zip(a, b, strict=True):
                torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-5)
