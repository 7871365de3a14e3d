"""Faster modules with the same outputs for the inference model: mmcv's Swish replaced by
nn.SiLU, SPPBottleneck's parallel pools as a chain of the first (SPPF's trick)."""

import copy
import warnings

import pytest
import torch
from mmcv.cnn.bricks.swish import Swish
from torch import nn

from ai4rs.models.layers.spp_bottleneck import SPPBottleneck
from ai4rs.models.utils.inference_ops import (
    FusedConvAct,
    chain_spp_pools,
    fuse_conv_act,
    swish_to_silu,
)
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


# ------------------------------------------------------------- conv + activation, one kernel

_ACTS = {
    'silu': (nn.SiLU(), lambda y: y * torch.sigmoid(y)),
    'relu': (nn.ReLU(inplace=True), lambda y: y.clamp_min(0)),
    'leaky_relu': (nn.LeakyReLU(0.1), lambda y: torch.where(y > 0, y, 0.1 * y)),
    'sigmoid': (nn.Sigmoid(), lambda y: 1 / (1 + torch.exp(-y))),
    'tanh': (nn.Tanh(), lambda y: (torch.exp(2 * y) - 1) / (torch.exp(2 * y) + 1)),
    'hardswish': (nn.Hardswish(), lambda y: y * (y + 3).clamp(0, 6) / 6),
    'gelu': (nn.GELU(), lambda y: 0.5 * y * (1 + torch.erf(y / 2**0.5))),
    'gelu_tanh': (
        nn.GELU(approximate='tanh'),
        lambda y: 0.5 * y * (1 + torch.tanh((2 / torch.pi) ** 0.5 * (y + 0.044715 * y**3))),
    ),
}


def _ran_fused_kernel(module, x) -> bool:
    """Whether running ``module(x)`` called oneDNN's fused convolution."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        module(x)
    return any('_convolution_pointwise' in e.name for e in prof.events())


@pytest.mark.parametrize('act', sorted(_ACTS))
@pytest.mark.parametrize(
    'conv_args',
    [
        dict(kernel_size=3, padding=1),
        dict(kernel_size=3, padding=2, stride=2, dilation=2, bias=False),
        dict(kernel_size=1, groups=2),
        dict(kernel_size=(3, 1), padding=(1, 0), stride=(1, 2)),
    ],
)
@pytest.mark.parametrize('channels_last', [False, True])
def test_fused_conv_act_equals_conv_then_activation_in_float64(act, conv_args, channels_last):
    torch.manual_seed(0)
    module, formula = _ACTS[act]
    conv = nn.Conv2d(4, 6, **conv_args)
    fused = FusedConvAct(conv, module).eval()
    x = torch.randn(2, 4, 9, 11)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        got = fused(x)
        assert _ran_fused_kernel(fused, x)
    # the reference: the same conv in float64, then the activation's formula
    bias = None if conv.bias is None else conv.bias.double()
    pre = nn.functional.conv2d(
        x.double(),
        conv.weight.double(),
        bias,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
    )
    want = formula(pre)
    assert got.dtype == torch.float32 and got.shape == want.shape
    torch.testing.assert_close(got.double(), want, atol=2e-5, rtol=1e-5)


def test_fused_conv_act_in_bfloat16():
    from ai4rs.models.utils.inference_mode import bf16_supported

    if not bf16_supported('cpu'):
        pytest.skip('this CPU has no native bfloat16')
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 16, 3, padding=1)
    fused = FusedConvAct(conv, nn.SiLU()).eval().to(torch.bfloat16)
    x = torch.randn(1, 8, 12, 12).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        got = fused(x)
        assert _ran_fused_kernel(fused, x)
        want = nn.functional.silu(
            nn.functional.conv2d(x.float(), conv.weight.float(), conv.bias.float(), padding=1)
        )
    assert got.dtype == torch.bfloat16
    # bfloat16 weights and inputs rounded the same way in both; the output's own rounding: 2^-8
    torch.testing.assert_close(got.float(), want, atol=0.02, rtol=2**-7)


def test_fused_conv_act_falls_back_where_the_kernel_cannot_serve():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 5, 3, padding=1)
    fused = FusedConvAct(conv, nn.SiLU())
    x = torch.randn(1, 3, 8, 8, requires_grad=True)
    # training: autograd must see the conv and the activation
    out = fused(x)
    assert out.grad_fn is not None and not _ran_fused_kernel(fused, x)
    out.sum().backward()
    ref_x = x.detach().clone().requires_grad_(True)
    nn.functional.silu(conv(ref_x)).sum().backward()
    torch.testing.assert_close(x.grad, ref_x.grad)
    # tracing (the ONNX export traces): the graph has the plain conv and activation
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore')  # torch.jit.trace's deprecation notes
        traced = torch.jit.trace(fused.eval(), x.detach())
    kinds = {n.kind() for n in traced.inlined_graph.nodes()}
    assert 'aten::_convolution' in kinds and not any('mkldnn' in k for k in kinds)
    # oneDNN turned off by the user
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter('ignore')  # torch's note on TF32 for Intel GPUs
        with torch.backends.mkldnn.flags(enabled=False):
            assert not _ran_fused_kernel(fused, x.detach())
        assert _ran_fused_kernel(fused, x.detach())
    # an empty batch and a float64 input
    with torch.inference_mode():
        assert fused(torch.zeros(0, 3, 8, 8)).shape == (0, 5, 8, 8)
        fused64 = FusedConvAct(nn.Conv2d(3, 5, 3, padding=1).double(), nn.ReLU())
        x64 = torch.randn(1, 3, 8, 8, dtype=torch.float64)
        assert not _ran_fused_kernel(fused64, x64)
        torch.testing.assert_close(fused64(x64), fused64.conv(x64).relu())


def test_fused_conv_act_refuses_an_activation_without_a_post_op():
    with pytest.raises(ValueError, match='PReLU'):
        FusedConvAct(nn.Conv2d(3, 3, 1), nn.PReLU())


def test_fuse_conv_act_replaces_only_conv_then_activation():
    from mmcv.cnn import ConvModule

    from ai4rs.models.utils.inference_mode import fuse_conv_bn

    torch.manual_seed(0)
    model = nn.Sequential(
        ConvModule(3, 4, 3, padding=1, norm_cfg=dict(type='BN')),  # conv -> BN -> ReLU
        ConvModule(4, 4, 3, padding=1, act_cfg=dict(type='SiLU')),  # conv -> SiLU
        ConvModule(4, 4, 1, norm_cfg=dict(type='BN'), order=('norm', 'conv', 'act')),
        ConvModule(4, 4, 3, padding=1, act_cfg=None),  # no activation
        ConvModule(4, 4, 3, padding=1, padding_mode='reflect'),  # explicit padding layer
        ConvModule(4, 4, 1, act_cfg=dict(type='PReLU')),  # no oneDNN post-op
        nn.Sequential(ConvModule(4, 4, 1, act_cfg=dict(type='LeakyReLU', negative_slope=0.2))),
    ).eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 3, 10, 10)
    with torch.no_grad():
        want = model(x)
    fuse_conv_bn(model)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    assert fuse_conv_act(model) == 3
    assert fuse_conv_act(model) == 0  # nothing left
    assert [type(m).__name__ for m in model] == [
        'FusedConvAct',
        'FusedConvAct',
        'ConvModule',
        'ConvModule',
        'ConvModule',
        'ConvModule',
        'Sequential',
    ]
    assert isinstance(model[6][0], FusedConvAct)
    after = model.state_dict()
    assert after.keys() == state.keys() and all(torch.equal(after[k], state[k]) for k in state)
    with torch.inference_mode():
        torch.testing.assert_close(model(x), want, atol=1e-5, rtol=1e-5)
