"""``init_detector(..., backend='onnxruntime')``: the loaded weights exported (dynamic batch,
run-time vocabulary) and run by onnxruntime behind the same APIs, for the three families.

The reference is the PyTorch model of the same checkpoint through the same API; both give
the same detections: labels equal, scores and boxes (original-image pixels) within 1e-4.
Real files: saved tiny checkpoints, written images, the .onnx file on disk.
"""

import os
import os.path as osp
import pickle
import warnings

import cv2
import numpy as np
import pytest
import torch

pytest.importorskip('onnx', reason='onnx is an optional extra (requirements/optional.txt)')
pytest.importorskip(
    'onnxruntime', reason='onnxruntime is an optional extra (requirements/optional.txt)'
)

TOL = 1e-4


def _same(got, want, min_dets=1, atol=TOL):
    """Same detections per image: as many, of the same box type, each matched (labels
    equal, scores and boxes within 1e-4; see :func:`_same_set`)."""
    got = got if isinstance(got, list) else [got]
    want = want if isinstance(want, list) else [want]
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert type(a.pred_instances.bboxes) is type(b.pred_instances.bboxes)
        _same_set(a, b, min_dets, atol)


def _same_set(got, want, min_dets=1, atol=TOL):
    """The same detections in any order (merged patches: boxes of two patches with scores
    within float rounding may come out in either order): each detection of ``got`` matched
    to its own one of ``want`` with the same label, score and box within 1e-4 (or ``atol``:
    one per column, box columns then the score)."""
    pa, pb = got.pred_instances, want.pred_instances
    assert len(pa) == len(pb) >= min_dets
    rows_a = torch.cat([pa.bboxes.tensor, pa.scores[:, None]], 1)
    rows_b = torch.cat([pb.bboxes.tensor, pb.scores[:, None]], 1)
    bound = torch.as_tensor(atol, dtype=rows_b.dtype).expand(rows_b.shape[1])
    free = torch.ones(len(pb), dtype=torch.bool)
    for row, label in zip(rows_a, pa.labels):
        close = ((rows_b - row).abs() <= bound).all(1) & (pb.labels == label) & free
        assert close.any(), f'no match for {row.tolist()} (label {int(label)})'
        free[torch.nonzero(close)[0, 0]] = False


def _blobs(path, h, w, seed):
    """Smooth random colour blobs (scores of an untrained model then follow the content,
    no near-ties for NMS to break by float rounding)."""
    rng = np.random.default_rng(seed)
    field = rng.integers(0, 256, (h // 16 + 2, w // 16 + 2, 3)).astype(np.float32)
    img = cv2.resize(field, (w + 32, h + 32), interpolation=cv2.INTER_CUBIC)
    img = img[16 : 16 + h, 16 : 16 + w]
    assert cv2.imwrite(str(path), np.clip(img, 0, 255).astype(np.uint8))
    return str(path)


def _write_model_detections_as_labels(model, split_dir) -> None:
    """Rewrite the DOTA label files of ``split_dir`` (``annfiles``, ``images``): each image's
    objects become ``model``'s 4 best detections (with the dataset's class texts) and two
    boxes it does not predict."""
    from ai4rs.apis import inference_detector
    from ai4rs.datasets.preparation.synthetic_dota import CLASSES
    from ai4rs.structures.bbox.geometry import rbox2qbox

    for img in sorted((split_dir / 'images').iterdir()):
        pred = inference_detector(model, str(img), texts=list(CLASSES)).pred_instances
        polys = rbox2qbox(pred.bboxes.tensor[:4]).tolist()
        names = [CLASSES[i] for i in pred.labels[:4].tolist()]
        polys += [[2, 2, 12, 2, 12, 12, 2, 12], [110, 110, 126, 110, 126, 126, 110, 126]]
        names += [CLASSES[0], CLASSES[1]]
        lines = ['imagesource:test', 'gsd:null']
        lines += [' '.join(f'{v:.2f}' for v in p) + f' {n} 0' for p, n in zip(polys, names)]
        (split_dir / 'annfiles' / (img.stem + '.txt')).write_text('\n'.join(lines) + '\n')


def _as_sample(dumped):
    """A dumped prediction (DumpDetResults' dict) as a data sample with rotated boxes."""
    from mmengine.structures import InstanceData

    from ai4rs.structures import DetDataSample
    from ai4rs.structures.bbox import RotatedBoxes

    pred = dumped['pred_instances']
    sample = DetDataSample()
    sample.pred_instances = InstanceData(
        bboxes=RotatedBoxes(pred['bboxes']), scores=pred['scores'], labels=pred['labels']
    )
    return sample


# ------------------------------------------------------------------ backend choice
def test_backend_choice_and_contradictions(tmp_path):
    from ai4rs.apis import init_detector
    from ai4rs.apis.deployment.backend import resolve_backend
    from tests.test_tools.test_export_onnx import _load_script
    from tests.yolo_world_infer_helpers import save_model, yolox_config

    assert resolve_backend('m.pth', None) == 'pytorch'
    assert resolve_backend(None, None) == 'pytorch'
    assert resolve_backend('m.onnx', None) == 'onnxruntime'
    assert resolve_backend('m.pth', 'onnxruntime') == 'onnxruntime'
    config, ckpt = save_model(yolox_config(), str(tmp_path), 'yolox')
    with pytest.raises(ValueError, match=r"backend='pytorch' cannot run .*m\.onnx"):
        init_detector(config, str(tmp_path / 'm.onnx'), backend='pytorch')
    with pytest.raises(ValueError, match=r"backend must be one of .*'tensorrt'"):
        init_detector(config, ckpt, backend='tensorrt')
    with pytest.raises(ValueError, match="onnx_file='x.onnx' is for backend='onnxruntime'"):
        init_detector(config, ckpt, onnx_file='x.onnx')
    with pytest.raises(ValueError, match=r"onnx_file='x\.onnx' is where a \.pth .* m\.onnx is"):
        init_detector(config, 'm.onnx', onnx_file='x.onnx')
    test_tool = _load_script('tools', 'test.py')
    with pytest.raises(SystemExit, match=r'--tta runs the PyTorch model: give the \.pth'):
        test_tool.main([config, 'm.onnx', '--tta'])


# ------------------------------------------------------------------ rotated YOLOX
@pytest.fixture(scope='module')
def yolox(tmp_path_factory):
    from tests.yolo_world_infer_helpers import save_model, yolox_config

    tmp = tmp_path_factory.mktemp('ort_yolox')
    config, ckpt = save_model(yolox_config(), str(tmp), 'yolox')
    imgs = [_blobs(tmp / f'img{i}.png', 64, 64, seed=i) for i in range(4)]
    return dict(tmp=tmp, config=config, ckpt=ckpt, imgs=imgs)


def test_rotated_yolox_onnxruntime_equals_pytorch(yolox, tmp_path):
    from ai4rs.apis import inference_detector, inference_detector_by_patches, init_detector
    from ai4rs.apis.deployment import OnnxDetector
    from ai4rs.structures.bbox import RotatedBoxes

    torch_model = init_detector(yolox['config'], yolox['ckpt'])
    before = set(os.listdir(yolox['tmp']))
    ort_model = init_detector(yolox['config'], yolox['ckpt'], backend='onnxruntime')
    assert isinstance(ort_model, OnnxDetector) and ort_model.box_type is RotatedBoxes
    # the temporary export is gone, nothing was written next to the checkpoint
    assert not osp.exists(ort_model.onnx_file)
    assert set(os.listdir(yolox['tmp'])) == before
    assert ort_model.meta['dynamic_batch'] is True
    assert list(ort_model.dataset_meta['classes']) == list(torch_model.dataset_meta['classes'])

    want = inference_detector(torch_model, yolox['imgs'])
    _same(inference_detector(ort_model, yolox['imgs']), want)
    # batch 4 in one onnxruntime run (dynamic batch) = one by one
    runs = []
    session_run = ort_model.session.run
    ort_model.session.run = lambda *a, **k: (
        runs.append(a[1]['images'].shape) or session_run(*a, **k)
    )
    _same(inference_detector(ort_model, yolox['imgs'], batch_size=4), want)
    assert runs == [(4, 3, 64, 64)]
    ort_model.session.run = session_run

    # an image of another aspect ratio: its 32 x 64 network input (the data preprocessor
    # pads to a multiple of 32 only) is padded to 64 x 64, which PyTorch does not do: said
    # once per input size
    wide = _blobs(tmp_path / 'wide.png', 32, 64, seed=5)
    with pytest.warns(UserWarning, match=r'input is 32x64, padded to the export size 64x64'):
        inference_detector(ort_model, wide)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        inference_detector(ort_model, [wide, *yolox['imgs']])

    # sliced inference: patches of 64 px of a 96 x 128 image, batches of 3
    big = _blobs(tmp_path / 'big.png', 96, 128, seed=9)
    kwargs = dict(sizes=(64,), steps=(32,), batch_size=3, progress=False)
    _same_set(
        inference_detector_by_patches(ort_model, big, **kwargs),
        inference_detector_by_patches(torch_model, big, **kwargs),
    )

    # an explicit onnx_file is kept and is itself a checkpoint for init_detector
    kept = str(tmp_path / 'kept.onnx')
    init_detector(yolox['config'], yolox['ckpt'], backend='onnxruntime', onnx_file=kept)
    assert osp.isfile(kept)
    _same(inference_detector(init_detector(yolox['config'], kept), yolox['imgs'][:2]), want[:2])

    # scene inference (tiles of 64 px, 16 px overlap) of the same image file
    pytest.importorskip('rasterio', reason='scene inference needs the geo extra')
    from ai4rs.apis.scene_inference import inference_scene

    scene_kwargs = dict(patch_size=64, overlap=16, progress=False)
    _same_set(
        inference_scene(ort_model, big, **scene_kwargs),
        inference_scene(torch_model, big, **scene_kwargs),
    )


# ------------------------------------------------------------------ YOLO-World v2
def test_yolo_world_onnxruntime_with_run_time_texts(tiny_clip_dir, tmp_path):
    from ai4rs.apis import inference_detector, init_detector
    from tests.yolo_world_infer_helpers import save_model, world_config

    config, ckpt = save_model(world_config(tiny_clip_dir), str(tmp_path), 'world', box_bin=2)
    imgs = [_blobs(tmp_path / f'img{i}.png', 48, 64, seed=20 + i) for i in range(3)]
    torch_model = init_detector(config, ckpt)
    ort_model = init_detector(config, ckpt, backend='onnxruntime')
    assert ort_model.text_input and ort_model.meta['text_dim'] == 512
    for vocab in (['cat', 'dog'], ['person', 'car', 'tree', 'cat', 'boat']):
        want = inference_detector(torch_model, imgs, texts=vocab)
        with warnings.catch_warnings():  # letterboxed: exactly the export size, no padding
            warnings.simplefilter('error', UserWarning)
            got = inference_detector(ort_model, imgs, texts=vocab, batch_size=3)
        _same(got, want, min_dets=3)
        assert int(max(s.pred_instances.labels.max() for s in got)) < len(vocab)


# ------------------------------------------------------------------ rotated YOLO-World
@pytest.fixture(scope='module')
def rotated_world(tiny_clip_dir, tmp_path_factory):
    from ai4rs.datasets.preparation.synthetic_dota import generate_dataset, write_class_texts
    from tests.yolo_world_infer_helpers import (
        calibrate_batchnorm,
        rotated_world_config,
        save_model,
    )

    tmp = tmp_path_factory.mktemp('ort_rotated_world')
    data_root = tmp / 'data'
    generate_dataset(str(data_root), num_train=1, num_val=2, img_size=128)
    write_class_texts(str(data_root))
    cfg = rotated_world_config(tiny_clip_dir, data_root, size=128)
    config, ckpt = save_model(cfg, str(tmp), 'rw', box_bin=1, angle_std=0.5, logit_scale=-2.0)
    calib = [_blobs(tmp / f'calib{i}.png', 128, 128, seed=10 + i) for i in range(2)]
    calibrate_batchnorm(config, ckpt, calib, ['vehicle', 'pool', 'court'])
    return dict(tmp=tmp, config=config, ckpt=ckpt)


#: this tiny calibrated model's float32 rounding is large (its angles, widths and heights
#: amplify it): its own PyTorch outputs, fused (inference mode) vs eager, differ by 7e-3 px,
#: 1.4e-3 rad; onnxruntime vs PyTorch is held to cx, cy, w, h within 0.02 px (1.5e-4 of
#: the 128 px input), angles within 3e-3 rad, scores within 1e-4
RW_ATOL = [0.02] * 4 + [3e-3, TOL]


def test_rotated_yolo_world_onnxruntime_and_tools_test(rotated_world, tmp_path):
    """The API (run-time texts, batch 2) and tools/test.py CONFIG model.onnx: the same
    predictions (dumped with --out) and the same metric as tools/test.py CONFIG model.pth.
    Square images: the network input is then the export size (see docs/deployment.md:
    a keep-ratio resize of another aspect ratio is padded to the export size)."""
    from ai4rs.apis import inference_detector, init_detector
    from ai4rs.structures.bbox import RotatedBoxes
    from tests.test_tools.test_export_onnx import _load_script

    rw = rotated_world
    onnx_file = str(tmp_path / 'rw.onnx')
    ort_model = init_detector(rw['config'], rw['ckpt'], backend='onnxruntime', onnx_file=onnx_file)
    torch_model = init_detector(rw['config'], rw['ckpt'])
    assert ort_model.box_type is RotatedBoxes and ort_model.text_input
    imgs = [_blobs(tmp_path / f'img{i}.png', 128, 128, seed=30 + i) for i in range(2)]
    for vocab in (['vehicle', 'pool'], ['court', 'vehicle', 'ship']):
        _same(
            inference_detector(ort_model, imgs, texts=vocab, batch_size=2),
            inference_detector(torch_model, imgs, texts=vocab),
            min_dets=2,
            atol=RW_ATOL,
        )

    # ground truth the untrained model partly finds (else every AP is 0 and equal metrics say
    # nothing): per validation image, PyTorch's 4 best detections and 2 made-up boxes
    _write_model_detections_as_labels(torch_model, rw['tmp'] / 'data' / 'val')

    test_tool = _load_script('tools', 'test.py')
    results = {}
    for name, model_file in (('pth', rw['ckpt']), ('onnx', onnx_file)):
        out = str(tmp_path / f'{name}.pkl')
        metrics = test_tool.main(
            [rw['config'], model_file, '--work-dir', str(tmp_path / name), '--out', out]
        )
        with open(out, 'rb') as f:
            results[name] = (metrics, pickle.load(f))
    (m_pth, d_pth), (m_onnx, d_onnx) = results['pth'], results['onnx']
    assert len(d_pth) == len(d_onnx) == 2
    for a, b in zip(d_pth, d_onnx):
        assert a['img_path'] == b['img_path']
        _same_set(_as_sample(b), _as_sample(a), min_dets=1, atol=RW_ATOL)
    assert m_pth.keys() == m_onnx.keys() and 0.1 < m_pth['dota/AP50'] < 1.0
    for key in m_pth:
        assert m_onnx[key] == pytest.approx(m_pth[key], abs=1e-6), key


# ------------------------------------------------------------------ bad input
def test_onnx_file_of_another_config_is_refused_naming_both(yolox, tiny_clip_dir, tmp_path, capsys):
    from ai4rs.apis import init_detector
    from ai4rs.utils.checkpoint import CheckpointMismatchError
    from tests.yolo_world_infer_helpers import world_config, yolox_config

    onnx_file = str(tmp_path / 'yolox.onnx')
    init_detector(yolox['config'], yolox['ckpt'], backend='onnxruntime', onnx_file=onnx_file)

    fewer = yolox_config()
    fewer.model.bbox_head.num_classes = 3
    with pytest.raises(
        CheckpointMismatchError, match=r'yolox\.onnx scores 15 classes .*num_classes=3'
    ):
        init_detector(fewer, onnx_file)
    with pytest.raises(
        CheckpointMismatchError,
        match=r'yolox\.onnx was exported for 64x64 inputs .* resizes to at most 32x32',
    ):
        init_detector(yolox_config(size=32), onnx_file)
    with pytest.raises(
        CheckpointMismatchError,
        match=r'yolox\.onnx outputs RotatedBoxes .* predicts HorizontalBoxes',
    ):
        init_detector(world_config(tiny_clip_dir), onnx_file)

    # tools/test.py: the same refusal, one error line and status 1 before the test loop
    from tests.test_tools.test_export_onnx import _load_script

    test_tool = _load_script('tools', 'test.py')
    cfg_file = str(tmp_path / 'fewer.py')
    fewer.test_dataloader.dataset.data_root = str(tmp_path)
    fewer.test_cfg = dict(type='TestLoop')
    fewer.test_evaluator = dict(type='DOTAMetric', metric='mAP')
    fewer.dump(cfg_file)
    with pytest.raises(SystemExit) as exit_info:
        test_tool.main([cfg_file, onnx_file, '--work-dir', str(tmp_path / 'work')])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert 'error: ' in err and 'scores 15 classes' in err and 'num_classes=3' in err


def test_a_file_that_is_not_onnx_is_refused(yolox, tmp_path):
    from ai4rs.apis import init_detector
    from ai4rs.utils.checkpoint import NotACheckpointError

    fake = tmp_path / 'model.onnx'
    fake.write_bytes(b'this is a text file, not a protobuf\n' * 4)
    with pytest.raises(NotACheckpointError, match=r'model\.onnx is not an ONNX model'):
        init_detector(yolox['config'], str(fake))
    with pytest.raises(FileNotFoundError, match=r'missing\.onnx does not exist'):
        init_detector(yolox['config'], str(tmp_path / 'missing.onnx'))


def test_onnxruntime_missing_names_the_extra(yolox, monkeypatch, tmp_path):
    import sys

    from ai4rs.apis import init_detector

    monkeypatch.setitem(sys.modules, 'onnxruntime', None)  # import onnxruntime fails
    for checkpoint in (yolox['ckpt'], str(tmp_path / 'm.onnx')):
        with pytest.raises(ImportError, match=r"pip install 'ai4rs\[optional\]'"):
            init_detector(yolox['config'], checkpoint, backend='onnxruntime')
    # nothing was exported before the refusal
    assert not list(tmp_path.iterdir())


def test_benchmark_tool_times_both_backends(yolox, capsys):
    """tools/analysis_tools/benchmark_onnxruntime.py: one row per size and batch size, the
    ratio the quotient of the two speeds, the table printed."""
    from tests.test_tools.test_export_onnx import _load_script

    bench = _load_script('tools', 'analysis_tools', 'benchmark_onnxruntime.py')
    rows = bench.main(
        [yolox['config'], '--sizes', '32', '64', '--batch-sizes', '1', '2', '--rounds', '1']
        + ['--num-images', '2']
    )
    assert [(r['size'], r['batch']) for r in rows] == [(32, 1), (32, 2), (64, 1), (64, 2)]
    for row in rows:
        assert row['pytorch'] > 0 and row['onnxruntime'] > 0
        assert row['ratio'] == pytest.approx(row['onnxruntime'] / row['pytorch'])
    out = capsys.readouterr().out
    assert '| input | batch | PyTorch img/s | onnxruntime img/s | onnxruntime / PyTorch |' in out
    assert out.count('\n| 64 | ') == 2
