"""bfloat16 inference (``init_detector(bf16=...)``, ``tools/test.py --bf16``): the network runs
in bfloat16, decoding and post-processing in float32, predictions are float32 and their top
detections match float32 ones, for each detector family (rotated YOLOX, YOLO-World v2 with
texts, rotated YOLO-World); an unsupported device is a clear error for ``bf16=True`` and a
logged float32 fallback for ``'auto'``."""

import logging
import re

import pytest
import torch
from mmengine.structures import InstanceData

import ai4rs.models.utils.inference_mode as im
from tests.test_models.test_inference_mode import (  # noqa: F401
    TEXTS,
    _load_test_tool,
    _raw_outputs,
    rotated_world,
    run_test_tool_variants,
)

# bfloat16 keeps 8 significant bits: each rounding is within 2^-9 (0.2 %) of the value. The
# raw maps of these tiny models in bfloat16 differ from float32 by about 1 % of their scale
# (measured: 0.3 % to 1.2 % over the three families), so a box side or offset of a few
# strides moves by well under a pixel of the 64 / 128 px inputs and a score by under 0.01.
# The tolerances below are 2x to 3x that: 2 % of the image for boxes, 0.1 rad for angles,
# 0.03 for scores. The calibrated rotated YOLO-World of ``rotated_world`` is the exception: its
# BatchNorms, calibrated on two images, have near-zero variances in some channels, and the
# folded convs amplify rounding (measured: 3 % relative error after the backbone's stage 1,
# 16-26 % after the neck), most in the angle branch (random N(0, 0.5^2) weights, raw angles up
# to 24 rad; raw maps 20-50 % off with or without the fused conv + activation kernels), so
# only the test tool's metric is compared on it, and the rotated YOLO-World inference test
# uses an uncalibrated copy (test_rotated_yolo_world_bf16). Detections
# compared: the float32 model's best one and the other top ones whose scores lead the next by
# more than the score tolerance (a near-tie may swap in NMS in either precision; these
# untrained models' best scores are near-ties, e.g. 0.2595 / 0.2594, the best one's box here
# survives NMS in both precisions: deterministic on one CPU, an assumption on another).
BOX_TOL, ANGLE_TOL, SCORE_TOL, TOP_K = 0.02, 0.1, 0.03, 5

pytestmark = pytest.mark.skipif(
    not im.bf16_supported('cpu'), reason='this CPU has no native bfloat16'
)


def _conv_dtypes(model) -> set:
    """Record the input dtypes every nn.Conv2d sees during the next forward."""
    seen = set()
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(lambda mod, args, out: seen.add(args[0].dtype))
    return seen


def _assert_top_detections_match(p16, p32, img_size, angle_tol=ANGLE_TOL):
    box32, box16 = p32.bboxes.tensor, p16.bboxes.tensor
    assert box16.dtype == p16.scores.dtype == torch.float32
    order = p32.scores.argsort(descending=True)
    scores = p32.scores[order]
    # the top detections whose score leads the next one by more than the tolerance
    k = min(TOP_K, len(order))
    gaps = scores[:k] - torch.cat([scores[1 : k + 1], scores.new_zeros(1)])[:k]
    top = [int(order[i]) for i in range(k) if gaps[i] > SCORE_TOL or i == 0]
    tol = torch.full((box32.shape[1],), BOX_TOL * img_size)
    if box32.shape[1] == 5:
        tol[4] = angle_tol
    for i in top:
        close = ((box16 - box32[i]).abs() <= tol).all(1)
        close &= (p16.scores - p32.scores[i]).abs() <= SCORE_TOL
        close &= p16.labels == p32.labels[i]
        assert close.any(), (
            box32[i].tolist(),
            p32.scores[i],
            p32.labels[i],
            box16[:3].tolist(),
            p16.scores[:3].tolist(),
        )


def _check_family(config, ckpt, img, texts, img_size, angle_tol=ANGLE_TOL):
    from ai4rs.apis import inference_detector, init_detector

    f32 = init_detector(config, ckpt)
    b16 = init_detector(config, ckpt, bf16=True)
    assert im.is_bf16(b16) and not im.is_bf16(f32)
    assert b16._ai4rs_inference_mode['channels_last']
    seen = _conv_dtypes(b16)
    p16 = inference_detector(b16, img, texts=texts).pred_instances
    p32 = inference_detector(f32, img, texts=texts).pred_instances
    assert seen == {torch.bfloat16}  # every conv ran in bfloat16
    raw = _raw_outputs(b16, img, texts)  # model(..., mode='tensor'): the head's raw maps
    assert raw and all(t.dtype == torch.float32 for t in raw)
    assert len(p32) > 0 and len(p16) > 0
    _assert_top_detections_match(p16, p32, img_size, angle_tol)
    return b16


def test_rotated_yolox_bf16(tmp_path):
    from tests.yolo_world_infer_helpers import save_model, write_scene, yolox_config

    config, ckpt = save_model(yolox_config(), str(tmp_path), 'yolox')
    model = _check_family(config, ckpt, write_scene(tmp_path / 'scene.png'), None, 128)
    assert next(model.bbox_head.parameters()).dtype == torch.bfloat16


def test_yolo_world_bf16_text_model_stays_float32(tiny_clip_dir, tmp_path):
    pytest.importorskip('transformers')
    from tests.yolo_world_infer_helpers import save_model, world_config, write_scene

    config, ckpt = save_model(
        world_config(tiny_clip_dir), str(tmp_path), 'world', box_bin=1, logit_scale=2.0
    )
    model = _check_family(config, ckpt, write_scene(tmp_path / 'scene.png'), TEXTS, 128)
    assert next(model.backbone.text_model.parameters()).dtype == torch.float32
    assert next(model.backbone.image_model.parameters()).dtype == torch.bfloat16
    assert next(model.bbox_head.head_module.parameters()).dtype == torch.bfloat16


def test_rotated_yolo_world_bf16(tiny_clip_dir, tmp_path):
    """Rotated YOLO-World: every conv in bfloat16, raw maps float32 and within 3 % of their
    scale of the float32 model's (measured: 0.2-1.0 %), float32 predictions. Its BatchNorms
    keep their initial statistics: the calibrated model of ``rotated_world`` amplifies
    rounding by its near-zero variances (the module comment; its raw maps move by 20-50 % in
    either kernel path, so matching its detections was luck), and this one's scores are
    near-ties everywhere (NMS then keeps other boxes of a cluster in either precision), so
    the maps are compared instead of the detections."""
    pytest.importorskip('transformers')
    from ai4rs.apis import inference_detector, init_detector
    from tests.test_apis.test_yolo_world_rotated_use import _write_blobs
    from tests.test_models.test_inference_mode import save_rotated_world

    config, ckpt = save_rotated_world(tiny_clip_dir, tmp_path)
    img = _write_blobs(tmp_path / 'scene.png', 96, 128)
    f32 = init_detector(config, ckpt)
    b16 = init_detector(config, ckpt, bf16=True)
    assert im.is_bf16(b16) and b16._ai4rs_inference_mode['channels_last']
    seen = _conv_dtypes(b16)
    raw16 = _raw_outputs(b16, img, TEXTS)
    assert seen == {torch.bfloat16}  # every conv ran in bfloat16
    raw32 = _raw_outputs(f32, img, TEXTS)
    assert len(raw16) == len(raw32) == 9  # cls, bbox, angle maps of three levels
    for a, b in zip(raw32, raw16, strict=True):
        assert b.dtype == torch.float32 and b.shape == a.shape
        assert (b - a).abs().max() <= 0.03 * a.abs().max()
    pred = inference_detector(b16, img, texts=TEXTS).pred_instances
    assert len(pred) > 0
    assert pred.bboxes.tensor.dtype == pred.scores.dtype == torch.float32
    assert pred.bboxes.tensor.shape[1] == 5


def test_decode_and_post_processing_run_in_float32(tmp_path):
    """A planted bfloat16 head output whose box centre is at x = 1000.30078125 px (prior 125 of
    stride 8 plus an offset of 0.03759765625 strides, both exact in bfloat16): the prediction
    keeps it within float32 precision, where a bfloat16 decode (spacing 4 px at 1000) would
    give 1000 or 1004."""
    import numpy as np

    from ai4rs.apis import inference_detector, init_detector
    from tests.yolo_world_infer_helpers import save_model, yolox_config

    config, ckpt = save_model(yolox_config(size=1024), str(tmp_path), 'yolox')
    model = init_detector(config, ckpt, bf16=True)
    row, col, stride = 60, 125, 8
    offsets = torch.tensor([0.0375, 0.3, 0.7, 0.2]).bfloat16()  # dx, dy, log w, log h

    def plant(module, args, outputs):
        cls, bbox, angle, obj = outputs
        assert cls[0].dtype == torch.bfloat16  # the network's own outputs
        for maps, fill in ((cls, -30.0), (obj, -30.0), (angle, 0.0)):
            for m in maps:
                m.fill_(fill)
        cls[0][0, 0, row, col] = obj[0][0, 0, row, col] = 10.0
        bbox[0][0, :, row, col] = offsets
        return outputs

    model.bbox_head.register_forward_hook(plant, prepend=True)  # before the float32 cast
    img = np.full((1024, 1024, 3), 114, np.uint8)
    pred = inference_detector(model, img).pred_instances
    assert len(pred) == 1 and pred.bboxes.tensor.dtype == torch.float32
    d = offsets.double()
    expected = torch.tensor(
        [col * stride + d[0] * stride, row * stride + d[1] * stride]
        + [d[2].exp() * stride, d[3].exp() * stride]
    )
    assert expected[0].item() == pytest.approx(1000.30078125)
    got = pred.bboxes.tensor[0, :4].double()
    assert (got - expected).abs().max() < 1e-3  # float32 spacing at 1000: 6e-5


def test_unsupported_device_bf16_is_an_error_and_auto_falls_back(tmp_path, monkeypatch, caplog):
    from ai4rs.apis import init_detector
    from tests.yolo_world_infer_helpers import save_model, yolox_config

    config, ckpt = save_model(yolox_config(), str(tmp_path), 'yolox')
    monkeypatch.setattr(torch.ops.mkldnn, '_is_mkldnn_bf16_supported', lambda: False)
    assert not im.bf16_supported('cpu')
    with pytest.raises(ValueError, match="device 'cpu' has no native bfloat16"):
        init_detector(config, ckpt, bf16=True)
    with caplog.at_level(logging.WARNING, logger='ai4rs'):
        model = init_detector(config, ckpt, bf16='auto')
    assert not im.is_bf16(model)
    assert next(model.parameters()).dtype == torch.float32
    assert "bf16=auto: device 'cpu' has no native bfloat16; running in float32" in caplog.text
    with pytest.raises(ValueError, match="bf16 must be True, False, 'on', 'off' or 'auto'"):
        init_detector(config, ckpt, bf16='yes')
    tool = _load_test_tool()
    with pytest.raises(SystemExit, match="--bf16: bfloat16 inference asked for, but device 'cpu'"):
        tool.main([config, ckpt, '--bf16'])


def test_auto_is_bf16_where_supported(tmp_path):
    from ai4rs.apis import init_detector
    from tests.yolo_world_infer_helpers import save_model, yolox_config

    config, ckpt = save_model(yolox_config(), str(tmp_path), 'yolox')
    assert im.is_bf16(init_detector(config, ckpt, bf16='auto'))
    assert not im.is_bf16(init_detector(config, ckpt))


def test_test_tool_bf16_metric_close_to_float32(rotated_world, monkeypatch):  # noqa: F811
    calls, preds, metrics = run_test_tool_variants(
        rotated_world, monkeypatch, (('f32', []), ('bf16', ['--bf16']))
    )
    assert calls == [dict(fuse=True, channels_last=True)] + [
        dict(fuse=True, channels_last=True, bf16=True)
    ]
    assert set(metrics['f32']) == set(metrics['bf16'])
    for key, value in metrics['f32'].items():
        # an untrained model's mAP over 2 images: bf16's moved boxes may change a match
        assert metrics['bf16'][key] == pytest.approx(value, abs=0.05), key
    # detections: float32; their matching is the inference tests' (the dataset images give
    # this untrained model saturated scores, many tied at 1.0, so NMS keeps other boxes of a
    # cluster in either precision)
    total = 0
    for p in preds['bf16']:
        pred = InstanceData(**p['pred_instances'])
        assert pred.bboxes.dtype == pred.scores.dtype == torch.float32
        total += len(pred)
    assert total > 0


def _load_script(name):
    import importlib.util
    import os.path as osp

    from tests.conftest import REPO_ROOT

    spec = importlib.util.spec_from_file_location(name, osp.join(REPO_ROOT, 'demo', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    'demo,extra',
    [('image_demo', []), ('huge_image_demo', ['--patch-sizes', '64', '--patch-steps', '48'])],
)
def test_image_demos_bf16_flag(tmp_path, monkeypatch, capsys, demo, extra):
    import ai4rs.apis.inference as inference
    from tests.yolo_world_infer_helpers import save_model, write_scene, yolox_config

    config, ckpt = save_model(yolox_config(), str(tmp_path), 'yolox')
    img = write_scene(tmp_path / 'scene.png')
    script = _load_script(demo)
    calls = []
    real = inference.to_inference_mode
    monkeypatch.setattr(
        inference, 'to_inference_mode', lambda m, **kw: calls.append(kw['bf16']) or real(m, **kw)
    )
    argv = [img, config, ckpt, '--score-thr', '0.0', '--out-file', str(tmp_path / 'out.png')]
    argv += extra
    for flag in ([], ['--bf16'], ['--bf16', 'auto']):
        script.main(argv + flag)
        found = re.search(r'^(\d+) objects with score', capsys.readouterr().out, re.M)
        assert found and int(found.group(1)) > 0
    assert calls == [False, True, True]
    monkeypatch.setattr(torch.ops.mkldnn, '_is_mkldnn_bf16_supported', lambda: False)
    with pytest.raises(SystemExit, match="error: bfloat16 inference asked for, but device 'cpu'"):
        script.main(argv + ['--bf16'])
    script.main(argv + ['--bf16', 'auto'])  # float32
    assert calls[-1] is False


def test_yolo_world_demo_bf16_flag(tiny_clip_dir, tmp_path, monkeypatch, capsys):
    pytest.importorskip('transformers')
    import ai4rs.apis.inference as inference
    from tests.yolo_world_infer_helpers import save_model, world_config, write_scene

    config, ckpt = save_model(
        world_config(tiny_clip_dir), str(tmp_path), 'world', box_bin=1, logit_scale=2.0
    )
    img = write_scene(tmp_path / 'scene.png')
    script = _load_script('yolo_world_demo')
    models = []
    real = inference.to_inference_mode
    monkeypatch.setattr(
        inference, 'to_inference_mode', lambda m, **kw: models.append(real(m, **kw)) or m
    )
    argv = [img, config, ckpt, '--texts', ','.join(TEXTS), '--out-dir', str(tmp_path / 'out')]
    assert script.cli(argv + ['--bf16']) == 0
    assert im.is_bf16(models[-1])
    monkeypatch.setattr(torch.ops.mkldnn, '_is_mkldnn_bf16_supported', lambda: False)
    assert script.cli(argv + ['--bf16']) == 1
    assert "error: bfloat16 inference asked for, but device 'cpu'" in capsys.readouterr().err
    gradio_args = _load_script('gradio_demo').parse_args([config, ckpt, '--bf16', 'auto'])
    assert gradio_args.bf16 == 'auto'


def test_bf16_parts_of_a_wrapper_and_an_unknown_model(tmp_path):
    """A test-time-augmentation wrapper (``module`` = the detector) converts its detector's
    parts; a module with no detector parts is a clear error, not a silent whole-model cast."""
    from ai4rs.apis import init_detector
    from tests.yolo_world_infer_helpers import save_model, yolox_config

    config, ckpt = save_model(yolox_config(), str(tmp_path), 'yolox')
    detector = init_detector(config, ckpt)
    wrapper = torch.nn.Module()
    wrapper.module = detector
    parts, head = im.bf16_network_parts(wrapper)
    assert parts == [detector.backbone, detector.neck, detector.bbox_head]
    assert head is detector.bbox_head
    with pytest.raises(ValueError, match='bf16: Linear has no backbone, neck or bbox_head'):
        im.to_inference_mode(torch.nn.Linear(2, 2), bf16=True)
