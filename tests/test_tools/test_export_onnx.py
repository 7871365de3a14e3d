"""tools/deployment/export_onnx.py on a tiny YOLO-World v2 (saved checkpoint + tiny CLIP
dir, vocabulary baked in) and a tiny rotated YOLOX: onnxruntime equals PyTorch within
1e-4, the graph takes the image only, and the exported file used as the demo's
CHECKPOINT gives the detections of the checkpoint."""

import importlib.util
import json
import os.path as osp

import numpy as np
import pytest
import torch

from tests.conftest import REPO_ROOT

pytest.importorskip('onnx', reason='onnx is an optional extra (requirements/optional.txt)')
ort = pytest.importorskip(
    'onnxruntime', reason='onnxruntime is an optional extra (requirements/optional.txt)'
)

VOCAB = ['cat', 'dog', 'person']


def _load_script(*parts):
    spec = importlib.util.spec_from_file_location(parts[-1][:-3], osp.join(REPO_ROOT, *parts))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check_graph_equals_pytorch(onnx_file, model, img, meta):
    """onnxruntime's outputs vs the PyTorch model's on the same preprocessed image."""
    from ai4rs.apis.deployment import DecodedDetector, Preprocessor

    session = ort.InferenceSession(onnx_file, providers=['CPUExecutionProvider'])
    assert [i.name for i in session.get_inputs()] == ['images']  # image only: no texts
    assert list(session.get_inputs()[0].shape) == [1, 3, *meta['img_size']]
    stored = json.loads(session.get_modelmeta().custom_metadata_map['ai4rs'])
    assert stored == meta
    inputs, _ = Preprocessor(model.cfg, meta['img_size'])(img)
    got = session.run(['boxes', 'scores'], {'images': inputs.numpy()})
    with torch.no_grad():
        ref = [t.numpy() for t in DecodedDetector(model).eval()(inputs)]
    for a, b in zip(got, ref):
        assert a.shape == b.shape and a.shape[1] == 84  # 8x8 + 4x4 + 2x2 priors at 64 px
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=0)
    return got


def _same_detections(a, b):
    pa, pb = a.pred_instances, b.pred_instances
    assert len(pa) == len(pb) > 0
    torch.testing.assert_close(pa.bboxes.tensor, pb.bboxes.tensor, atol=1e-3, rtol=0)
    torch.testing.assert_close(pa.scores, pb.scores, atol=1e-5, rtol=0)
    assert torch.equal(pa.labels, pb.labels)


def test_export_yolo_world_and_demo_on_onnx(tiny_clip_dir, tmp_path, capsys):
    from ai4rs.apis import inference_detector, init_detector
    from ai4rs.apis.deployment import OnnxDetector
    from tests.yolo_world_infer_helpers import save_model, world_config, write_scene

    config, ckpt = save_model(world_config(tiny_clip_dir), str(tmp_path), 'world')
    img = write_scene(tmp_path / 'scene.png')
    onnx_file = str(tmp_path / 'world.onnx')
    export = _load_script('tools', 'deployment', 'export_onnx.py')
    meta = export.main(
        [
            config,
            ckpt,
            '--texts',
            ','.join(VOCAB),
            '--img',
            img,
            '--out',
            onnx_file,
            '--img-size',
            '64',
            '64',
        ]
    )
    out = capsys.readouterr().out
    assert 'max abs difference' in out and 'check passed' in out
    assert meta == dict(box_type='hbox', img_size=[64, 64], with_nms=False, texts=VOCAB)

    model = init_detector(config, ckpt)
    ref = inference_detector(model, img, texts=VOCAB)  # the text path, before baking
    model.reparameterize(VOCAB, drop_text_model=True)
    _check_graph_equals_pytorch(onnx_file, model, img, meta)

    onnx_model = OnnxDetector(onnx_file, config)
    assert onnx_model.dataset_meta['classes'] == VOCAB
    _same_detections(inference_detector(onnx_model, img), ref)

    demo = _load_script('demo', 'yolo_world_demo.py')
    common = ['--score-thr', '0.05', '--topk', '20']
    demo.main(
        [img, config, ckpt, '--texts', ','.join(VOCAB), '--out-dir', str(tmp_path / 'pth'), *common]
    )
    demo.main([img, config, onnx_file, '--out-dir', str(tmp_path / 'onnx'), *common])
    a = json.load(open(tmp_path / 'pth' / 'scene.json'))
    b = json.load(open(tmp_path / 'onnx' / 'scene.json'))
    assert len(a) == len(b) == 20
    for x, y in zip(a, b):
        assert x['text'] == y['text'] and x['score'] == pytest.approx(y['score'], abs=1e-5)
        assert x['bbox'] == pytest.approx(y['bbox'], abs=1e-3)
    with pytest.raises(ValueError, match='exported with the vocabulary'):
        demo.main([img, config, onnx_file, '--texts', 'dog,cat', '--out-dir', str(tmp_path)])

    # NMS in the graph (ONNX NonMaxSuppression): the same detections once rescaled
    nms_file = str(tmp_path / 'world_nms.onnx')
    meta = export.main(
        [config, ckpt, '--texts', ','.join(VOCAB), '--img', img, '--out', nms_file, '--with-nms']
    )
    assert meta['with_nms'] is True
    session = ort.InferenceSession(nms_file, providers=['CPUExecutionProvider'])
    assert [o.name for o in session.get_outputs()] == ['dets', 'scores', 'labels']
    assert any(
        node.op_type == 'NonMaxSuppression' for node in __import__('onnx').load(nms_file).graph.node
    )
    _same_detections(inference_detector(OnnxDetector(nms_file, config), img), ref)


def test_export_rotated_yolox(tmp_path, capsys, monkeypatch):
    from ai4rs.apis import inference_detector, init_detector
    from ai4rs.apis.deployment import OnnxDetector
    from tests.yolo_world_infer_helpers import save_model, write_scene, yolox_config

    config, ckpt = save_model(yolox_config(), str(tmp_path), 'yolox')
    img = write_scene(tmp_path / 'scene.png')
    export = _load_script('tools', 'deployment', 'export_onnx.py')
    monkeypatch.setitem(__import__('sys').modules, 'onnxsim', None)  # not installed
    meta = export.main([config, ckpt, '--img', img, '--simplify'])  # default size and --out
    out = capsys.readouterr().out
    assert 'onnxsim is not installed' in out and 'check passed' in out
    onnx_file = str(tmp_path / 'yolox.onnx')
    assert meta['box_type'] == 'rbox' and meta['img_size'] == [64, 64]

    model = init_detector(config, ckpt)
    boxes, scores = _check_graph_equals_pytorch(onnx_file, model, img, meta)
    assert boxes.shape[-1] == 5 and scores.shape[-1] == 15
    _same_detections(
        inference_detector(OnnxDetector(onnx_file, config), img), inference_detector(model, img)
    )

    with pytest.raises(SystemExit, match='no NMS operator for RotatedBoxes'):
        export.main([config, ckpt, '--img', img, '--with-nms'])
    with pytest.raises(SystemExit, match='--texts is for open-vocabulary models'):
        export.main([config, ckpt, '--img', img, '--texts', 'cat'])


def test_export_with_text_input_serves_any_vocabulary(tiny_clip_dir, tmp_path, capsys):
    """--text-input: one .onnx file, two vocabularies of different sizes, each equal to the
    PyTorch model with those texts (graph outputs within 1e-4, detections), with CLIP or a
    saved embeddings file giving the texts; a wrong width is refused naming both."""
    from ai4rs.apis import inference_detector, init_detector
    from ai4rs.apis.deployment import DecodedDetector, OnnxDetector, Preprocessor
    from tests.yolo_world_infer_helpers import save_model, world_config, write_scene

    config, ckpt = save_model(world_config(tiny_clip_dir), str(tmp_path), 'world')
    img = write_scene(tmp_path / 'scene.png')
    onnx_file = str(tmp_path / 'world_texts.onnx')
    export = _load_script('tools', 'deployment', 'export_onnx.py')
    meta = export.main(
        [config, ckpt, '--texts', ','.join(VOCAB), '--text-input', '--out', onnx_file]
    )
    printed = capsys.readouterr().out
    assert printed.count('max abs difference onnxruntime vs PyTorch, scores') == 2
    assert meta == dict(
        box_type='hbox', img_size=[64, 64], with_nms=False, text_input=True, text_dim=512
    )

    session = ort.InferenceSession(onnx_file, providers=['CPUExecutionProvider'])
    assert [(i.name, i.shape) for i in session.get_inputs()] == [
        ('images', [1, 3, 64, 64]),
        ('texts', ['num_texts', 512]),
    ]
    model = init_detector(config, ckpt)
    inputs, _ = Preprocessor(model.cfg, meta['img_size'])(img)
    wrapper = DecodedDetector(model, text_input=True).eval()
    onnx_model = init_detector(config, onnx_file)
    assert isinstance(onnx_model, OnnxDetector) and onnx_model.vocabulary is None
    for vocab in (['cat', 'dog'], ['person', 'car', 'tree', 'cat', 'boat']):
        feats = model.backbone.forward_text([vocab])[0].detach()
        got = session.run(['boxes', 'scores'], {'images': inputs.numpy(), 'texts': feats.numpy()})
        with torch.no_grad():
            ref = [t.numpy() for t in wrapper(inputs, feats)]
        assert got[1].shape == (1, 84, len(vocab))
        for a, b in zip(got, ref):
            np.testing.assert_allclose(a, b, atol=1e-4, rtol=0)
        # the user's path: init_detector(config, .onnx) + texts = the checkpoint + texts
        _same_detections(
            inference_detector(onnx_model, img, texts=vocab),
            inference_detector(model, img, texts=vocab),
        )
    with pytest.raises(ValueError, match='needs a vocabulary: pass texts='):
        inference_detector(onnx_model, img)

    # the demo with a saved embeddings file (no CLIP) gives the demo's detections with CLIP
    gen = _load_script('tools', 'misc', 'generate_text_embeddings.py')
    embeds = str(tmp_path / 'vocab.pt')
    gen.main([config, '--texts', 'cat', 'person', 'boat', '--out', embeds])
    demo = _load_script('demo', 'yolo_world_demo.py')
    common = ['--score-thr', '0.05', '--topk', '20']
    demo.main(
        [
            img,
            config,
            ckpt,
            '--texts',
            'cat,person,boat',
            '--out-dir',
            str(tmp_path / 'pth'),
            *common,
        ]
    )
    demo.main(
        [img, config, onnx_file, '--texts', 'cat,person,boat', '--text-embeddings', embeds]
        + ['--out-dir', str(tmp_path / 'onnx'), *common]
    )
    a = json.load(open(tmp_path / 'pth' / 'scene.json'))
    b = json.load(open(tmp_path / 'onnx' / 'scene.json'))
    assert len(a) == len(b) > 0
    for x, y in zip(a, b):
        assert x['text'] == y['text'] and x['score'] == pytest.approx(y['score'], abs=1e-5)
        assert x['bbox'] == pytest.approx(y['bbox'], abs=1e-3)

    # embeddings of the wrong width: refused, naming both widths
    torch.save({'cat': torch.ones(16)}, tmp_path / 'narrow.pt')
    with pytest.raises(ValueError, match=r'width 512; got \(1, 16\) \(width 16\)'):
        demo.main(
            [
                img,
                config,
                onnx_file,
                '--texts',
                'cat',
                '--text-embeddings',
                str(tmp_path / 'narrow.pt'),
            ]
            + ['--out-dir', str(tmp_path / 'narrow')]
        )
    with pytest.raises(ValueError, match='width 512'):
        onnx_model.raw(inputs, torch.ones(2, 16))

    # image prompts (prompt_embeddings) on the run-time-vocabulary graph: an embedding equal
    # to a text's scores like that text
    with torch.no_grad():
        person = model.backbone.forward_text([['person']])[0, 0]
    _same_detections(
        inference_detector(
            onnx_model, img, texts=['cat', 'my mug'], prompt_embeddings={'my mug': person}
        ),
        inference_detector(onnx_model, img, texts=['cat', 'person']),
    )
