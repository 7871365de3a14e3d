"""The one freeze helper module and the backbones' shared stage code (StagedBackbone)."""

import pytest
import torch
from torch import nn

from ai4rs.models.backbones import CSPDarknet
from ai4rs.models.backbones.base_backbone import StagedBackbone
from ai4rs.models.backbones.yolov8_csp_darknet import YOLOv8CSPDarknet
from ai4rs.models.utils.freeze import freeze_module, freeze_norms_and_params


def tiny_block():
    return nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.Dropout(0.5))


def test_freeze_module_puts_everything_in_eval_without_grad():
    block = freeze_module(tiny_block().train())
    assert not any(m.training for m in block.modules())
    assert not any(p.requires_grad for p in block.parameters())


def test_freeze_norms_and_params_leaves_other_layers_in_their_mode():
    block = freeze_norms_and_params(tiny_block().train())
    assert not block[1].training  # BatchNorm: statistics fixed
    assert block[0].training and block[2].training  # conv, dropout: as the caller set them
    assert not any(p.requires_grad for p in block.parameters())


@pytest.mark.parametrize(
    'cls, kwargs',
    [
        (CSPDarknet, dict(deepen_factor=0.33, widen_factor=0.125)),
        (YOLOv8CSPDarknet, dict(deepen_factor=0.33, widen_factor=0.125)),
    ],
)
def test_backbones_share_the_staged_backbone(cls, kwargs):
    # one copy of the stage code: neither backbone overrides it
    for name in ('train', '_freeze_stages', 'forward'):
        assert name not in cls.__dict__ and hasattr(StagedBackbone, name)
    model = cls(out_indices=(0, 2, 4), frozen_stages=1, **kwargs).train()
    assert model.layers == ['stem', 'stage1', 'stage2', 'stage3', 'stage4']
    for name in ('stem', 'stage1'):
        layer = getattr(model, name)
        assert not any(m.training for m in layer.modules())
        assert not any(p.requires_grad for p in layer.parameters())
    assert model.stage2.training and all(p.requires_grad for p in model.stage2.parameters())
    # forward returns the layers in out_indices, by stride 2, 8, 32
    outs = model(torch.zeros(1, 3, 64, 64))
    assert [o.shape[-1] for o in outs] == [32, 8, 2]
    with pytest.raises(ValueError, match=rf'{cls.__name__}: out_indices \(0, 5\) must lie in'):
        cls(out_indices=(0, 5), **kwargs)
    with pytest.raises(ValueError, match=rf"{cls.__name__}: arch must be one of .*'P7'"):
        cls(arch='P7', **kwargs)
