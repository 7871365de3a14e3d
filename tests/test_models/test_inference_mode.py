"""The inference mode (:mod:`ai4rs.models.utils.inference_mode`): Conv+BN folded only where the
BatchNorm normalises that conv's output, channels-last, and the same outputs as the eager
model within 1e-4 for each detector family (rotated YOLOX, YOLO-World v2 with texts, rotated
YOLO-World), raw head outputs and final predictions; ``tools/test.py`` with and without
``--no-inference-mode`` gives the same predictions and metric."""

import importlib.util
import os.path as osp
import pickle

import pytest
import torch
from mmcv.cnn import ConvModule
from mmcv.cnn.utils import fuse_conv_bn as mmcv_fuse_conv_bn
from torch import nn

from ai4rs.models.utils.inference_mode import (
    fold_bn_into_conv_params,
    fuse_conv_bn,
    is_inference_mode,
    to_inference_mode,
)
from ai4rs.models.utils.inference_ops import FusedConvAct
from tests.conftest import REPO_ROOT

TEXTS = ['vehicle', 'pool', 'court']


def _random_bn(bn: nn.BatchNorm2d, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(bn.num_features, generator=g))
        bn.running_var.copy_(torch.rand(bn.num_features, generator=g) + 0.5)
        bn.weight.copy_(torch.randn(bn.num_features, generator=g))
        bn.bias.copy_(torch.randn(bn.num_features, generator=g))


def test_folded_conv_equals_conv_then_batchnorm():
    torch.manual_seed(0)
    for bias, groups in ((False, 1), (True, 2)):
        conv = nn.Conv2d(4, 6, 3, padding=1, bias=bias, groups=groups)
        bn = nn.BatchNorm2d(6, eps=1e-3)
        _random_bn(bn, 1)
        bn.eval()
        x = torch.randn(2, 4, 7, 5)
        weight, b = fold_bn_into_conv_params(conv.weight, conv.bias, bn)
        got = nn.functional.conv2d(x, weight, b, padding=1, groups=groups)
        torch.testing.assert_close(got, bn(conv(x)), atol=1e-5, rtol=1e-5)


class _ConvAndBnOnItsInput(nn.Module):
    """A conv child and a BatchNorm child, the BN applied to the block's input (not the
    conv's output): the children order of mmcv's ``fuse_conv_bn`` would fold them."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x):
        return self.conv(x) + self.bn(x)


def _planted():
    torch.manual_seed(0)
    model = nn.Sequential(
        ConvModule(3, 4, 3, padding=1, norm_cfg=dict(type='BN')),
        _ConvAndBnOnItsInput(),
        # norm before conv: the BN is over the conv's input channels
        ConvModule(4, 4, 1, norm_cfg=dict(type='BN'), order=('norm', 'conv', 'act')),
    )
    for i, m in enumerate(model.modules()):
        if isinstance(m, nn.BatchNorm2d):
            _random_bn(m, i)
    return model.eval()


def test_only_a_convmodule_with_conv_then_bn_is_fused():
    model = _planted()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        eager = model(x)
    assert fuse_conv_bn(model) == 1
    assert model[0].norm is None and model[0].conv.bias is not None
    assert isinstance(model[1].bn, nn.BatchNorm2d)  # the unsafe pair is left alone
    assert isinstance(model[2].norm, nn.BatchNorm2d)
    assert not any(k.startswith('0.bn.') for k in model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(model(x), eager, atol=1e-5, rtol=1e-5)
    # the planted block is one that the children-order fusion gets wrong
    wrong = mmcv_fuse_conv_bn(_planted())
    with torch.no_grad():
        assert not torch.allclose(wrong(x), eager, atol=1e-3)


def test_to_inference_mode_once_and_channels_last():
    model = _planted()
    to_inference_mode(model, channels_last=True)
    assert is_inference_mode(model)
    state = dict(fused=1, channels_last=True, silu=0, chained_spp=0, conv_act=1, contrast_norms=0)
    assert model._ai4rs_inference_mode == state
    assert model[0].conv.weight.is_contiguous(memory_format=torch.channels_last)
    to_inference_mode(model)  # a second call changes nothing
    assert model._ai4rs_inference_mode == state


# ---------------------------------------------------------------- the three families


def _bn_convmodules(model) -> int:
    return sum(
        1
        for m in model.modules()
        if isinstance(m, ConvModule) and isinstance(m.norm, nn.modules.batchnorm._BatchNorm)
    )


def _batchnorms(model) -> int:
    return sum(1 for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm))


def _raw_outputs(model, img, texts):
    from ai4rs.apis.pipeline import build_inference_pipeline, pipeline_input

    data = build_inference_pipeline(model.cfg, False, with_texts=texts is not None)(
        pipeline_input(img, 0, texts)
    )
    if texts is not None and 'texts' not in data['data_samples']:
        data['data_samples'].texts = list(texts)
    batch = model.data_preprocessor(
        dict(inputs=[data['inputs']], data_samples=[data['data_samples']]), False
    )
    with torch.inference_mode():
        out = model(batch['inputs'], batch['data_samples'], mode='tensor')
    flat = []

    def walk(o):
        if isinstance(o, torch.Tensor):
            flat.append(o)
        elif isinstance(o, (list, tuple)):
            for x in o:
                walk(x)

    walk(out)
    return flat


def _check_family(config, ckpt, img, texts, channels_last):
    from ai4rs.apis import inference_detector, init_detector

    eager = init_detector(config, ckpt, inference_mode=False)
    fast = init_detector(config, ckpt, channels_last=channels_last)
    n = _bn_convmodules(eager)
    assert n > 0
    from mmcv.cnn.bricks.swish import Swish

    from ai4rs.models.layers.spp_bottleneck import SPPBottleneck

    swishes = sum(type(m) is Swish for m in eager.modules())
    spps = sum(isinstance(m, SPPBottleneck) for m in eager.modules())
    # every conv -> BN -> activation ConvModule (and conv -> activation one) of these families
    conv_acts = sum(
        1
        for m in eager.modules()
        if isinstance(m, ConvModule)
        and m.with_activation
        and (not m.with_norm or isinstance(m.norm, nn.modules.batchnorm._BatchNorm))
    )
    # YOLO-World's contrast heads: a BatchNorm on the class branch's last conv output
    contrasts = sum(type(m).__name__ == 'BNContrastiveHead' for m in eager.modules())
    assert fast._ai4rs_inference_mode == dict(
        fused=n,
        channels_last=channels_last,
        silu=swishes,
        chained_spp=spps,
        conv_act=conv_acts,
        contrast_norms=contrasts,
    )
    assert sum(isinstance(m, FusedConvAct) for m in fast.modules()) == conv_acts > 0
    assert not any(type(m) is Swish for m in fast.modules())
    assert not is_inference_mode(eager)
    assert _batchnorms(fast) == _batchnorms(eager) - n - contrasts
    # a ConvModule pair: w, b, mean, var, count gone, the conv's bias new; a contrast norm: its
    # five gone (the conv before it has a bias)
    assert len(fast.state_dict()) == len(eager.state_dict()) - 4 * n - 5 * contrasts
    raw_e, raw_f = _raw_outputs(eager, img, texts), _raw_outputs(fast, img, texts)
    assert len(raw_e) == len(raw_f) > 0
    for a, b in zip(raw_e, raw_f):
        # within 1e-4 of the map's scale: the eager float32 model itself is about that far
        # from a float64 run of it (a calibrated rotated YOLO-World: 5e-4 on logits up to 24)
        assert b.shape == a.shape
        assert (b - a).abs().max() <= 1e-4 * max(1.0, a.abs().max().item())
    pe = inference_detector(eager, img, texts=texts).pred_instances
    pf = inference_detector(fast, img, texts=texts).pred_instances
    assert len(pe) == len(pf) > 0
    _assert_same_detections(pf, pe)


def _rows(bboxes, scores, labels) -> torch.Tensor:
    """(N, box dims + 2): boxes, score, label of each detection."""
    return torch.cat([bboxes, scores[:, None], labels[:, None].float()], 1)


def _assert_same_detections(a, b) -> None:
    """The same detections, in any order (scores that tie within float rounding may be
    listed in another order): box coordinates within 1e-4 of the image scale, a rotated
    box's angle within 2e-3 rad (0.1 degree; measured: the raw maps of the calibrated rotated
    YOLO-World here, eager float32 vs float64, differ by up to 5e-4, and the two float32
    runs of ``tools/test.py`` by 1.0e-3 rad on an angle), scores within 1e-4, labels equal."""
    ra = _rows(a.bboxes.tensor, a.scores, a.labels)
    rb = _rows(b.bboxes.tensor, b.scores, b.labels)
    assert ra.shape == rb.shape
    tol = torch.full((ra.shape[1],), 1e-4)
    tol[:4] = 1e-4 * rb[:, :4].abs().max().clamp_min(1.0)
    if ra.shape[1] == 7:  # (cx, cy, w, h, angle)
        tol[4] = 2e-3
    tol[-1] = 0.5  # labels: equal
    ok = ((ra[:, None] - rb[None]).abs() <= tol).all(-1)  # (N, N) rows that match
    assert ok.any(1).all() and ok.any(0).all(), (ra[~ok.any(1)], rb[~ok.any(0)])
    # one to one: each row matches a row of its own
    assert len(set(ok.float().argmax(1).tolist())) == len(ra)


@pytest.mark.parametrize('channels_last', [False, True])
def test_rotated_yolox_inference_mode_equals_eager(tmp_path, channels_last):
    from tests.yolo_world_infer_helpers import save_model, write_scene, yolox_config

    config, ckpt = save_model(yolox_config(), str(tmp_path), 'yolox')
    _check_family(config, ckpt, write_scene(tmp_path / 'scene.png'), None, channels_last)


@pytest.mark.parametrize('channels_last', [False, True])
def test_yolo_world_inference_mode_equals_eager(tiny_clip_dir, tmp_path, channels_last):
    pytest.importorskip('transformers')
    from tests.yolo_world_infer_helpers import save_model, world_config, write_scene

    config, ckpt = save_model(
        world_config(tiny_clip_dir), str(tmp_path), 'world', box_bin=1, logit_scale=2.0
    )
    _check_family(config, ckpt, write_scene(tmp_path / 'scene.png'), TEXTS, channels_last)


def save_rotated_world(tiny_clip_dir, tmp) -> tuple[str, str]:
    """(config, checkpoint) of a tiny rotated YOLO-World saved under ``tmp`` (its synthetic DOTA
    data there too), BatchNorms with their initial statistics."""
    from ai4rs.datasets.preparation.synthetic_dota import generate_dataset, write_class_texts
    from tests.yolo_world_infer_helpers import rotated_world_config, save_model

    data_root = tmp / 'data'
    generate_dataset(str(data_root), num_train=1, num_val=2, img_size=128)
    write_class_texts(str(data_root))
    cfg = rotated_world_config(tiny_clip_dir, data_root, size=128)
    return save_model(cfg, str(tmp), 'rw', box_bin=1, angle_std=0.5)


@pytest.fixture(scope='module')
def rotated_world(tiny_clip_dir, tmp_path_factory):
    pytest.importorskip('transformers')
    from tests.test_apis.test_yolo_world_rotated_use import _write_blobs
    from tests.yolo_world_infer_helpers import calibrate_batchnorm

    tmp = tmp_path_factory.mktemp('inference_mode_rw')
    config, ckpt = save_rotated_world(tiny_clip_dir, tmp)
    # calibrated BatchNorms and a blob image: scores follow the content, no near-ties for
    # NMS to break by float rounding (then the eager and fused models keep the same boxes)
    calibration = [_write_blobs(tmp / f'calib{i}.png', 128, 128, seed=10 + i) for i in range(2)]
    calibrate_batchnorm(config, ckpt, calibration, TEXTS)
    return dict(config=config, ckpt=ckpt, img=_write_blobs(tmp / 'scene.png', 96, 128), tmp=tmp)


@pytest.mark.parametrize('channels_last', [False, True])
def test_rotated_yolo_world_inference_mode_equals_eager(rotated_world, channels_last):
    rw = rotated_world
    _check_family(rw['config'], rw['ckpt'], rw['img'], TEXTS, channels_last)


def _load_test_tool():
    path = osp.join(REPO_ROOT, 'tools', 'test.py')
    spec = importlib.util.spec_from_file_location('ai4rs_test_tool', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_test_tool_variants(rotated_world, monkeypatch, variants) -> tuple[list, dict, dict]:
    """``tools/test.py`` on the saved rotated YOLO-World once per ``(name, extra options)`` of
    ``variants``, each with ``--out``: (the keyword arguments of every ``to_inference_mode``
    call, in order; ``{name: the --out predictions}``; ``{name: the metrics}``)."""
    import ai4rs.models.utils.inference_mode as im

    tool = _load_test_tool()
    calls = []
    real = im.to_inference_mode
    monkeypatch.setattr(im, 'to_inference_mode', lambda m, **kw: calls.append(kw) or real(m, **kw))
    tmp = rotated_world['tmp']
    preds, metrics = {}, {}
    for name, extra in variants:
        out = str(tmp / f'{name}.pkl')
        argv = [rotated_world['config'], rotated_world['ckpt'], '--work-dir', str(tmp / name)]
        monkeypatch.chdir(tmp)
        metrics[name] = tool.main(argv + ['--out', out] + extra)
        with open(out, 'rb') as f:
            preds[name] = pickle.load(f)
    return calls, preds, metrics


def test_test_tool_same_predictions_with_and_without_inference_mode(rotated_world, monkeypatch):
    from mmengine.structures import InstanceData

    from ai4rs.structures import RotatedBoxes

    calls, preds, metrics = run_test_tool_variants(
        rotated_world,
        monkeypatch,
        (
            ('fast', []),
            ('contiguous', ['--no-channels-last']),
            ('eager', ['--no-inference-mode']),
        ),
    )
    # one conversion per inference-mode run (channels-last on CPU unless --no-channels-last);
    # the eager run did not convert
    assert calls == [dict(fuse=True, channels_last=True), dict(fuse=True, channels_last=False)]
    for name in ('fast', 'contiguous'):
        assert metrics[name] == pytest.approx(metrics['eager'], abs=1e-4)
        assert len(preds[name]) == len(preds['eager']) == 2
        total = 0
        for a, b in zip(preds[name], preds['eager']):
            pa, pb = (InstanceData(**p['pred_instances']) for p in (a, b))
            for p in (pa, pb):
                p.bboxes = RotatedBoxes(p.bboxes)
            total += len(pb)
            _assert_same_detections(pa, pb)
        assert total > 0


def test_benchmark_inference_mode_flag_measures_the_fused_model(tiny_clip_dir, tmp_path):
    """``benchmark.py --inference-mode``: the model of ``init_detector``'s default; its memory
    is the eager model's less, per fused pair of C channels, the BatchNorm's four float32
    (C,) tensors and int64 counter, plus the conv's new float32 (C,) bias: 12 C + 8 bytes;
    per folded contrast-head norm 16 C + 8."""
    pytest.importorskip('transformers')
    from ai4rs.registry import MODELS
    from tests.test_analysis_tools.test_yolo_world_tools import SIZE, _load_tool, tiny_world_cfg

    tool = _load_tool('benchmark')
    config = str(tmp_path / 'tiny_world.py')
    tiny_world_cfg(tiny_clip_dir).dump(config)
    argv = [config, '--shape', str(SIZE), '--num-iters', '1', '--warmup', '1', '--device', 'cpu']
    argv += ['--text-model', tiny_clip_dir]
    eager = tool.main(argv)['bytes']
    fused = tool.main(argv + ['--inference-mode'])['bytes']
    model = MODELS.build(tiny_world_cfg(tiny_clip_dir).model)
    saved = sum(
        12 * m.conv.out_channels + 8
        for m in model.modules()
        if isinstance(m, ConvModule) and isinstance(m.norm, nn.BatchNorm2d)
    )
    # a contrast head's norm folded into the conv before it (which has a bias already): its
    # four float32 (C,) tensors and counter
    saved += sum(
        16 * m.norm.num_features + 8
        for m in model.modules()
        if type(m).__name__ == 'BNContrastiveHead'
    )
    assert saved > 0
    assert fused['text_model'] == eager['text_model']
    assert fused['image_model'] == eager['image_model'] - saved


def test_inference_detector_uses_inference_tensors_only_for_an_inference_model(tmp_path):
    from ai4rs.apis import inference_detector, init_detector
    from tests.yolo_world_infer_helpers import save_model, write_scene, yolox_config

    config, ckpt = save_model(yolox_config(), str(tmp_path), 'yolox')
    img = write_scene(tmp_path / 'scene.png')
    for inference_mode in (True, False):
        model = init_detector(config, ckpt, inference_mode=inference_mode)
        pred = inference_detector(model, img).pred_instances
        assert len(pred) > 0
        assert pred.scores.is_inference() == inference_mode


def test_channels_last_auto_is_on_for_cpu_only(tmp_path):
    from ai4rs.apis import init_detector
    from ai4rs.models.utils.inference_mode import resolve_channels_last
    from tests.yolo_world_infer_helpers import save_model, yolox_config

    assert resolve_channels_last('auto', 'cpu') is True
    assert resolve_channels_last('auto', 'cuda:0') is False
    assert resolve_channels_last(False, 'cpu') is False
    assert resolve_channels_last(True, 'cuda') is True
    with pytest.raises(ValueError, match="True, False or 'auto', got 'yes'"):
        resolve_channels_last('yes', 'cpu')
    config, ckpt = save_model(yolox_config(), str(tmp_path), 'yolox')
    default = init_detector(config, ckpt)  # on CPU: channels-last
    assert default._ai4rs_inference_mode['channels_last']
    assert default.backbone.stem.conv.conv.weight.is_contiguous(memory_format=torch.channels_last)
    contiguous = init_detector(config, ckpt, channels_last=False)
    assert not contiguous._ai4rs_inference_mode['channels_last']
    assert contiguous.backbone.stem.conv.conv.weight.is_contiguous()
    with pytest.raises(ValueError, match='channels_last'):
        init_detector(config, ckpt, channels_last='sometimes')


def _randomize_norms(module, seed=0):
    for i, m in enumerate(module.modules()):
        if isinstance(m, nn.BatchNorm2d):
            _random_bn(m, seed + i)


@pytest.mark.parametrize('kind', ['v2', 'rotated', 'rep'])
def test_contrast_norms_fold_into_the_class_branch_conv(kind):
    """YOLO-World's contrast-head BatchNorm (on the class branch's last conv output) folds into
    that conv: the head's outputs stay within float rounding, the norm becomes Identity."""
    from ai4rs.models.dense_heads.rep_yolo_world_head import RepYOLOWorldHeadModule
    from ai4rs.models.dense_heads.rotated_yolo_world_head import RotatedYOLOWorldHeadModule
    from ai4rs.models.dense_heads.yolo_world_head import YOLOWorldHeadModule
    from ai4rs.models.utils.inference_mode import fold_contrast_norms

    torch.manual_seed(0)
    common = dict(num_classes=3, in_channels=(8, 16, 32), embed_dims=12, use_bn_head=True)
    head = {
        'v2': lambda: YOLOWorldHeadModule(**common),
        'rotated': lambda: RotatedYOLOWorldHeadModule(**common),
        'rep': lambda: RepYOLOWorldHeadModule(**common, num_guide=3),
    }[kind]().eval()
    _randomize_norms(head)
    feats = [torch.randn(2, c, s, s) for c, s in ((8, 8), (16, 4), (32, 2))]
    texts = None if kind == 'rep' else torch.randn(2, 3, 12)
    with torch.no_grad():
        want = head(feats, texts)
        assert fold_contrast_norms(head) == 3
        assert fold_contrast_norms(head) == 0  # nothing left
        got = head(feats, texts)
    assert all(isinstance(c.norm, nn.Identity) for c in head.cls_contrasts)
    assert not any(k.startswith('cls_contrasts.') and '.norm.' in k for k in head.state_dict())
    for a, b in zip(want, got, strict=True):
        for x, y in zip(a, b, strict=True):
            torch.testing.assert_close(y, x, atol=1e-5, rtol=1e-5)


def test_contrast_norms_of_an_unknown_head_are_left_alone():
    """A head module subclass may route its class branch otherwise: only known flows fold."""
    from ai4rs.models.dense_heads.yolo_world_head import YOLOWorldHeadModule
    from ai4rs.models.utils.inference_mode import fold_contrast_norms

    class Other(YOLOWorldHeadModule):
        pass

    head = Other(num_classes=3, in_channels=(8, 16, 32), embed_dims=12, use_bn_head=True)
    assert fold_contrast_norms(head.eval()) == 0
    assert all(isinstance(c.norm, nn.BatchNorm2d) for c in head.cls_contrasts)
