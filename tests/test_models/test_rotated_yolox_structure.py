"""Rotated YOLOX structure: upstream state_dict keys/shapes, parameter counts,
mode='tensor' outputs, backbone options."""

import json
import math
import os.path as osp

import pytest
import torch

from ai4rs.models.backbones import CSPDarknet, Focus
from ai4rs.models.layers import CSPLayer, DarknetBottleneck, SPPBottleneck
from ai4rs.models.necks import YOLOXPAFPN
from tests.test_models.yolox_builders import build_rotated_yolox

KEYS_JSON = osp.join(
    osp.dirname(osp.dirname(__file__)), 'data', 'rotated_yolox_state_dict_keys.json'
)


@pytest.fixture(scope='module')
def upstream_keys():
    with open(KEYS_JSON) as f:
        return json.load(f)


@pytest.mark.parametrize('size,num_params', [('t', 5_037_231), ('s', 8_943_487), ('m', 25_289_439)])
def test_state_dict_matches_upstream(size, num_params, upstream_keys):
    model = build_rotated_yolox(size)
    state = {k: list(v.shape) for k, v in model.state_dict().items()}
    expected = upstream_keys[size]
    assert sorted(set(expected) - set(state)) == []  # missing keys
    assert sorted(set(state) - set(expected)) == []  # unexpected keys
    assert state == expected
    assert list(state) == list(expected)  # same order as upstream
    assert sum(p.numel() for p in model.parameters()) == num_params
    # a state dict shaped like upstream's loads strictly
    result = model.load_state_dict(model.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys


def test_tensor_mode_shapes(tiny_yolox):
    tiny_yolox.eval()
    with torch.no_grad():
        outs = tiny_yolox(torch.rand(2, 3, 64, 64) * 255, mode='tensor')
    assert len(outs) == 4
    cls_scores, bbox_preds, angle_preds, objectnesses = outs
    for level, stride in enumerate((8, 16, 32)):
        hw = (64 // stride, 64 // stride)
        assert cls_scores[level].shape == (2, 15, *hw)
        assert bbox_preds[level].shape == (2, 4, *hw)
        assert angle_preds[level].shape == (2, 1, *hw)
        assert objectnesses[level].shape == (2, 1, *hw)


def test_head_bias_init(tiny_yolox):
    head = tiny_yolox.bbox_head
    prior = -math.log((1 - 0.01) / 0.01)
    for convs in (head.multi_level_conv_cls, head.multi_level_conv_obj, head.multi_level_conv_ang):
        for conv in convs:
            torch.testing.assert_close(conv.bias.data, torch.full_like(conv.bias, prior))


def test_invalid_mode(tiny_yolox):
    with pytest.raises(RuntimeError, match='Invalid mode'):
        tiny_yolox(torch.zeros(1, 3, 32, 32), mode='bogus')


def test_focus_phase_order():
    focus = Focus(1, 4, kernel_size=1, norm_cfg=None, act_cfg=None)
    with torch.no_grad():
        focus.conv.conv.weight.copy_(torch.eye(4).view(4, 4, 1, 1))
        focus.conv.conv.bias.zero_()
    x = torch.arange(16.0).view(1, 1, 4, 4)
    y = focus(x)
    # channels: top-left, bottom-left, top-right, bottom-right pixels of each 2x2 cell
    assert y[0, :, 0, 0].tolist() == [0.0, 4.0, 1.0, 5.0]
    assert y[0, :, 1, 1].tolist() == [10.0, 14.0, 11.0, 15.0]


def test_csp_darknet_outputs_and_arch():
    model = CSPDarknet(deepen_factor=0.33, widen_factor=0.125, out_indices=(0, 1, 2, 3, 4))
    outs = model(torch.rand(1, 3, 64, 64))
    assert [o.shape[1:] for o in outs] == [
        (8, 32, 32),
        (16, 16, 16),
        (32, 8, 8),
        (64, 4, 4),
        (128, 2, 2),
    ]
    p6 = CSPDarknet(arch='P6', deepen_factor=0.33, widen_factor=0.125, out_indices=(5,))
    assert p6.eval()(torch.rand(1, 3, 64, 64))[0].shape == (1, 128, 1, 1)
    assert isinstance(p6.stage5[1], SPPBottleneck) and isinstance(p6.stage4[1], CSPLayer)
    custom = CSPDarknet(
        arch_ovewrite=[[8, 16, 1, True, False], [16, 32, 1, False, True]], out_indices=(2,)
    )
    assert custom(torch.rand(1, 3, 32, 32))[0].shape == (1, 32, 4, 4)
    with pytest.raises(ValueError, match='arch'):
        CSPDarknet(arch='P7')
    with pytest.raises(ValueError, match='out_indices'):
        CSPDarknet(out_indices=(5,))
    with pytest.raises(ValueError, match='frozen_stages'):
        CSPDarknet(frozen_stages=5)


def test_csp_darknet_frozen_stages_and_norm_eval():
    model = CSPDarknet(deepen_factor=0.33, widen_factor=0.125, frozen_stages=1, norm_eval=True)
    model.train()
    for name in ('stem', 'stage1'):
        module = getattr(model, name)
        assert not module.training
        assert all(not p.requires_grad for p in module.parameters())
    assert all(p.requires_grad for p in model.stage2.parameters())
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(not bn.training for bn in bns)
    assert model.stage2.training  # only the norm layers are in eval mode
    # BN settings of upstream
    assert bns[0].momentum == 0.03 and bns[0].eps == 0.001


def test_depthwise_variant_builds_and_runs():
    model = CSPDarknet(deepen_factor=0.33, widen_factor=0.125, use_depthwise=True)
    assert hasattr(model.stage1[0], 'depthwise_conv')
    neck = YOLOXPAFPN([32, 64, 128], 16, num_csp_blocks=1, use_depthwise=True)
    outs = neck(model(torch.rand(1, 3, 64, 64)))
    assert [o.shape for o in outs] == [(1, 16, 8, 8), (1, 16, 4, 4), (1, 16, 2, 2)]


def test_darknet_bottleneck_identity():
    block = DarknetBottleneck(8, 8, add_identity=True)
    assert block.add_identity
    assert not DarknetBottleneck(8, 16, add_identity=True).add_identity
    block.eval()
    x = torch.rand(1, 8, 4, 4)
    torch.testing.assert_close(block(x), block.conv2(block.conv1(x)) + x)


def test_spp_bottleneck_pools():
    spp = SPPBottleneck(8, 6, kernel_sizes=(3, 5))
    assert spp.conv2.conv.in_channels == 4 * 3
    assert spp(torch.rand(2, 8, 5, 5)).shape == (2, 6, 5, 5)
