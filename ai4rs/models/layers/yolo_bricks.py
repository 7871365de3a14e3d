"""Building blocks of YOLOv8 and YOLO-World: SPPF, the two-conv CSP layer and its
text-guided variants (mmyolo 0.6.0 and YOLO-World names, arguments and state_dict keys).

Text-guided layers take image features ``x`` (B, C, H, W) and text embeddings
``guide`` (B, K, guide_channels): K texts (class names) per image.
"""

from collections.abc import Sequence

import torch
from mmcv.cnn import ConvModule, DepthwiseSeparableConvModule
from mmengine.model import BaseModule
from torch import Tensor, nn

from ai4rs.registry import MODELS

#: mmyolo's defaults for every YOLOv8 / YOLO-World conv.
YOLO_NORM_CFG = dict(type='BN', momentum=0.03, eps=0.001)
YOLO_ACT_CFG = dict(type='SiLU', inplace=True)


class SPPFBottleneck(BaseModule):
    """Spatial pyramid pooling, fast (SPPF), as in mmyolo.

    ``conv1`` (1x1) maps ``in_channels`` to ``int(in_channels * mid_channels_scale)``
    channels (skipped when ``use_conv_first`` is False). With an int ``kernel_sizes``
    one stride-1 max pool (``poolings``) is applied three times in a row and the
    input and the three pooled maps are concatenated (4 * mid channels); with a
    sequence, one pool per kernel size is applied to the input in parallel.
    ``conv2`` (1x1) maps the concatenation to ``out_channels``.

    Args:
        in_channels (int): input channels.
        out_channels (int): output channels.
        kernel_sizes (int | Sequence[int]): pool size(s). Defaults to 5.
        use_conv_first (bool): apply ``conv1`` before pooling. Defaults to True.
        mid_channels_scale (float): ``conv1`` width as a fraction of ``in_channels``.
        conv_cfg, norm_cfg, act_cfg (dict): ``mmcv.cnn.ConvModule`` configs;
            BN(momentum=0.03, eps=0.001) and SiLU by default.
        init_cfg (dict, optional): initialization config.

    Shapes: (B, in_channels, H, W) -> (B, out_channels, H, W).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_sizes: int | Sequence[int] = 5,
        use_conv_first: bool = True,
        mid_channels_scale: float = 0.5,
        conv_cfg: dict | None = None,
        norm_cfg: dict = YOLO_NORM_CFG,
        act_cfg: dict = YOLO_ACT_CFG,
        init_cfg: dict | None = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        common = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg)
        if use_conv_first:
            mid_channels = int(in_channels * mid_channels_scale)
            self.conv1 = ConvModule(in_channels, mid_channels, 1, stride=1, **common)
        else:
            mid_channels = in_channels
            self.conv1 = None
        self.kernel_sizes = kernel_sizes
        if isinstance(kernel_sizes, int):
            self.poolings = nn.MaxPool2d(kernel_sizes, stride=1, padding=kernel_sizes // 2)
            num_maps = 4
        else:
            self.poolings = nn.ModuleList(
                [nn.MaxPool2d(k, stride=1, padding=k // 2) for k in kernel_sizes]
            )
            num_maps = len(kernel_sizes) + 1
        self.conv2 = ConvModule(mid_channels * num_maps, out_channels, 1, **common)

    def forward(self, x: Tensor) -> Tensor:
        if self.conv1 is not None:
            x = self.conv1(x)
        if isinstance(self.kernel_sizes, int):
            maps = [x]
            for _ in range(3):
                maps.append(self.poolings(maps[-1]))
        else:
            maps = [x] + [pooling(x) for pooling in self.poolings]
        return self.conv2(torch.cat(maps, dim=1))


class YOLOv8DarknetBottleneck(BaseModule):
    """Darknet bottleneck with configurable kernel sizes (mmyolo's ``DarknetBottleneck``).

    ``conv1`` (``kernel_size[0]``) maps ``in_channels`` to
    ``int(out_channels * expansion)`` channels, ``conv2`` (``kernel_size[1]``,
    optionally depthwise separable) maps them to ``out_channels``; the input is
    added when ``add_identity`` and ``in_channels == out_channels``. YOLOv8 uses
    two 3x3 convs with expansion 1. (ai4rs' ``DarknetBottleneck`` is the YOLOX one,
    fixed to 1x1 then 3x3; this class has its own name so both can be imported.)

    Args:
        in_channels (int): input channels.
        out_channels (int): output channels.
        expansion (float): hidden / output channels. Defaults to 0.5.
        kernel_size (Sequence[int]): kernel sizes of conv1, conv2. Defaults to (1, 3).
        padding (Sequence[int]): paddings of conv1, conv2. Defaults to (0, 1).
        add_identity (bool): residual shortcut. Defaults to True.
        use_depthwise (bool): depthwise separable conv2. Defaults to False.
        conv_cfg, norm_cfg, act_cfg (dict): ConvModule configs.
        init_cfg (dict, optional): initialization config.

    Shapes: (B, in_channels, H, W) -> (B, out_channels, H, W).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        expansion: float = 0.5,
        kernel_size: Sequence[int] = (1, 3),
        padding: Sequence[int] = (0, 1),
        add_identity: bool = True,
        use_depthwise: bool = False,
        conv_cfg: dict | None = None,
        norm_cfg: dict = YOLO_NORM_CFG,
        act_cfg: dict = YOLO_ACT_CFG,
        init_cfg: dict | None = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        if len(kernel_size) != 2 or len(padding) != 2:
            raise ValueError(
                'YOLOv8DarknetBottleneck: kernel_size and padding need two '
                f'entries (conv1, conv2), got {kernel_size} and {padding}'
            )
        hidden_channels = int(out_channels * expansion)
        common = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg)
        conv = DepthwiseSeparableConvModule if use_depthwise else ConvModule
        self.conv1 = ConvModule(
            in_channels, hidden_channels, kernel_size[0], padding=padding[0], **common
        )
        self.conv2 = conv(
            hidden_channels, out_channels, kernel_size[1], stride=1, padding=padding[1], **common
        )
        self.add_identity = add_identity and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv2(self.conv1(x))
        return out + x if self.add_identity else out


class CSPLayerWithTwoConv(BaseModule):
    """YOLOv8's C2f layer: one 1x1 conv split in two, bottlenecks chained on one half.

    ``main_conv`` (1x1) maps the input to 2 * mid channels
    (``mid = int(out_channels * expand_ratio)``), split into two halves; each of
    ``blocks`` (``num_blocks`` :class:`YOLOv8DarknetBottleneck`, 3x3 + 3x3,
    expansion 1) takes the previous chunk's output; ``final_conv`` (1x1) fuses all
    (2 + num_blocks) chunks to ``out_channels``. Submodules are created in the
    order main_conv, final_conv, blocks (the state_dict order of checkpoints).

    Args:
        in_channels (int): input channels.
        out_channels (int): output channels.
        expand_ratio (float): ``mid / out_channels``. Defaults to 0.5.
        num_blocks (int): number of bottlenecks. Defaults to 1.
        add_identity (bool): shortcut inside the bottlenecks. Defaults to True.
        conv_cfg, norm_cfg, act_cfg (dict): ConvModule configs.
        init_cfg (dict, optional): initialization config.

    Shapes: (B, in_channels, H, W) -> (B, out_channels, H, W).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        expand_ratio: float = 0.5,
        num_blocks: int = 1,
        add_identity: bool = True,
        conv_cfg: dict | None = None,
        norm_cfg: dict = YOLO_NORM_CFG,
        act_cfg: dict = YOLO_ACT_CFG,
        init_cfg: dict | None = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        common = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.mid_channels = int(out_channels * expand_ratio)
        self.main_conv = ConvModule(in_channels, 2 * self.mid_channels, 1, **common)
        self.final_conv = ConvModule(
            (2 + num_blocks) * self.mid_channels, out_channels, 1, **common
        )
        self.blocks = nn.ModuleList(
            YOLOv8DarknetBottleneck(
                self.mid_channels,
                self.mid_channels,
                expansion=1,
                kernel_size=(3, 3),
                padding=(1, 1),
                add_identity=add_identity,
                use_depthwise=False,
                **common,
            )
            for _ in range(num_blocks)
        )

    def _chunks(self, x: Tensor) -> list[Tensor]:
        """The two halves of ``main_conv(x)`` followed by each block's output."""
        chunks = list(self.main_conv(x).split((self.mid_channels, self.mid_channels), 1))
        for block in self.blocks:
            chunks.append(block(chunks[-1]))
        return chunks

    def forward(self, x: Tensor) -> Tensor:
        return self.final_conv(torch.cat(self._chunks(x), 1))


def max_sigmoid_attention(
    embed: Tensor, guide: Tensor, bias: Tensor, use_einsum: bool = True
) -> Tensor:
    """Text-guided max-sigmoid attention weights of YOLO-World's T-CSPLayer.

    For every pixel and head m: ``sigmoid(max_k <embed[m, :, h, w], guide[k, m, :]>
    / sqrt(C) + bias[m])``.

    Args:
        embed (Tensor): (B, M, C, H, W) image embedding split into M heads of C channels.
        guide (Tensor): (B, K, M, C) K text embeddings split the same way.
        bias (Tensor): (M,) per-head bias.
        use_einsum (bool): compute the products with ``torch.einsum`` (else matmul,
            for exporters without einsum). Same result.

    Returns:
        Tensor: (B, M, H, W) attention weights in (0, 1).
    """
    batch, num_heads, head_channels, height, width = embed.shape
    if use_einsum:
        weight = torch.einsum('bmchw,bnmc->bmhwn', embed, guide)
    else:
        pixels = embed.permute(0, 1, 3, 4, 2).reshape(batch, num_heads, -1, head_channels)
        weight = torch.matmul(pixels, guide.permute(0, 2, 3, 1))
        weight = weight.reshape(batch, num_heads, height, width, -1)
    weight = weight.max(dim=-1)[0] / (head_channels**0.5)
    return (weight + bias[None, :, None, None]).sigmoid()


@MODELS.register_module()
class MaxSigmoidAttnBlock(BaseModule):
    """Max-sigmoid attention block of YOLO-World (text-guided feature gating).

    ``guide_fc`` (Linear guide_channels -> embed_channels) projects the texts;
    ``embed_conv`` (1x1 conv + BN, only when ``embed_channels != in_channels``)
    projects the image; both are split into ``num_heads`` heads and
    :func:`max_sigmoid_attention` gives one weight per head and pixel (times
    ``scale`` when ``with_scale``). ``project_conv`` (``kernel_size`` conv + BN, no
    activation) maps ``x`` to ``out_channels``, and each head's channels are
    multiplied by that head's weight. ``bias`` (per head) starts at zero.

    Args:
        in_channels (int): input channels.
        out_channels (int): output channels (divisible by ``num_heads``).
        guide_channels (int): text embedding channels (512 for CLIP ViT-B/32).
        embed_channels (int): attention channels (divisible by ``num_heads``).
        kernel_size (int): ``project_conv`` kernel size. Defaults to 3.
        padding (int): ``project_conv`` padding. Defaults to 1.
        num_heads (int): attention heads. Defaults to 1.
        use_depthwise (bool): depthwise separable ``project_conv``. Defaults to False.
        with_scale (bool): learnable per-head scale (init 1). Defaults to False.
        conv_cfg, norm_cfg (dict): ConvModule configs.
        init_cfg (dict, optional): initialization config.
        use_einsum (bool): einsum or matmul for the products. Defaults to True.

    Shapes: x (B, in_channels, H, W), guide (B, K, guide_channels)
    -> (B, out_channels, H, W).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        guide_channels: int,
        embed_channels: int,
        kernel_size: int = 3,
        padding: int = 1,
        num_heads: int = 1,
        use_depthwise: bool = False,
        with_scale: bool = False,
        conv_cfg: dict | None = None,
        norm_cfg: dict = YOLO_NORM_CFG,
        init_cfg: dict | None = None,
        use_einsum: bool = True,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        if out_channels % num_heads or embed_channels % num_heads:
            raise ValueError(
                f'MaxSigmoidAttnBlock: out_channels ({out_channels}) and '
                f'embed_channels ({embed_channels}) must be divisible by '
                f'num_heads ({num_heads})'
            )
        conv = DepthwiseSeparableConvModule if use_depthwise else ConvModule
        self.num_heads = num_heads
        self.head_channels = embed_channels // num_heads
        self.use_einsum = use_einsum
        self.embed_conv = (
            ConvModule(
                in_channels, embed_channels, 1, conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=None
            )
            if embed_channels != in_channels
            else None
        )
        self.guide_fc = nn.Linear(guide_channels, embed_channels)
        self.bias = nn.Parameter(torch.zeros(num_heads))
        if with_scale:
            self.scale = nn.Parameter(torch.ones(1, num_heads, 1, 1))
        else:
            self.scale = 1.0
        self.project_conv = conv(
            in_channels,
            out_channels,
            kernel_size,
            stride=1,
            padding=padding,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            act_cfg=None,
        )

    def forward(self, x: Tensor, guide: Tensor) -> Tensor:
        if guide is None:
            raise ValueError(
                'MaxSigmoidAttnBlock needs text features (B, K, C); got None '
                '(is the backbone built without a text model?)'
            )
        batch, _, height, width = x.shape
        guide = self.guide_fc(guide).reshape(batch, -1, self.num_heads, self.head_channels)
        embed = self.embed_conv(x) if self.embed_conv is not None else x
        embed = embed.reshape(batch, self.num_heads, self.head_channels, height, width)
        weight = max_sigmoid_attention(embed, guide, self.bias, self.use_einsum) * self.scale
        out = self.project_conv(x).reshape(batch, self.num_heads, -1, height, width)
        return (out * weight.unsqueeze(2)).reshape(batch, -1, height, width)


@MODELS.register_module()
class MaxSigmoidCSPLayerWithTwoConv(CSPLayerWithTwoConv):
    """YOLO-World's T-CSPLayer: :class:`CSPLayerWithTwoConv` plus a text-guided chunk.

    After the bottlenecks, ``attn_block`` (:class:`MaxSigmoidAttnBlock`, mid -> mid
    channels) is applied to the last chunk and appended, so ``final_conv`` fuses
    (3 + num_blocks) * mid channels.

    Args:
        in_channels, out_channels (int): channels.
        guide_channels (int): text embedding channels.
        embed_channels (int): attention channels.
        num_heads (int): attention heads. Defaults to 1.
        expand_ratio (float): ``mid / out_channels``. Defaults to 0.5.
        num_blocks (int): bottlenecks. Defaults to 1.
        with_scale (bool): learnable attention scale. Defaults to False.
        add_identity (bool): shortcut inside the bottlenecks. Defaults to True.
        conv_cfg, norm_cfg, act_cfg (dict): ConvModule configs.
        init_cfg (dict, optional): initialization config.
        use_einsum (bool): einsum or matmul in the attention. Defaults to True.

    Shapes: x (B, in_channels, H, W), guide (B, K, guide_channels)
    -> (B, out_channels, H, W).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        guide_channels: int,
        embed_channels: int,
        num_heads: int = 1,
        expand_ratio: float = 0.5,
        num_blocks: int = 1,
        with_scale: bool = False,
        add_identity: bool = True,
        conv_cfg: dict | None = None,
        norm_cfg: dict = YOLO_NORM_CFG,
        act_cfg: dict = YOLO_ACT_CFG,
        init_cfg: dict | None = None,
        use_einsum: bool = True,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            expand_ratio=expand_ratio,
            num_blocks=num_blocks,
            add_identity=add_identity,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
            init_cfg=init_cfg,
        )
        # one more chunk to fuse; replacing the attribute keeps its state_dict position
        self.final_conv = ConvModule(
            (3 + num_blocks) * self.mid_channels,
            out_channels,
            1,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
        )
        self.attn_block = self.build_attn_block(
            self.mid_channels,
            guide_channels=guide_channels,
            embed_channels=embed_channels,
            num_heads=num_heads,
            with_scale=with_scale,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            use_einsum=use_einsum,
        )

    def build_attn_block(self, channels: int, **kwargs) -> nn.Module:
        """The text-guided block on the last chunk (``channels`` -> ``channels``); the
        subclasses below change only this."""
        return MaxSigmoidAttnBlock(channels, channels, **kwargs)

    def forward(self, x: Tensor, guide: Tensor | None = None) -> Tensor:
        chunks = self._chunks(x)
        chunks.append(self.attn_block(chunks[-1], guide))
        return self.final_conv(torch.cat(chunks, 1))


@MODELS.register_module()
class RepConvMaxSigmoidAttnBlock(BaseModule):
    """:class:`MaxSigmoidAttnBlock` with a fixed vocabulary baked into 1x1 convs
    (YOLO-World's reparameterized VL-PAN, ``--conv-neck``).

    ``guide_convs[m]`` (Conv2d embed_channels / num_heads -> guide_channels, no bias)
    holds head m of ``guide_fc(texts)`` for ``guide_channels`` fixed texts, so the
    attention of head m is ``sigmoid(max_k guide_convs[m](embed_m)[k] / sqrt(out_channels
    / num_heads) + bias[m])``; the ``guide`` argument of ``forward`` is ignored.
    Upstream's ``tools/reparameterize_yoloworld.py`` writes ``guide_convs.{m}.weight``
    = ``(texts @ guide_fc.weight.T + guide_fc.bias)[:, m*c:(m+1)*c, None, None]``.
    Same arguments as :class:`MaxSigmoidAttnBlock`, with ``guide_channels`` = number
    of baked texts.

    Shapes: x (B, in_channels, H, W) -> (B, out_channels, H, W).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        embed_channels: int,
        guide_channels: int,
        kernel_size: int = 3,
        padding: int = 1,
        num_heads: int = 1,
        use_depthwise: bool = False,
        with_scale: bool = False,
        conv_cfg: dict | None = None,
        norm_cfg: dict = YOLO_NORM_CFG,
        init_cfg: dict | None = None,
        use_einsum: bool = True,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        if out_channels % num_heads or embed_channels % num_heads:
            raise ValueError(
                f'RepConvMaxSigmoidAttnBlock: out_channels ({out_channels}) and '
                f'embed_channels ({embed_channels}) must be divisible by '
                f'num_heads ({num_heads})'
            )
        conv = DepthwiseSeparableConvModule if use_depthwise else ConvModule
        self.num_heads = num_heads
        self.head_channels = out_channels // num_heads
        self.use_einsum = use_einsum
        self.embed_conv = (
            ConvModule(
                in_channels, embed_channels, 1, conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=None
            )
            if embed_channels != in_channels
            else None
        )
        self.bias = nn.Parameter(torch.zeros(num_heads))
        self.split_channels = embed_channels // num_heads
        self.guide_convs = nn.ModuleList(
            nn.Conv2d(self.split_channels, guide_channels, 1, bias=False) for _ in range(num_heads)
        )
        self.project_conv = conv(
            in_channels,
            out_channels,
            kernel_size,
            stride=1,
            padding=padding,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            act_cfg=None,
        )

    def forward(self, x: Tensor, txt_feats: Tensor | None = None) -> Tensor:
        batch, _, height, width = x.shape
        embed = self.embed_conv(x) if self.embed_conv is not None else x
        heads = embed.split(self.split_channels, 1)
        # (B, M, K, H, W): every head's similarity to each baked text
        weight = torch.stack([conv(e) for conv, e in zip(self.guide_convs, heads)], dim=1)
        weight = weight.max(dim=2)[0] / (self.head_channels**0.5)
        weight = (weight + self.bias.view(1, -1, 1, 1)).sigmoid()
        out = self.project_conv(x).view(batch, self.num_heads, -1, height, width)
        return (out * weight[:, :, None]).view(batch, -1, height, width)


@MODELS.register_module()
class RepConvMaxSigmoidCSPLayerWithTwoConv(MaxSigmoidCSPLayerWithTwoConv):
    """:class:`MaxSigmoidCSPLayerWithTwoConv` whose ``attn_block`` is a
    :class:`RepConvMaxSigmoidAttnBlock` (vocabulary baked in; ``guide`` ignored).

    Same arguments as :class:`MaxSigmoidCSPLayerWithTwoConv`.

    Shapes: x (B, in_channels, H, W) -> (B, out_channels, H, W).
    """

    def build_attn_block(self, channels: int, **kwargs) -> nn.Module:
        return RepConvMaxSigmoidAttnBlock(channels, channels, **kwargs)


@MODELS.register_module()
class VanillaSigmoidBlock(BaseModule):
    """The attention block of YOLO-World's efficient neck: ``project_conv`` only.

    Takes the same arguments as :class:`MaxSigmoidAttnBlock` (so the two are
    interchangeable in configs) but ignores the text: the output is
    ``project_conv(x)`` (``kernel_size`` conv + BN, no activation).

    Shapes: x (B, in_channels, H, W), guide (ignored) -> (B, out_channels, H, W).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        guide_channels: int,
        embed_channels: int,
        kernel_size: int = 3,
        padding: int = 1,
        num_heads: int = 1,
        use_depthwise: bool = False,
        with_scale: bool = False,
        conv_cfg: dict | None = None,
        norm_cfg: dict = YOLO_NORM_CFG,
        init_cfg: dict | None = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        if out_channels % num_heads or embed_channels % num_heads:
            raise ValueError(
                f'VanillaSigmoidBlock: out_channels ({out_channels}) and '
                f'embed_channels ({embed_channels}) must be divisible by '
                f'num_heads ({num_heads})'
            )
        conv = DepthwiseSeparableConvModule if use_depthwise else ConvModule
        self.num_heads = num_heads
        self.head_channels = out_channels // num_heads
        self.project_conv = conv(
            in_channels,
            out_channels,
            kernel_size,
            stride=1,
            padding=padding,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            act_cfg=None,
        )

    def forward(self, x: Tensor, guide: Tensor | None = None) -> Tensor:
        return self.project_conv(x)


@MODELS.register_module()
class EfficientCSPLayerWithTwoConv(MaxSigmoidCSPLayerWithTwoConv):
    """YOLO-World's efficient-neck CSP layer: the T-CSPLayer with a
    :class:`VanillaSigmoidBlock` as ``attn_block`` (the text is not used).

    Same arguments as :class:`MaxSigmoidCSPLayerWithTwoConv` (``use_einsum`` has no effect).

    Shapes: x (B, in_channels, H, W), guide (ignored) -> (B, out_channels, H, W).
    """

    def build_attn_block(self, channels: int, use_einsum: bool = True, **kwargs) -> nn.Module:
        return VanillaSigmoidBlock(channels, channels, **kwargs)


@MODELS.register_module()
class ImagePoolingAttentionModule(nn.Module):
    """YOLO-World v1's image-pooling attention: texts attend to pooled image patches.

    Each level i is projected by ``projections[i]`` (1x1 conv with bias, no norm or
    activation) to ``embed_channels`` and max-pooled to ``pool_size`` x ``pool_size``
    (``image_pools[i]``), giving ``num_feats * pool_size**2`` patches. Queries come
    from the texts (``query`` = LayerNorm + Linear text -> embed), keys and values
    from the patches (``key``, ``value`` = LayerNorm + Linear); multi-head softmax
    attention with ``num_heads`` heads, then ``proj`` (Linear embed -> text) and a
    residual: ``texts + scale * proj(attn)`` (``scale`` is a learnable scalar
    starting at 0 when ``with_scale``, else 1).

    Args:
        image_channels (list[int]): channels of each image level.
        text_channels (int): text embedding channels.
        embed_channels (int): attention channels (divisible by ``num_heads``).
        with_scale (bool): learnable residual scale. Defaults to False.
        num_feats (int): number of image levels. Defaults to 3.
        num_heads (int): attention heads. Defaults to 8.
        pool_size (int): pooled patch grid size. Defaults to 3.
        use_einsum (bool): einsum or matmul. Defaults to True.

    Shapes: text_features (B, K, text_channels), image_features list of
    (B, image_channels[i], H_i, W_i) -> (B, K, text_channels).
    """

    def __init__(
        self,
        image_channels: list[int],
        text_channels: int,
        embed_channels: int,
        with_scale: bool = False,
        num_feats: int = 3,
        num_heads: int = 8,
        pool_size: int = 3,
        use_einsum: bool = True,
    ) -> None:
        super().__init__()
        if embed_channels % num_heads:
            raise ValueError(
                f'ImagePoolingAttentionModule: embed_channels ({embed_channels}) '
                f'must be divisible by num_heads ({num_heads})'
            )
        self.text_channels = text_channels
        self.embed_channels = embed_channels
        self.num_heads = num_heads
        self.num_feats = num_feats
        self.head_channels = embed_channels // num_heads
        self.pool_size = pool_size
        self.use_einsum = use_einsum
        if with_scale:
            self.scale = nn.Parameter(torch.tensor([0.0]), requires_grad=True)
        else:
            self.scale = 1.0
        self.projections = nn.ModuleList(
            [ConvModule(ch, embed_channels, 1, act_cfg=None) for ch in image_channels]
        )
        self.query = nn.Sequential(
            nn.LayerNorm(text_channels), nn.Linear(text_channels, embed_channels)
        )
        self.key = nn.Sequential(
            nn.LayerNorm(embed_channels), nn.Linear(embed_channels, embed_channels)
        )
        self.value = nn.Sequential(
            nn.LayerNorm(embed_channels), nn.Linear(embed_channels, embed_channels)
        )
        self.proj = nn.Linear(embed_channels, text_channels)
        self.image_pools = nn.ModuleList(
            [nn.AdaptiveMaxPool2d((pool_size, pool_size)) for _ in range(num_feats)]
        )

    def forward(self, text_features: Tensor, image_features: Sequence[Tensor]) -> Tensor:
        if len(image_features) != self.num_feats:
            raise ValueError(
                f'ImagePoolingAttentionModule: expected {self.num_feats} image '
                f'levels, got {len(image_features)}'
            )
        batch = image_features[0].shape[0]
        patches = torch.cat(
            [
                pool(proj(x)).view(batch, -1, self.pool_size**2)
                for x, proj, pool in zip(image_features, self.projections, self.image_pools)
            ],
            dim=-1,
        ).transpose(1, 2)  # (B, P, embed)
        shape = (batch, -1, self.num_heads, self.head_channels)
        q = self.query(text_features).reshape(shape)
        k = self.key(patches).reshape(shape)
        v = self.value(patches).reshape(shape)
        if self.use_einsum:
            weight = torch.einsum('bnmc,bkmc->bmnk', q, k)
        else:
            weight = torch.matmul(q.permute(0, 2, 1, 3), k.permute(0, 2, 3, 1))
        weight = (weight / self.head_channels**0.5).softmax(dim=-1)
        if self.use_einsum:
            out = torch.einsum('bmnk,bkmc->bnmc', weight, v)
        else:
            out = torch.matmul(weight, v.permute(0, 2, 1, 3)).permute(0, 2, 1, 3)
        out = self.proj(out.reshape(batch, -1, self.embed_channels))
        return out * self.scale + text_features
