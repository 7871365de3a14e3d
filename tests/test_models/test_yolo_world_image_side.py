"""YOLO-World v2 image side: YOLOv8CSPDarknet, MultiModalYOLOBackbone, YOLOv8PAFPN and the
VL-PAN (YOLOWorldPAFPN) with its text-guided blocks.

Keys, shapes, order and parameter counts are checked against the upstream reference
(tests/data/yolo_world_v2_state_dict_keys.json, built from YOLO-World b1b09f2 + mmyolo
0.6.0); the attention formula against a slow loop.
"""

import json
import math
import os.path as osp

import pytest
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ai4rs.models.backbones import MultiModalYOLOBackbone, YOLOv8CSPDarknet
from ai4rs.models.layers import (
    CSPLayerWithTwoConv,
    EfficientCSPLayerWithTwoConv,
    ImagePoolingAttentionModule,
    MaxSigmoidAttnBlock,
    MaxSigmoidCSPLayerWithTwoConv,
    RepConvMaxSigmoidAttnBlock,
    RepConvMaxSigmoidCSPLayerWithTwoConv,
    SPPFBottleneck,
    YOLOv8DarknetBottleneck,
)
from ai4rs.models.necks import YOLOv5PAFPN, YOLOv8PAFPN, YOLOWorldDualPAFPN, YOLOWorldPAFPN
from ai4rs.models.utils import make_divisible, make_round
from ai4rs.registry import MODELS

KEYS_JSON = osp.join(
    osp.dirname(osp.dirname(__file__)), 'data', 'yolo_world_v2_state_dict_keys.json'
)
# yolo_world.md section 1: deepen, widen, last_stage_out_channels
SIZES = {
    's': (0.33, 0.5, 1024),
    'm': (0.67, 0.75, 768),
    'l': (1.0, 1.0, 512),
    'x': (1.0, 1.25, 512),
}
BUFFER_SUFFIXES = ('running_mean', 'running_var', 'num_batches_tracked')
TEXT_DIM = 16  # the tiny text model's embedding width in the small tests


@MODELS.register_module(name='TinyTextModelForImageSideTests', force=True)
class TinyTextModel(nn.Module):
    """Stand-in text encoder: one learned vector per character, summed, L2-normalised.

    texts (B lists of K strings) -> (B, K, TEXT_DIM)."""

    def __init__(self, dim: int = TEXT_DIM) -> None:
        super().__init__()
        self.table = nn.Embedding(128, dim)

    def forward(self, texts):
        feats = torch.stack(
            [
                torch.stack(
                    [
                        self.table(torch.tensor([ord(c) % 128 for c in t] or [0])).sum(0)
                        for t in image_texts
                    ]
                )
                for image_texts in texts
            ]
        )
        return feats / feats.norm(dim=-1, keepdim=True)


def image_model_cfg(deepen, widen, last, **kwargs):
    return dict(
        type='YOLOv8CSPDarknet',
        arch='P5',
        last_stage_out_channels=last,
        deepen_factor=deepen,
        widen_factor=widen,
        norm_cfg=dict(type='BN', momentum=0.03, eps=0.001),
        act_cfg=dict(type='SiLU', inplace=True),
        **kwargs,
    )


def neck_cfg(
    deepen, widen, last, guide_channels=512, block='MaxSigmoidCSPLayerWithTwoConv', **kwargs
):
    return dict(
        type='YOLOWorldPAFPN',
        in_channels=[256, 512, last],
        out_channels=[256, 512, last],
        guide_channels=guide_channels,
        embed_channels=[128, 256, last // 2],
        num_heads=[4, 8, last // 64],
        deepen_factor=deepen,
        widen_factor=widen,
        num_csp_blocks=3,
        block_cfg=dict(type=block),
        **kwargs,
    )


class ImageSide(nn.Module):
    """``backbone`` (MultiModalYOLOBackbone) + ``neck``: the detector's key prefixes."""

    def __init__(self, deepen, widen, last, block, text_model=None, guide_channels=512):
        super().__init__()
        self.backbone = MultiModalYOLOBackbone(
            image_model_cfg(deepen, widen, last), text_model=text_model
        )
        self.neck = MODELS.build(neck_cfg(deepen, widen, last, guide_channels, block))


@pytest.fixture(scope='module')
def reference():
    with open(KEYS_JSON) as f:
        return json.load(f)


CONFIGS = [
    'yolo_world_v2_s_vlpan_bn_2e-4_80e_8gpus_mask-refine_finetune_coco',
    'yolo_world_v2_m_vlpan_bn_2e-4_80e_8gpus_mask-refine_finetune_coco',
    'yolo_world_v2_l_vlpan_bn_2e-4_80e_8gpus_mask-refine_finetune_coco',
    'yolo_world_v2_x_vlpan_bn_2e-4_80e_8gpus_mask-refine_finetune_coco',
    'yolo_world_v2_l_efficient_neck_2e-4_80e_8gpus_mask-refine_finetune_coco',
    'yolo_world_v2_l_vlpan_bn_sgd_1e-3_40e_8gpus_finetune_coco',
    'yolo_world_v2_l_vlpan_bn_sgd_1e-3_80e_8gpus_mask-refine_finetune_coco',
]


def num_params(shapes: dict) -> int:
    return sum(
        math.prod(shape) for key, shape in shapes.items() if not key.endswith(BUFFER_SUFFIXES)
    )


def test_reference_lists_every_config(reference):
    assert sorted(k for k in reference if k != '_meta') == sorted(CONFIGS)


@pytest.mark.parametrize('config', CONFIGS)
def test_state_dict_matches_upstream(config, reference):
    deepen, widen, last = SIZES[config.split('_')[3]]
    block = (
        'EfficientCSPLayerWithTwoConv'
        if 'efficient_neck' in config
        else 'MaxSigmoidCSPLayerWithTwoConv'
    )
    model = ImageSide(deepen, widen, last, block)
    got = {k: list(v.shape) for k, v in model.state_dict().items()}
    ref = reference[config]
    expected = {k: v for k, v in ref.items() if k.startswith(('backbone.image_model.', 'neck.'))}
    assert sorted(set(expected) - set(got)) == []  # missing
    assert sorted(set(got) - set(expected)) == []  # unexpected
    assert got == expected
    assert list(got) == list(expected)  # same order as upstream
    n_image_neck = sum(p.numel() for p in model.parameters())
    assert n_image_neck == num_params(expected)
    # with the head's parameters, the published count of the model without CLIP
    head = {k: v for k, v in ref.items() if k.startswith('bbox_head.')}
    assert n_image_neck + num_params(head) == ref['_params']['without_text_model']
    assert len(expected) + len(head) == ref['_params']['state_dict_keys_without_text_model']


def test_upstream_shaped_state_dict_loads_strictly(reference):
    model = ImageSide(*SIZES['s'], 'MaxSigmoidCSPLayerWithTwoConv')
    ref = reference[CONFIGS[0]]
    state = {}
    for key, shape in ref.items():
        if key.startswith(('backbone.image_model.', 'neck.')):
            state[key] = (
                torch.tensor(7) if key.endswith('num_batches_tracked') else torch.full(shape, 0.5)
            )
    result = model.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert torch.all(model.neck.bottom_up_layers[1].attn_block.bias == 0.5)


def test_scaling_rules():
    # hand-computed: ceil(x * w / 8) * 8 and max(round(x * d), 1) for x > 1
    assert make_divisible(64, 0.33) == 24
    assert make_divisible(1024, 0.75) == 768
    assert make_divisible(512, 1.25) == 640
    assert make_divisible(100, 1.0) == 104
    assert [make_round(3, d) for d in (0.33, 0.67, 1.0)] == [1, 2, 3]
    assert [make_round(6, d) for d in (0.33, 0.67, 1.0)] == [2, 4, 6]
    assert make_round(1, 0.33) == 1 and make_round(4, 0.125) == 1
    assert make_round(512, 0.125) == 64


def test_backbone_widths_and_depths_per_size():
    # stem / stage widths and CSP depths of v2-M: 48; 96, 192, 384, 576; 2, 4, 4, 2 blocks
    model = YOLOv8CSPDarknet(last_stage_out_channels=768, deepen_factor=0.67, widen_factor=0.75)
    assert model.stem.conv.out_channels == 48
    assert [getattr(model, f'stage{i}')[0].conv.out_channels for i in range(1, 5)] == [
        96,
        192,
        384,
        576,
    ]
    assert [len(getattr(model, f'stage{i}')[1].blocks) for i in range(1, 5)] == [2, 4, 4, 2]
    assert isinstance(model.stage4[2], SPPFBottleneck) and len(model.stage3) == 2
    # the class-level arch setting is not modified by building with another last stage
    assert YOLOv8CSPDarknet.arch_settings['P5'][-1][1] is None


def tiny_side(block='MaxSigmoidCSPLayerWithTwoConv', text=True):
    torch.manual_seed(0)
    model = ImageSide(
        0.33,
        0.125,
        1024,
        block,
        text_model=dict(type='TinyTextModelForImageSideTests') if text else None,
        guide_channels=TEXT_DIM,
    )
    model.backbone.image_model.init_weights()
    model.neck.init_weights()
    return model.eval()


TEXTS = [['cat', 'dog', 'bus'], ['car', 'person', 'tree']]


def test_tiny_forward_shapes():
    model = tiny_side()
    image = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        img_feats, txt_feats = model.backbone(image, TEXTS)
        assert [tuple(f.shape) for f in img_feats] == [(2, 32, 8, 8), (2, 64, 4, 4), (2, 128, 2, 2)]
        assert txt_feats.shape == (2, 3, TEXT_DIM)
        outs = model.neck(img_feats, txt_feats)
    assert isinstance(outs, tuple)
    assert [tuple(o.shape) for o in outs] == [(2, 32, 8, 8), (2, 64, 4, 4), (2, 128, 2, 2)]
    assert all(torch.isfinite(o).all() for o in outs)
    # forward_image / forward_text are the two halves of forward
    with torch.no_grad():
        for a, b in zip(model.backbone.forward_image(image), img_feats):
            torch.testing.assert_close(a, b)
        torch.testing.assert_close(model.backbone.forward_text(TEXTS), txt_feats)


def test_backbone_without_text_model():
    model = tiny_side(text=False)
    assert model.backbone.text_model is None and not model.backbone.with_text_model
    img_feats, txt_feats = model.backbone(torch.rand(1, 3, 64, 64), TEXTS[:1])
    assert txt_feats is None and len(img_feats) == 3
    with pytest.raises(RuntimeError, match='without one'):
        model.backbone.forward_text(TEXTS)
    # with_text_model=False does not build the given text model
    backbone = MultiModalYOLOBackbone(
        image_model_cfg(0.33, 0.125, 1024),
        dict(type='TinyTextModelForImageSideTests'),
        with_text_model=False,
    )
    assert backbone.text_model is None
    assert not any(k.startswith('text_model') for k in backbone.state_dict())
    # built from a config as upstream writes it
    built = MODELS.build(
        dict(
            type='MultiModalYOLOBackbone',
            image_model=image_model_cfg(0.33, 0.125, 1024),
            text_model=dict(type='TinyTextModelForImageSideTests'),
        )
    )
    assert isinstance(built.image_model, YOLOv8CSPDarknet)
    assert isinstance(built.text_model, TinyTextModel)
    # texts None: image features only
    with_text = tiny_side()
    assert with_text.backbone(torch.rand(1, 3, 64, 64), None)[1] is None


def test_text_guides_the_vlpan_but_not_the_efficient_neck():
    image = torch.rand(2, 3, 64, 64)
    for block, depends in (
        ('MaxSigmoidCSPLayerWithTwoConv', True),
        ('EfficientCSPLayerWithTwoConv', False),
    ):
        # train mode: BN normalises with batch statistics, so activations stay O(1)
        # (with fresh running statistics they shrink layer after layer)
        model = tiny_side(block).train()
        with torch.no_grad():
            img_feats, txt = model.backbone(image, TEXTS)
            other = model.backbone.forward_text([['zebra', 'x', 'kite'], ['a', 'b', 'c']])
            a = model.neck(img_feats, txt)
            b = model.neck(img_feats, other)
        if depends:
            assert all((x - y).abs().max() > 1e-3 * x.abs().max() for x, y in zip(a, b))
        else:
            assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_vlpan_attention_levels():
    """Text enters all four fusion layers with embed/heads of their output level."""
    neck = YOLOWorldPAFPN(**{k: v for k, v in neck_cfg(0.33, 0.5, 1024).items() if k != 'type'})
    layers = [
        neck.top_down_layers[0],
        neck.top_down_layers[1],
        neck.bottom_up_layers[0],
        neck.bottom_up_layers[1],
    ]
    assert all(isinstance(layer, MaxSigmoidCSPLayerWithTwoConv) for layer in layers)
    # raw embed [128, 256, 512] and heads [4, 8, 16] scaled by 0.5; levels 1, 0, 1, 2
    assert [layer.attn_block.num_heads for layer in layers] == [4, 2, 4, 8]
    assert [layer.attn_block.guide_fc.out_features for layer in layers] == [128, 64, 128, 256]
    assert all(layer.attn_block.head_channels == 32 for layer in layers)
    assert all(layer.attn_block.embed_conv is None for layer in layers)
    assert all(len(layer.blocks) == 1 for layer in layers)


def test_yolov8_pafpn_and_yolov5_pafpn_shapes():
    torch.manual_seed(0)
    feats = [torch.rand(1, 32, 8, 8), torch.rand(1, 64, 4, 4), torch.rand(1, 128, 2, 2)]
    neck = YOLOv8PAFPN(
        [256, 512, 1024], [256, 512, 1024], deepen_factor=0.33, widen_factor=0.125
    ).eval()
    assert all(isinstance(layer, CSPLayerWithTwoConv) for layer in neck.top_down_layers)
    assert all(isinstance(layer, nn.Identity) for layer in neck.reduce_layers)
    with torch.no_grad():
        outs = neck(feats)
    assert [tuple(o.shape) for o in outs] == [(1, 32, 8, 8), (1, 64, 4, 4), (1, 128, 2, 2)]
    v5 = YOLOv5PAFPN(
        [256, 512, 1024], [256, 512, 1024], deepen_factor=0.33, widen_factor=0.125
    ).eval()
    with torch.no_grad():
        outs = v5(feats)
    # YOLOv5: the coarsest level is reduced to the middle width before fusion
    assert [tuple(o.shape) for o in outs] == [(1, 32, 8, 8), (1, 64, 4, 4), (1, 128, 2, 2)]
    assert v5.reduce_layers[2].conv.out_channels == 64
    with pytest.raises(ValueError, match='expected 3 feature maps'):
        neck(feats[:2])


def slow_max_sigmoid(block: MaxSigmoidAttnBlock, x, guide):
    """The attention block written as loops over batch, head, pixel and text."""
    batch, _, height, width = x.shape
    heads, hc = block.num_heads, block.head_channels
    w, b = block.guide_fc.weight, block.guide_fc.bias
    embed = block.embed_conv(x) if block.embed_conv is not None else x
    projected = block.project_conv(x)
    out = torch.zeros_like(projected)
    per_head = projected.shape[1] // heads
    scale = block.scale if isinstance(block.scale, float) else block.scale.view(-1)
    for bi in range(batch):
        texts = [w @ guide[bi, k] + b for k in range(guide.shape[1])]
        for m in range(heads):
            for i in range(height):
                for j in range(width):
                    e = embed[bi, m * hc : (m + 1) * hc, i, j]
                    best = max(float(e @ t[m * hc : (m + 1) * hc]) for t in texts)
                    s = scale if isinstance(scale, float) else float(scale[m])
                    a = s / (1 + math.exp(-(best / math.sqrt(hc) + float(block.bias[m]))))
                    out[bi, m * per_head : (m + 1) * per_head, i, j] = (
                        projected[bi, m * per_head : (m + 1) * per_head, i, j] * a
                    )
    return out


@pytest.mark.parametrize('in_channels,embed_channels,with_scale', [(8, 8, False), (6, 8, True)])
def test_max_sigmoid_attn_block_matches_slow_loop(in_channels, embed_channels, with_scale):
    torch.manual_seed(0)
    block = MaxSigmoidAttnBlock(
        in_channels,
        12,
        guide_channels=5,
        embed_channels=embed_channels,
        num_heads=2,
        with_scale=with_scale,
    ).eval()
    assert (block.embed_conv is None) == (in_channels == embed_channels)
    with torch.no_grad():
        block.bias.copy_(torch.tensor([0.3, -0.2]))
        if with_scale:
            block.scale.copy_(torch.tensor([0.5, 2.0]).view(1, 2, 1, 1))
        for bn in block.modules():
            if isinstance(bn, _BatchNorm):
                bn.running_mean.uniform_(-0.5, 0.5)
                bn.running_var.uniform_(0.5, 2.0)
        x = torch.randn(2, in_channels, 3, 4)
        guide = torch.randn(2, 3, 5)
        expected = slow_max_sigmoid(block, x, guide)
        torch.testing.assert_close(block(x, guide), expected, rtol=1e-5, atol=1e-6)
        block.use_einsum = False
        torch.testing.assert_close(block(x, guide), expected, rtol=1e-5, atol=1e-6)


def test_max_sigmoid_attn_block_checks():
    with pytest.raises(ValueError, match='divisible by num_heads'):
        MaxSigmoidAttnBlock(8, 8, guide_channels=4, embed_channels=8, num_heads=3)
    block = MaxSigmoidAttnBlock(8, 8, guide_channels=4, embed_channels=8)
    with pytest.raises(ValueError, match='needs text features'):
        block(torch.rand(1, 8, 2, 2), None)


def test_csp_layers_chunk_structure():
    layer = CSPLayerWithTwoConv(16, 24, num_blocks=2, add_identity=True)
    assert layer.mid_channels == 12 and layer.final_conv.conv.in_channels == 48
    assert all(b.add_identity and b.conv1.conv.kernel_size == (3, 3) for b in layer.blocks)
    t = MaxSigmoidCSPLayerWithTwoConv(
        16, 24, guide_channels=4, embed_channels=12, num_heads=2, num_blocks=2
    )
    e = EfficientCSPLayerWithTwoConv(
        16, 24, guide_channels=4, embed_channels=12, num_heads=2, num_blocks=2
    )
    assert t.final_conv.conv.in_channels == 60 == e.final_conv.conv.in_channels
    assert list(dict(t.named_children())) == ['main_conv', 'final_conv', 'blocks', 'attn_block']
    # the YOLOX-style default bottleneck is 1x1 then 3x3 with hidden = out * 0.5
    b = YOLOv8DarknetBottleneck(8, 8)
    assert b.conv1.conv.kernel_size == (1, 1) and b.conv1.conv.out_channels == 4
    with torch.no_grad():
        x = torch.randn(1, 8, 3, 3)
        torch.testing.assert_close(b.eval()(x), b.conv2(b.conv1(x)) + x)


def test_sppf_cascade_equals_parallel_pools():
    """Three chained 5x5 max pools see 5x5, 9x9 and 13x13 windows: SPPF == SPP(5, 9, 13)."""
    torch.manual_seed(0)
    fast = SPPFBottleneck(8, 8, kernel_sizes=5).eval()
    slow = SPPFBottleneck(8, 8, kernel_sizes=(5, 9, 13)).eval()
    slow.load_state_dict(fast.state_dict())
    x = torch.randn(2, 8, 11, 7)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), slow(x))
    no_conv = SPPFBottleneck(8, 6, use_conv_first=False)
    assert no_conv.conv1 is None and no_conv.conv2.conv.in_channels == 32


def test_frozen_stages_and_norm_eval():
    model = YOLOv8CSPDarknet(
        deepen_factor=0.33, widen_factor=0.125, frozen_stages=1, norm_eval=True
    )
    model.train()
    for name in ('stem', 'stage1'):
        layer = getattr(model, name)
        assert not layer.training
        assert all(not p.requires_grad for p in layer.parameters())
    for name in ('stage2', 'stage3', 'stage4'):
        layer = getattr(model, name)
        assert layer.training and all(p.requires_grad for p in layer.parameters())
        # norm_eval: BN in eval mode, convs still training
        assert all(not m.training for m in layer.modules() if isinstance(m, _BatchNorm))
    stats = model.stage3[1].main_conv.bn.running_mean.clone()
    model(torch.rand(2, 3, 64, 64))
    torch.testing.assert_close(model.stage3[1].main_conv.bn.running_mean, stats)
    # without norm_eval the running statistics move
    free = YOLOv8CSPDarknet(deepen_factor=0.33, widen_factor=0.125).train()
    before = free.stage3[1].main_conv.bn.running_mean.clone()
    free(torch.rand(2, 3, 64, 64))
    assert not torch.equal(free.stage3[1].main_conv.bn.running_mean, before)
    with pytest.raises(ValueError, match='frozen_stages'):
        YOLOv8CSPDarknet(frozen_stages=5)
    with pytest.raises(ValueError, match='out_indices'):
        YOLOv8CSPDarknet(out_indices=(2, 5))


def test_multimodal_backbone_frozen_stages():
    backbone = MultiModalYOLOBackbone(
        image_model_cfg(0.33, 0.125, 1024),
        dict(type='TinyTextModelForImageSideTests'),
        frozen_stages=2,
    )
    image = backbone.image_model
    # frozen at construction already, and again after train()
    assert all(not p.requires_grad for p in image.stage2.parameters())
    backbone.train()
    for name in ('stem', 'stage1', 'stage2'):
        assert not getattr(image, name).training
        assert all(not p.requires_grad for p in getattr(image, name).parameters())
    assert image.stage3.training and all(p.requires_grad for p in image.stage3.parameters())
    assert backbone.text_model.training  # the text model's own freezing is its business
    with pytest.raises(ValueError, match='frozen_stages=7'):
        MultiModalYOLOBackbone(image_model_cfg(0.33, 0.125, 1024), None, frozen_stages=7)


def test_neck_freeze_all():
    neck = MODELS.build(
        neck_cfg(0.33, 0.125, 1024, guide_channels=TEXT_DIM, freeze_all=True)
    ).train()
    assert all(not p.requires_grad for p in neck.parameters())
    assert all(not m.training for m in neck.modules() if isinstance(m, _BatchNorm))


def slow_image_pooling_attention(module: ImagePoolingAttentionModule, texts, feats):
    """Per image, head and text: softmax over pooled patches of scaled dot products."""
    batch = texts.shape[0]
    patches = []
    for x, proj in zip(feats, module.projections):
        pooled = nn.functional.adaptive_max_pool2d(proj(x), module.pool_size)
        patches.append(pooled.flatten(2))
    patches = torch.cat(patches, dim=2).transpose(1, 2)  # (B, P, E)
    q, k, v = module.query(texts), module.key(patches), module.value(patches)
    hc = module.head_channels
    out = torch.zeros(batch, texts.shape[1], module.embed_channels)
    for bi in range(batch):
        for m in range(module.num_heads):
            sl = slice(m * hc, (m + 1) * hc)
            for n in range(texts.shape[1]):
                scores = torch.stack(
                    [q[bi, n, sl] @ k[bi, p, sl] for p in range(patches.shape[1])]
                ) / math.sqrt(hc)
                weights = scores.softmax(0)
                out[bi, n, sl] = (weights[:, None] * v[bi, :, sl]).sum(0)
    return module.proj(out) * module.scale + texts


def test_image_pooling_attention_matches_slow_loop():
    torch.manual_seed(0)
    module = ImagePoolingAttentionModule(
        [4, 6, 8], text_channels=10, embed_channels=8, num_heads=2, pool_size=2
    ).eval()
    texts = torch.randn(2, 3, 10)
    feats = [torch.randn(2, 4, 8, 8), torch.randn(2, 6, 4, 4), torch.randn(2, 8, 2, 2)]
    with torch.no_grad():
        expected = slow_image_pooling_attention(module, texts, feats)
        torch.testing.assert_close(module(texts, feats), expected, rtol=1e-5, atol=1e-5)
        module.use_einsum = False
        torch.testing.assert_close(module(texts, feats), expected, rtol=1e-5, atol=1e-5)
    scaled = ImagePoolingAttentionModule([4, 6, 8], 10, 8, with_scale=True, num_heads=2)
    with torch.no_grad():  # the learnable scale starts at 0: texts pass unchanged
        torch.testing.assert_close(scaled(texts, feats), texts)


def test_dual_pafpn_v1():
    torch.manual_seed(0)
    neck = YOLOWorldDualPAFPN(
        [256, 512, 1024],
        [256, 512, 1024],
        guide_channels=TEXT_DIM,
        embed_channels=[128, 256, 512],
        num_heads=[4, 8, 16],
        deepen_factor=0.33,
        widen_factor=0.125,
        text_enhancder=dict(type='ImagePoolingAttentionModule', embed_channels=16, num_heads=2),
    ).eval()
    assert [p.conv.in_channels for p in neck.text_enhancer.projections] == [32, 64, 128]
    assert list(dict(neck.named_children()))[-1] == 'text_enhancer'
    feats = [torch.rand(2, 32, 8, 8), torch.rand(2, 64, 4, 4), torch.rand(2, 128, 2, 2)]
    with torch.no_grad():
        outs = neck(feats, torch.randn(2, 3, TEXT_DIM))
    assert [tuple(o.shape) for o in outs] == [(2, 32, 8, 8), (2, 64, 4, 4), (2, 128, 2, 2)]


def test_backbone_plugins_follow_upstream_format():
    plugin = dict(cfg=dict(type='ContextBlock', ratio=1.0 / 4), stages=(False, False, True, True))
    model = YOLOv8CSPDarknet(deepen_factor=0.33, widen_factor=0.125, plugins=[plugin]).eval()
    assert [len(getattr(model, f'stage{i}')) for i in range(1, 5)] == [2, 2, 3, 4]
    assert type(model.stage4[3]).__name__ == 'ContextBlock'
    assert model.stage3[2].in_channels == 64
    with torch.no_grad():
        outs = model(torch.rand(1, 3, 64, 64))
    assert [tuple(o.shape) for o in outs] == [(1, 32, 8, 8), (1, 64, 4, 4), (1, 128, 2, 2)]
    with pytest.raises(ValueError, match='4 entries'):
        YOLOv8CSPDarknet(widen_factor=0.125, plugins=[dict(plugin, stages=(True,))])


def test_rep_conv_block_equals_max_sigmoid_block_with_baked_texts():
    """Upstream's reparameterization (guide_convs[m] = head m of guide_fc(texts)) keeps
    the output of the text-guided block for that vocabulary."""
    torch.manual_seed(0)
    block = MaxSigmoidAttnBlock(8, 8, guide_channels=5, embed_channels=8, num_heads=2).eval()
    rep = RepConvMaxSigmoidAttnBlock(8, 8, embed_channels=8, guide_channels=3, num_heads=2).eval()
    texts = torch.randn(3, 5)
    with torch.no_grad():
        block.bias.copy_(torch.tensor([0.4, -0.1]))
        guide = texts @ block.guide_fc.weight.T + block.guide_fc.bias
        state = {k: v for k, v in block.state_dict().items() if not k.startswith('guide_fc')}
        for m, part in enumerate(guide.split(4, dim=1)):
            state[f'guide_convs.{m}.weight'] = part[:, :, None, None]
        rep.load_state_dict(state, strict=True)
        x = torch.randn(2, 8, 3, 3)
        torch.testing.assert_close(rep(x), block(x, texts.expand(2, 3, 5)), rtol=1e-5, atol=1e-6)
    layer = RepConvMaxSigmoidCSPLayerWithTwoConv(
        16, 16, guide_channels=80, embed_channels=8, num_heads=2
    )
    assert [c.weight.shape for c in layer.attn_block.guide_convs] == [(80, 4, 1, 1)] * 2
    assert layer(torch.rand(1, 16, 4, 4)).shape == (1, 16, 4, 4)
