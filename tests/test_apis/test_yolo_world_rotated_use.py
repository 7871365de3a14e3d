"""The open-vocabulary rotated model (``RotatedYOLOWorldHead``) through every user-facing
inference path: ``init_detector`` + ``inference_detector``, sliced inference, the demos, the
ONNX export and its runtime, and ``tools/test.py`` on generated DOTA-style data.

One tiny model per module: the quick-start config (quarter width) with the tiny CLIP, random
init, 128-px input, saved as a real (config, checkpoint) pair; its angle branch gets random
weights (its init is zero: every angle 0) so that boxes are oriented, and its boxes are about
2 strides wide (``save_model(box_bin=1)``). Expectations are independent of the code under
test: the model's own ``predict`` on the pipeline's network input mapped back by hand, the
same call with other texts, corner points of the drawn boxes.
"""

import importlib.util
import json
import os.path as osp
import sys

import cv2
import numpy as np
import pytest
import torch

from tests.conftest import REPO_ROOT, run_cmd

pytest.importorskip('transformers')

TEXTS = ['vehicle', 'pool', 'court']
SIZE = 128


def _load_script(*parts):
    path = osp.join(REPO_ROOT, *parts)
    spec = importlib.util.spec_from_file_location(parts[-1][:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def files(tiny_clip_dir, tmp_path_factory):
    from ai4rs.datasets.preparation.synthetic_dota import generate_dataset, write_class_texts
    from tests.yolo_world_infer_helpers import (
        calibrate_batchnorm,
        rotated_world_config,
        save_model,
    )

    tmp = tmp_path_factory.mktemp('rotated_world')
    data_root = tmp / 'data'
    generate_dataset(str(data_root), num_train=2, num_val=2, img_size=SIZE)
    write_class_texts(str(data_root))
    cfg = rotated_world_config(tiny_clip_dir, data_root, size=SIZE)
    config, ckpt = save_model(cfg, str(tmp), 'rotated_world', box_bin=1, angle_std=0.5)
    img = _write_blobs(tmp / 'scene.png', h=96, w=128)
    calibration = [_write_blobs(tmp / f'calib{i}.png', h=128, w=128, seed=10 + i) for i in range(2)]
    calibrate_batchnorm(config, ckpt, calibration, TEXTS)
    return dict(config=config, ckpt=ckpt, img=img, tmp=tmp, data_root=str(data_root))


@pytest.fixture(scope='module')
def model(files):
    from ai4rs.apis import init_detector

    return init_detector(files['config'], files['ckpt'])


@pytest.fixture(scope='module')
def reference(model, files):
    """inference_detector on the scene with TEXTS (computed once)."""
    from ai4rs.apis import inference_detector

    return inference_detector(model, files['img'], texts=TEXTS)


def _write_blobs(path, h: int, w: int, seed: int = 0) -> str:
    """A BGR image of smooth random colour blobs (a 1/16-scale random field, upsampled):
    every prior sees different content, so an untrained model's scores differ from prior to
    prior by far more than float rounding (a uniform texture gives near-ties, and NMS then
    keeps one box of a tie or the other by rounding)."""
    rng = np.random.default_rng(seed)
    field = rng.integers(0, 256, (h // 16 + 2, w // 16 + 2, 3)).astype(np.float32)
    img = cv2.resize(field, (w + 32, h + 32), interpolation=cv2.INTER_CUBIC)
    img = img[16 : 16 + h, 16 : 16 + w]
    if not cv2.imwrite(str(path), np.clip(img, 0, 255).astype(np.uint8)):
        raise OSError(f'could not write {path}')
    return str(path)


def _arrays(sample):
    pred = sample.pred_instances
    return pred.bboxes.tensor, pred.scores, pred.labels


def _by_text(sample, vocab):
    """{text: (n, 6) rows (cx, cy, w, h, t, score)} ordered by position (cx, then cy, in
    whole pixels: the boxes are centred on their priors, ``box_bin``, so on distinct points
    of the 4 + 8i, 8 + 16i, 16 + 32i grids, far from a rounding boundary): an order that
    does not depend on the label indexes or the score order."""
    boxes, scores, labels = _arrays(sample)
    rows = torch.cat([boxes, scores[:, None]], 1)
    out = {}
    for k, text in enumerate(vocab):
        mine = rows[labels == k]
        key = [(round(float(r[0])), round(float(r[1]))) for r in mine]
        out[text] = mine[sorted(range(len(mine)), key=key.__getitem__)]
    return out


def _assert_same_detections(got: dict, expected: dict, atol=0.0) -> None:
    """The same texts, and per text the same boxes and scores within ``atol`` (a float, or
    one per column: cx, cy, w, h, t, score)."""
    assert sorted(got) == sorted(expected)
    for text, rows in expected.items():
        assert got[text].shape == rows.shape, text
        diff = (got[text] - rows).abs()
        bound = torch.as_tensor(atol, dtype=rows.dtype).expand_as(rows)
        assert bool((diff <= bound).all()), f'{text}: max |diff| per column {diff.amax(0)}'


# ------------------------------------------------------------ inference_detector
def _direct(model, img, texts, scale):
    """The model's own ``predict`` (rescale=False) on the image's network input (the
    config's test pipeline, the data preprocessor), boxes divided by the resize ``scale``
    by hand (centre and size; the angle unchanged): {text: rows} as :func:`_by_text`."""
    from mmengine.dataset import Compose

    from ai4rs.structures import DetDataSample

    steps = model.cfg.test_dataloader.dataset.pipeline
    pipeline = Compose([t for t in steps if 'LoadAnnotations' not in t['type']])
    data = pipeline(dict(img_path=img, img_id=0, texts=[[t] for t in texts]))
    batch = model.data_preprocessor(
        dict(inputs=[data['inputs']], data_samples=[data['data_samples']]), False
    )
    with torch.no_grad():
        (raw,) = model.predict(batch['inputs'], batch['data_samples'], rescale=False)
    pred = raw.pred_instances
    pred.bboxes.tensor[:, :4] /= scale
    out = DetDataSample()
    out.pred_instances = pred
    return _by_text(out, texts), tuple(data['inputs'].shape[1:])


def test_inference_detector_gives_rotated_boxes_of_the_model(model, files, reference):
    """RotatedBoxes; path and array give identical results; the boxes are the model's own
    ``predict`` on an 80 x 160 image's network input (resized by 0.8 to 64 x 128) mapped
    back by hand, and some are visibly oriented."""
    from ai4rs.apis import inference_detector
    from ai4rs.structures.bbox import RotatedBoxes

    pred = reference.pred_instances
    assert isinstance(pred.bboxes, RotatedBoxes) and pred.bboxes.tensor.shape[1] == 5
    assert reference.texts == TEXTS
    assert len(pred) > 5 and len(set(pred.labels.tolist())) == 3
    by_array = inference_detector(model, cv2.imread(files['img']), texts=TEXTS)
    for a, b in zip(_arrays(reference), _arrays(by_array)):
        assert torch.equal(a, b)

    img = _write_blobs(files['tmp'] / 'wide.png', h=80, w=160, seed=1)
    result = inference_detector(model, img, texts=TEXTS)
    expected, input_shape = _direct(model, img, TEXTS, 0.8)
    assert input_shape == (64, 128)
    assert all(len(rows) > 3 for rows in expected.values())
    _assert_same_detections(_by_text(result, TEXTS), expected, 1e-4)
    angles = result.pred_instances.bboxes.tensor[:, 4]
    assert bool((angles.abs() > 0.05).any())  # oriented, not the zero init's 0


def test_texts_reordered_or_a_subset(model, files, reference):
    """Texts in another order: the same boxes and scores, each with the same text under
    its new label. A subset of the texts: the model's own detections with that vocabulary,
    labels indexing the subset. (Not the full vocabulary's detections of those texts: the
    v2 neck's text-guided attention takes a max over the vocabulary, so the image features
    change with it, as upstream.)"""
    from ai4rs.apis import inference_detector

    assert model.bbox_head.test_cfg.multi_label
    order = ['court', 'vehicle', 'pool']
    permuted = inference_detector(model, files['img'], texts=order)
    assert permuted.texts == order
    _assert_same_detections(_by_text(permuted, order), _by_text(reference, TEXTS))
    assert not torch.equal(permuted.pred_instances.labels, reference.pred_instances.labels)
    full = _by_text(reference, TEXTS)
    for subset in (['pool'], ['court', 'vehicle']):
        only = inference_detector(model, files['img'], texts=subset)
        assert only.texts == subset
        assert int(only.pred_instances.labels.max()) == len(subset) - 1
        expected, _ = _direct(model, files['img'], subset, 1.0)
        assert all(len(expected[t]) > 3 for t in subset)
        _assert_same_detections(_by_text(only, subset), expected, 1e-5)
        # the vocabulary reaches the neck: other features than with all three texts
        first = subset[0]
        assert full[first].shape != expected[first].shape or not torch.allclose(
            full[first], expected[first], atol=1e-3
        )


# ------------------------------------------------------------- sliced inference
def test_inference_by_patches(model, files, reference):
    """A 128 x 192 image in 128-px patches (two windows): RotatedBoxes in full-image
    pixels (centres beyond the first patch); one patch covering a 128 x 128 image whole
    gives inference_detector's detections."""
    from ai4rs.apis import inference_detector, inference_detector_by_patches
    from ai4rs.structures.bbox import RotatedBoxes
    from tests.yolo_world_infer_helpers import write_scene

    big = write_scene(files['tmp'] / 'big.png', h=128, w=192)
    result = inference_detector_by_patches(
        model, big, sizes=[128], steps=[64], texts=TEXTS, progress=False
    )
    assert isinstance(result.pred_instances.bboxes, RotatedBoxes)
    assert result.texts == TEXTS and result.ori_shape == (128, 192)
    assert bool((result.pred_instances.bboxes.tensor[:, 0] > 128).any())

    square = write_scene(files['tmp'] / 'square.png', h=128, w=128, seed=3)
    whole = inference_detector_by_patches(
        model, square, sizes=[128], steps=[128], texts=TEXTS, progress=False
    )
    direct = inference_detector(model, square, texts=TEXTS)
    assert len(direct.pred_instances) > 5
    _assert_same_detections(_by_text(whole, TEXTS), _by_text(direct, TEXTS))


# ------------------------------------------------------------------------ demos
def _outline(corners, shape):
    """(H, W) bool: the closed polygon ``corners`` (4, 2) drawn 3 px wide, without the
    image's outer 2 px."""
    mask = np.zeros(shape, np.uint8)
    cv2.polylines(mask, [np.round(corners).astype(np.int32)], True, 1, thickness=3)
    mask[:2], mask[-2:], mask[:, :2], mask[:, -2:] = 0, 0, 0, 0
    return mask.astype(bool)


def test_yolo_world_demo_writes_rotated_boxes(model, files, reference, tmp_path):
    """demo/yolo_world_demo.py: the JSON holds inference_detector's best detections as
    5-value rotated boxes with their texts; the drawing outlines the oriented box (the
    pixels along its sides change, those along the axis-aligned rectangle of the same
    centre and size do not)."""
    from ai4rs.structures.bbox import rbox_corners

    demo = _load_script('demo', 'yolo_world_demo.py')
    out = tmp_path / 'out'
    common = [files['img'], files['config'], files['ckpt'], '--texts', ','.join(TEXTS)]
    written = demo.main(common + ['--score-thr', '0.2', '--topk', '6', '--out-dir', str(out)])
    assert written == [str(out / 'scene.png')]
    dets = json.load(open(out / 'scene.json'))
    pred = reference.pred_instances
    pred = pred[pred.scores >= 0.2]
    best = pred[pred.scores.argsort(descending=True)[:6]]
    assert len(dets) == len(best) == 6
    for det, box, score, label in zip(dets, best.bboxes.tensor, best.scores, best.labels):
        assert len(det['bbox']) == 5
        assert det['bbox'] == pytest.approx(box.tolist(), abs=1e-3)
        assert det['score'] == pytest.approx(float(score), abs=1e-6)
        assert det['label'] == int(label) and det['text'] == TEXTS[int(label)]

    # the best box alone (turned by more than 0.3 rad in this model): the outline follows its
    # sides, not the axis-aligned rectangle's
    only = tmp_path / 'one'
    demo.main(common + ['--score-thr', '0.0', '--topk', '1', '--out-dir', str(only)])
    (pick,) = json.load(open(only / 'scene.json'))
    h, w = cv2.imread(files['img']).shape[:2]
    assert abs(pick['bbox'][4]) > 0.3 and min(pick['bbox'][2:4]) > 15
    corners = rbox_corners(torch.tensor([pick['bbox']]))[0].numpy()  # (4, 2)
    cx, cy, bw, bh, _ = pick['bbox']
    axis = np.array([[cx - bw / 2, cy - bh / 2], [cx + bw / 2, cy - bh / 2]])
    axis = np.concatenate([axis, axis[::-1] + [0, bh]])
    drawing, original = cv2.imread(str(only / 'scene.png')), cv2.imread(files['img'])
    changed = np.abs(drawing.astype(int) - original.astype(int)).sum(-1) > 60
    # the outlines as 3-px lines; the image's outer 2 px are left out (the renderer's edge)
    rot_line, axis_line = (_outline(c, (h, w)) for c in (corners, axis))
    axis_only = axis_line & ~rot_line
    assert rot_line.sum() > 100 and axis_only.sum() > 50
    assert (changed & rot_line).sum() / rot_line.sum() > 0.6
    assert (changed & axis_only).sum() / axis_only.sum() < 0.2


def test_huge_image_demo_with_texts(model, files, tmp_path, capsys):
    """demo/huge_image_demo.py --texts: sliced inference with the vocabulary, the drawing
    written at the image's size, the count of inference_detector_by_patches' detections
    above the threshold; without texts a one-line error that asks for them."""
    from ai4rs.apis import inference_detector_by_patches

    demo = _load_script('demo', 'huge_image_demo.py')
    big = _write_blobs(tmp_path / 'big.png', h=128, w=192, seed=4)
    out = str(tmp_path / 'drawn.png')
    patches = ['--patch-sizes', '128', '--patch-steps', '64']
    common = [big, files['config'], files['ckpt'], *patches, '--score-thr', '0.5']
    demo.main(common + ['--texts', ','.join(TEXTS), '--out-file', out])
    assert cv2.imread(out).shape == (128, 192, 3)
    ref = inference_detector_by_patches(
        model, big, sizes=[128], steps=[64], texts=TEXTS, progress=False
    )
    kept = int((ref.pred_instances.scores >= 0.5).sum())
    assert kept > 0
    assert (
        f'\n{kept} objects with score >= 0.5; drawing written to {out}' in capsys.readouterr().out
    )
    with pytest.raises(SystemExit, match='error: .*needs a vocabulary: pass texts'):
        demo.main(common + ['--out-file', out])


# ------------------------------------------------------------------------- ONNX
ONNX_ATOL = [0.0128] * 4 + [1e-3, 1e-4]  # cx, cy, w, h (1e-4 x 128 px), t (rad), score


def test_export_onnx_with_baked_texts(model, files, reference, tmp_path, capsys):
    """tools/deployment/export_onnx.py --texts: the vocabulary baked in, rotated boxes
    (5 values) decoded in the graph, no graph NMS (horizontal only: refused for this
    head's box type); ``init_detector(CONFIG, 'x.onnx')`` then gives PyTorch's detections
    (inference_detector with the texts), rotated NMS run after the graph: the same boxes,
    scores within 1e-4, box centres and sizes within 1e-4 of the 128-px input size and
    angles within 1e-3 rad (float32 rounding: this model's PyTorch float32 outputs differ
    from its float64 ones by about 4e-4 px and 5e-4 rad, onnxruntime's by as much)."""
    pytest.importorskip('onnx', reason='onnx is an optional extra (requirements/optional.txt)')
    pytest.importorskip('onnxruntime', reason='onnxruntime is an optional extra')
    from ai4rs.apis import inference_detector, init_detector
    from ai4rs.apis.deployment import OnnxDetector

    export = _load_script('tools', 'deployment', 'export_onnx.py')
    onnx_file = str(tmp_path / 'rotated_world.onnx')
    # the export size = the network input of the 96 x 128 image (resized by 1.0): the
    # graph sees exactly PyTorch's input
    args = [files['config'], files['ckpt'], '--texts', ','.join(TEXTS), '--img', files['img']]
    meta = export.main(args + ['--img-size', '96', '128', '--out', onnx_file])
    assert 'check passed' in capsys.readouterr().out
    assert meta == dict(box_type='rbox', img_size=[96, 128], with_nms=False, texts=TEXTS)

    onnx_model = init_detector(files['config'], onnx_file)
    assert isinstance(onnx_model, OnnxDetector) and onnx_model.vocabulary == TEXTS
    for texts in (None, TEXTS):  # the baked vocabulary, or the same texts given again
        got = inference_detector(onnx_model, files['img'], texts=texts)
        assert got.texts == TEXTS
        _assert_same_detections(_by_text(got, TEXTS), _by_text(reference, TEXTS), ONNX_ATOL)
    with pytest.raises(ValueError, match='baked in'):
        inference_detector(onnx_model, files['img'], texts=['pool'])

    # the exported file as the demo's CHECKPOINT: the JSON of the checkpoint's run
    demo = _load_script('demo', 'yolo_world_demo.py')
    jsons = []
    for name, ckpt in (('pth', files['ckpt']), ('onnx', onnx_file)):
        demo.main(
            [files['img'], files['config'], ckpt, '--texts', ','.join(TEXTS)]
            + ['--score-thr', '0.3', '--out-dir', str(tmp_path / name)]
        )
        jsons.append(json.load(open(tmp_path / name / 'scene.json')))
    assert len(jsons[0]) == len(jsons[1]) > 5
    for a, b in zip(
        *(
            sorted(j, key=lambda d: (d['text'], round(d['bbox'][0]), round(d['bbox'][1])))
            for j in jsons
        )
    ):
        assert a['text'] == b['text'] and len(b['bbox']) == 5
        assert b['score'] == pytest.approx(a['score'], abs=1e-4)
        assert b['bbox'][:4] == pytest.approx(a['bbox'][:4], abs=ONNX_ATOL[0])
        assert b['bbox'][4] == pytest.approx(a['bbox'][4], abs=ONNX_ATOL[4])

    with pytest.raises(SystemExit, match='no NMS operator for RotatedBoxes'):
        export.main(args + ['--with-nms', '--out', str(tmp_path / 'nms.onnx')])
    # the PyTorch model is unchanged by the export (it reparameterized its own copy)
    again = inference_detector(model, files['img'], texts=TEXTS)
    _assert_same_detections(_by_text(again, TEXTS), _by_text(reference, TEXTS))


# --------------------------------------------------------------------- test.py
def test_tools_test_on_generated_dota_data(model, files, tmp_path):
    """tools/test.py CONFIG CHECKPOINT on the 2 generated validation images (DOTAMetric):
    it prints dota/AP50, and its table counts per class the annotated objects (the
    annotation files read here) and the detections of inference_detector on each image
    with the class-text file's texts."""
    import glob
    import re

    from ai4rs.apis import inference_detector
    from ai4rs.datasets.preparation.synthetic_dota import CLASSES

    assert list(CLASSES) == TEXTS
    proc = run_cmd(
        [
            sys.executable,
            osp.join(REPO_ROOT, 'tools', 'test.py'),
            files['config'],
            files['ckpt'],
            '--work-dir',
            str(tmp_path / 'work'),
        ],
        cwd=tmp_path,
        timeout=300,
    )
    out = proc.stdout + proc.stderr
    ap50 = re.search(r'dota/AP50: (\d+\.\d+)', out)
    assert ap50 is not None, out[-3000:]
    assert 0.0 <= float(ap50.group(1)) <= 1.0
    rows = dict(
        (name, (int(gts), int(dets)))
        for name, gts, dets in re.findall(r'\| (\w+)\s*\| (\d+)\s*\| (\d+)\s*\|', out)
    )
    gts = dict.fromkeys(TEXTS, 0)
    dets = dict.fromkeys(TEXTS, 0)
    images = sorted(glob.glob(osp.join(files['data_root'], 'val', 'images', '*.png')))
    assert len(images) == 2
    for ann in glob.glob(osp.join(files['data_root'], 'val', 'annfiles', '*.txt')):
        for line in open(ann).read().split('\n'):
            parts = line.split()
            if len(parts) >= 10 and parts[9] == '0':  # not difficult
                gts[parts[8]] += 1
    for img in images:
        for label in inference_detector(model, img, texts=TEXTS).pred_instances.labels:
            dets[TEXTS[int(label)]] += 1
    assert rows == {t: (gts[t], dets[t]) for t in TEXTS}
    assert sum(gts.values()) > 0 and sum(dets.values()) > 0
