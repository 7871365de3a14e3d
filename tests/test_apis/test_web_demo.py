"""The web demo's logic without a browser (ai4rs/apis/web_demo.py, demo/gradio_demo.py):
uploads decoded as images only and refused otherwise, texts parsed, table rows against
hand-written boxes, the drawing, and the page handler on a tiny rotated YOLOX against
``inference_detector`` on the same image."""

import importlib.util
import os.path as osp
import sys

import cv2
import numpy as np
import pytest
import torch
from mmengine.structures import InstanceData

from ai4rs.apis.web_demo import (
    RBOX_HEADERS,
    UploadError,
    WebDemo,
    decode_image,
    detection_rows,
    draw_detections,
    example_image,
    import_gradio,
    kept_instances,
    parse_texts,
)
from ai4rs.structures.bbox import HorizontalBoxes, RotatedBoxes
from tests.conftest import REPO_ROOT


def _png_bytes(img) -> bytes:
    ok, buf = cv2.imencode('.png', img)
    assert ok
    return buf.tobytes()


def test_decode_image_reads_what_opencv_reads(tmp_path):
    rng = np.random.default_rng(0)
    img = (rng.random((20, 30, 3)) * 255).astype(np.uint8)
    path = str(tmp_path / 'a.png')
    assert cv2.imwrite(path, img)
    data = open(path, 'rb').read()
    out = decode_image(data, max_bytes=len(data))
    assert out.dtype == np.uint8 and out.shape == (20, 30, 3)
    assert np.array_equal(out, cv2.imread(path))
    # a grey JPEG comes back as 3 channels, as cv2.imread gives it
    jpg = str(tmp_path / 'g.jpg')
    assert cv2.imwrite(jpg, img[..., 0])
    assert np.array_equal(decode_image(open(jpg, 'rb').read(), 10**6), cv2.imread(jpg))


def test_decode_image_refusals():
    img = np.full((10, 12, 3), 200, np.uint8)
    data = _png_bytes(img)
    with pytest.raises(UploadError, match='more than the limit of'):
        decode_image(data, max_bytes=len(data) - 1)
    with pytest.raises(UploadError, match=r"not an image .*b'hello, n'"):
        decode_image(b'hello, not an image', max_bytes=1000)
    with pytest.raises(UploadError, match='is empty'):
        decode_image(b'', max_bytes=1000)
    with pytest.raises(UploadError, match='expected the bytes'):
        decode_image('/etc/passwd', max_bytes=1000)  # a path is never opened
    # the header's size is checked before decoding
    with pytest.raises(UploadError, match='12x10 PNG image: more than the limit of 100 pixels'):
        decode_image(data, max_bytes=1000, max_pixels=100)
    # a truncated file: PIL reads its header, OpenCV cannot decode it
    big = (np.random.default_rng(1).random((64, 64, 3)) * 255).astype(np.uint8)
    truncated = _png_bytes(big)[:200]
    with pytest.raises(UploadError, match='could not be decoded'):
        decode_image(truncated, max_bytes=10**6)


def test_parse_texts():
    assert parse_texts(' car, ,ship ,plane,') == ['car', 'ship', 'plane']
    with pytest.raises(ValueError, match='at least one'):
        parse_texts(' , ')


def _instances(boxes, scores, labels):
    return InstanceData(bboxes=boxes, scores=torch.tensor(scores), labels=torch.tensor(labels))


def test_kept_instances_and_rows_horizontal():
    inst = _instances(
        HorizontalBoxes(torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.125, 6.0, 7.0, 8.0], [0, 0, 1, 1]])),
        [0.2, 0.9, 0.5],
        [1, 0, 7],
    )
    kept = kept_instances(InstanceData(pred_instances=inst), score_thr=0.3, max_dets=5)
    # score >= 0.3, best first; label 7 has no name
    assert detection_rows(kept, ['car', 'ship']) == [
        ['car', 0.9, 5.12, 6.0, 7.0, 8.0],
        ['7', 0.5, 0.0, 0.0, 1.0, 1.0],
    ]
    assert len(kept_instances(InstanceData(pred_instances=inst), 0.0, 1)) == 1


def test_rows_rotated():
    inst = _instances(RotatedBoxes(torch.tensor([[10.0, 20.0, 6.0, 3.0, 0.523599]])), [0.75], [1])
    rows = detection_rows(inst, ['car', 'ship'])
    assert rows == [['ship', 0.75, 10.0, 20.0, 6.0, 3.0, 0.5236]]
    assert len(rows[0]) == len(RBOX_HEADERS)


def test_draw_detections_draws_in_the_boxes():
    img = np.full((60, 80, 3), 128, np.uint8)
    none = _instances(RotatedBoxes(torch.zeros(0, 5)), [], [])
    none.labels = none.labels.long()
    assert np.array_equal(draw_detections(img, none, ['car']), img)
    inst = _instances(RotatedBoxes(torch.tensor([[40.0, 30.0, 30.0, 14.0, 0.5]])), [0.9], [0])
    drawn = draw_detections(img, inst, ['car'])
    assert drawn.shape == img.shape and drawn.dtype == np.uint8
    changed = np.abs(drawn.astype(int) - img).sum(-1) > 30
    assert changed.sum() > 50
    # the box outline passes through its corners' neighbourhood, not the image corner
    assert not changed[55:, 75:].any()
    corners = cv2.boxPoints(((40, 30), (30, 14), np.degrees(0.5)))
    x, y = np.round(corners[0]).astype(int)
    assert changed[max(y - 2, 0) : y + 3, max(x - 2, 0) : x + 3].any()


@pytest.fixture(scope='module')
def yolox_demo(tmp_path_factory):
    from ai4rs.apis import init_detector
    from tests.yolo_world_infer_helpers import save_model, write_scene, yolox_config

    tmp = tmp_path_factory.mktemp('web_demo')
    config, ckpt = save_model(yolox_config(), str(tmp), 'yolox')
    img = write_scene(tmp / 'scene.png')
    return dict(model=init_detector(config, ckpt), config=config, ckpt=ckpt, img=img)


def test_predict_matches_inference_detector(yolox_demo):
    from ai4rs.apis import inference_detector

    model = yolox_demo['model']
    demo = WebDemo(model, max_upload_mb=1)
    assert not demo.open_vocabulary and demo.rotated
    assert demo.default_texts == list(model.dataset_meta['classes'])
    data = open(yolox_demo['img'], 'rb').read()
    drawing, table, message = demo.predict(data, 'ignored', 0.2, 4)
    assert table['headers'] == RBOX_HEADERS
    assert message == f'{len(table["data"])} detections on 128x96.'
    # the reference: the model on cv2.imread of the same file, kept and sorted here
    pred = inference_detector(model, cv2.imread(yolox_demo['img'])).pred_instances
    keep = (pred.scores >= 0.2).nonzero().flatten()
    keep = keep[pred.scores[keep].argsort(descending=True)][:4]
    assert len(keep) == 4 and len(table['data']) == 4
    for row, i in zip(table['data'], keep.tolist()):
        assert row[0] == model.dataset_meta['classes'][int(pred.labels[i])]
        assert row[1] == pytest.approx(float(pred.scores[i]), abs=1e-4)
        assert row[2:6] == pytest.approx(pred.bboxes.tensor[i, :4].tolist(), abs=0.006)
        assert row[6] == pytest.approx(float(pred.bboxes.tensor[i, 4]), abs=1e-4)
    assert drawing.shape == (96, 128, 3)
    assert not np.array_equal(drawing, cv2.imread(yolox_demo['img'])[..., ::-1])
    # the example image, larger than any upload limit, is not an upload
    drawing, table, message = WebDemo(model, max_upload_mb=0.001).predict_example('', 0.2, 3)
    assert drawing.shape == (480, 640, 3) and message == '3 detections on 640x480.'
    expected = inference_detector(model, example_image()).pred_instances.scores
    assert [r[1] for r in table['data']] == pytest.approx(
        expected[expected >= 0.2].sort(descending=True).values[:3].tolist(), abs=1e-4
    )


def test_predict_refusals_keep_the_demo_answering(yolox_demo):
    demo = WebDemo(yolox_demo['model'], max_upload_mb=0.001)  # 1,000 bytes
    drawing, table, message = demo.predict(b'GIF89a not really', '', 0.2, 4)
    assert drawing is None and table['data'] == [] and message.startswith('Error: ')
    assert 'not an image' in message
    big = open(yolox_demo['img'], 'rb').read()
    assert len(big) > 1000
    drawing, table, message = demo.predict(big, '', 0.2, 4)
    assert drawing is None
    assert f'is {len(big):,} bytes, more than the limit of 1,000 bytes (0.001 MB)' in message
    assert demo.predict(None, '', 0.2, 4)[2].startswith('Upload an image')
    small = _png_bytes(np.full((8, 8, 3), 100, np.uint8))
    drawing, table, message = demo.predict(small, '', 0.0, 2)
    assert drawing.shape == (8, 8, 3) and message.endswith('on 8x8.')
    with pytest.raises(ValueError, match='fixed set of classes'):
        WebDemo(yolox_demo['model'], texts=['car'])
    with pytest.raises(ValueError, match='must be positive'):
        WebDemo(yolox_demo['model'], max_upload_mb=0)


def _load_script():
    path = osp.join(REPO_ROOT, 'demo', 'gradio_demo.py')
    spec = importlib.util.spec_from_file_location('gradio_demo', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_script_defaults_are_safe_and_errors_are_one_line(yolox_demo, tmp_path, capsys):
    script = _load_script()
    args = script.parse_args([yolox_demo['config'], yolox_demo['ckpt']])
    assert (args.host, args.port, args.share, args.max_upload_mb) == ('127.0.0.1', 7860, False, 10)
    assert args.device == 'cpu' and args.texts is None
    args = script.parse_args([yolox_demo['config'], yolox_demo['ckpt'], '--texts', 'a, b'])
    assert args.texts == ['a', 'b']
    with pytest.raises(SystemExit) as e:
        script.parse_args([str(tmp_path / 'none.py'), yolox_demo['ckpt']])
    assert e.value.code == 2
    assert 'config file not found' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        script.parse_args([yolox_demo['config'], yolox_demo['ckpt'], '--max-upload-mb', '0'])
    assert '--max-upload-mb' in capsys.readouterr().err


def test_missing_gradio_is_a_clear_message(monkeypatch, yolox_demo, capsys):
    monkeypatch.setitem(sys.modules, 'gradio', None)  # import gradio raises ImportError
    with pytest.raises(ImportError, match=r'pip install -r requirements/demo.txt'):
        import_gradio()
    script = _load_script()
    assert script.cli([yolox_demo['config'], yolox_demo['ckpt']]) == 1
    err = capsys.readouterr().err
    assert err.startswith('error: the web demo needs gradio') and err.count('\n') == 1


def test_predict_with_an_onnx_model(yolox_demo, tmp_path, monkeypatch):
    """An exported model (.onnx, run by onnxruntime) behind the page gives the table of the
    PyTorch model (the export is checked to 1e-4 by tests/test_tools/test_export_onnx.py)."""
    pytest.importorskip('onnxruntime')
    from ai4rs.apis import init_detector

    spec = importlib.util.spec_from_file_location(
        'export_onnx', osp.join(REPO_ROOT, 'tools', 'deployment', 'export_onnx.py')
    )
    export = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(export)
    monkeypatch.setitem(sys.modules, 'onnxsim', None)
    onnx_file = str(tmp_path / 'yolox.onnx')
    export.main(
        [yolox_demo['config'], yolox_demo['ckpt'], '--img', yolox_demo['img'], '--out', onnx_file]
    )
    onnx_demo = WebDemo(init_detector(yolox_demo['config'], onnx_file))
    assert onnx_demo.rotated and not onnx_demo.open_vocabulary
    data = open(yolox_demo['img'], 'rb').read()
    _, table, _ = onnx_demo.predict(data, '', 0.2, 4)
    _, expected, _ = WebDemo(yolox_demo['model']).predict(data, '', 0.2, 4)
    assert len(table['data']) == 4 and table['headers'] == expected['headers']
    for row, ref in zip(table['data'], expected['data']):
        assert row[0] == ref[0]
        assert row[1:] == pytest.approx(ref[1:], abs=0.02)


def test_predict_rotated_yolo_world(tiny_clip_dir, tmp_path):
    """Open-vocabulary rotated YOLO-World: the typed texts name the labels, the boxes are
    rotated (cx, cy, w, h, angle); the default texts are the dataset's class texts."""
    from ai4rs.apis import inference_detector, init_detector
    from ai4rs.datasets.preparation.synthetic_dota import generate_dataset, write_class_texts
    from tests.yolo_world_infer_helpers import rotated_world_config, save_model, write_scene

    data_root = tmp_path / 'data'
    generate_dataset(str(data_root), num_train=1, num_val=1, img_size=128)
    write_class_texts(str(data_root))
    cfg = rotated_world_config(tiny_clip_dir, data_root, size=64)
    model = init_detector(*save_model(cfg, str(tmp_path), 'rw', box_bin=1, angle_std=0.5))
    demo = WebDemo(model)
    assert demo.open_vocabulary and demo.rotated
    assert demo.default_texts == list(model.dataset_meta['classes'])
    img = write_scene(tmp_path / 'scene.png')
    texts = ['ship', 'storage tank']
    _, table, message = demo.predict(open(img, 'rb').read(), ' ship, storage tank ', 0.0, 3)
    assert table['headers'] == RBOX_HEADERS and message == '3 detections on 128x96.'
    pred = inference_detector(model, cv2.imread(img), texts=texts).pred_instances
    order = pred.scores.argsort(descending=True)[:3]
    for row, i in zip(table['data'], order.tolist()):
        assert row[0] == texts[int(pred.labels[i])]
        assert row[1] == pytest.approx(float(pred.scores[i]), abs=1e-4)
        assert row[2:] == pytest.approx(pred.bboxes.tensor[i].tolist(), abs=0.006)
    assert any(abs(row[6]) > 1e-3 for row in table['data'])  # oriented, not all angle 0
