"""inference_detector with any vocabulary, and demo/yolo_world_demo.py on a generated
image, a generated 3-frame video and with saved text embeddings (tiny YOLO-World v2 with
the tiny CLIP of ai4rs/testing/tiny_clip.py; 64 px letterbox, 96x128 images)."""

import importlib.util
import json
import os.path as osp

import cv2
import numpy as np
import pytest
import torch

from tests.conftest import REPO_ROOT

pytest.importorskip('transformers')

VOCAB = ['cat', 'dog', 'person']


def _load_script(*parts):
    path = osp.join(REPO_ROOT, *parts)
    spec = importlib.util.spec_from_file_location(parts[-1][:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def world_files(tiny_clip_dir, tmp_path_factory):
    from tests.yolo_world_infer_helpers import save_model, world_config, write_scene

    tmp = tmp_path_factory.mktemp('world')
    config, ckpt = save_model(world_config(tiny_clip_dir), str(tmp), 'world')
    return dict(config=config, ckpt=ckpt, img=write_scene(tmp / 'scene.png'), tmp=tmp)


@pytest.fixture(scope='module')
def world_model(world_files):
    from ai4rs.apis import init_detector

    return init_detector(world_files['config'], world_files['ckpt'])


def _arrays(sample):
    pred = sample.pred_instances
    return (getattr(pred.bboxes, 'tensor', pred.bboxes), pred.scores, pred.labels)


def test_path_and_ndarray_give_identical_results(world_model, world_files):
    from ai4rs.apis import inference_detector

    by_path = inference_detector(world_model, world_files['img'], texts=VOCAB)
    by_array = inference_detector(world_model, cv2.imread(world_files['img']), texts=VOCAB)
    assert by_path.texts == by_array.texts == VOCAB
    assert len(by_path.pred_instances) > 5
    for a, b in zip(_arrays(by_path), _arrays(by_array)):
        assert torch.equal(a, b)
    # upstream's class-text form and a list of paths give the same detections
    batch = inference_detector(world_model, [world_files['img']] * 2, texts=[[t] for t in VOCAB])
    for sample in batch:
        for a, b in zip(_arrays(sample), _arrays(by_path)):
            assert torch.equal(a, b)


@pytest.fixture(scope='module')
def compact_world_model(tiny_clip_dir, tmp_path_factory):
    """The tiny model with boxes of about 2 strides (``save_model(box_bin=1)``), so that
    many lie inside the image instead of covering it."""
    from ai4rs.apis import init_detector
    from tests.yolo_world_infer_helpers import save_model, world_config

    tmp = tmp_path_factory.mktemp('compact_world')
    return init_detector(*save_model(world_config(tiny_clip_dir), str(tmp), 'world', box_bin=1))


@pytest.mark.parametrize(
    'shape, pad', [((96, 128), (8, 0)), ((128, 96), (0, 8))], ids=['landscape', 'portrait']
)
def test_boxes_are_network_boxes_mapped_back_through_the_letterbox(
    compact_world_model, world_files, shape, pad
):
    """inference_detector's boxes equal the model's network-input boxes (``predict`` with
    rescale=False on the test pipeline's 64 x 64 letterbox) mapped back by hand: a 96 x 128
    (128 x 96) image is resized by 0.5 and padded by 8 rows above (8 columns left), so
    x = (x_in - left) / 0.5 and y = (y_in - top) / 0.5, then clipped to the image. Boxes whose
    mapping lies inside the image (not decided by the clip) must exist, and there a missing
    rescale (boxes left in 64-px input pixels, which the clip alone keeps in bounds) differs.

    Planted bugs this test was checked to fail on: ``BaseDenseHead._bbox_post_process``
    without the rescale, and without the letterbox ``translate_``."""
    from mmengine.dataset import Compose

    from ai4rs.apis import inference_detector
    from tests.yolo_world_infer_helpers import write_scene

    model = compact_world_model
    h, w = shape
    top, left = pad
    img = write_scene(world_files['tmp'] / f'scene_{h}x{w}.png', h=h, w=w)
    result = inference_detector(model, img, texts=VOCAB)

    # the network-input boxes of the same image, from the config's test pipeline
    steps = model.cfg.test_dataloader.dataset.pipeline
    pipeline = Compose([t for t in steps if t['type'] != 'LoadAnnotations'])
    data = pipeline(dict(img_path=img, img_id=0, texts=[[t] for t in VOCAB]))
    meta = data['data_samples'].metainfo
    assert tuple(meta['scale_factor']) == (0.5, 0.5)
    assert list(meta['pad_param']) == [top, top, left, left]
    batch = model.data_preprocessor(
        dict(inputs=[data['inputs']], data_samples=[data['data_samples']]), False
    )
    with torch.no_grad():
        (raw,) = model.predict(batch['inputs'], batch['data_samples'], rescale=False)
    raw = raw.pred_instances

    boxes = result.pred_instances.bboxes.tensor
    assert len(boxes) == len(raw) > 5
    by_hand = raw.bboxes.tensor.clone()
    by_hand[:, 0::2] = ((by_hand[:, 0::2] - left) / 0.5).clamp(0, w)
    by_hand[:, 1::2] = ((by_hand[:, 1::2] - top) / 0.5).clamp(0, h)
    order, raw_order = (
        result.pred_instances.scores.argsort(descending=True),
        raw.scores.argsort(descending=True),
    )
    torch.testing.assert_close(result.pred_instances.scores[order], raw.scores[raw_order])
    torch.testing.assert_close(boxes[order], by_hand[raw_order], atol=1e-4, rtol=0)
    interior = (by_hand[:, :2] > 1).all(1) & (by_hand[:, 2] < w - 1) & (by_hand[:, 3] < h - 1)
    assert int(interior.sum()) >= 3
    # there the box is not its network-input box: the rescale is what put it in place
    shift = (by_hand[interior] - raw.bboxes.tensor[interior]).abs().amax(1)
    assert bool((shift > 1).all())


def _by_text(sample, vocab):
    boxes, scores, labels = _arrays(sample)
    rows = [
        (vocab[int(lb)], round(float(s), 5), *[round(float(v), 3) for v in box])
        for box, s, lb in zip(boxes, scores, labels)
    ]
    return sorted(rows)


def test_reordering_texts_reorders_labels(world_model, world_files):
    from ai4rs.apis import inference_detector

    order = ['person', 'cat', 'dog']
    a = inference_detector(world_model, world_files['img'], texts=VOCAB)
    b = inference_detector(world_model, world_files['img'], texts=order)
    assert b.texts == order
    labels_a = {VOCAB[int(i)] for i in a.pred_instances.labels}
    assert len(labels_a) >= 2  # several texts detected, so the test sees the reordering
    # the same detections, each attached to the same text, under the new label indexes
    assert _by_text(a, VOCAB) == _by_text(b, order)
    # a vocabulary of one of the texts gives exactly that text's detections
    only_dog = inference_detector(world_model, world_files['img'], texts=['dog'])
    expected = [r for r in _by_text(a, VOCAB) if r[0] == 'dog']
    assert _by_text(only_dog, ['dog']) == expected


def test_vocabulary_errors_and_reparameterized_model(world_files, tmp_path):
    from ai4rs.apis import inference_detector, init_detector
    from tests.yolo_world_infer_helpers import save_model, write_scene, yolox_config

    model = init_detector(world_files['config'], world_files['ckpt'])
    with pytest.raises(ValueError, match='reparameterize'):
        inference_detector(model, world_files['img'])
    with pytest.raises(TypeError, match='not one string'):
        inference_detector(model, world_files['img'], texts='cat,dog')
    ref = inference_detector(model, world_files['img'], texts=VOCAB)
    model.reparameterize(VOCAB, drop_text_model=True)
    baked = inference_detector(model, world_files['img'])  # no texts: the baked vocabulary
    assert baked.texts == VOCAB
    for a, b in zip(_arrays(baked), _arrays(ref)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)

    config, ckpt = save_model(yolox_config(), str(tmp_path), 'yolox')
    yolox = init_detector(config, ckpt)
    img = write_scene(tmp_path / 'x.png')
    with pytest.raises(ValueError, match='open-vocabulary'):
        inference_detector(yolox, img, texts=VOCAB)
    result = inference_detector(yolox, img)
    assert result.pred_instances.bboxes.tensor.shape[1] == 5


def test_demo_image_and_video(world_model, world_files, tmp_path):
    from ai4rs.apis import inference_detector

    demo = _load_script('demo', 'yolo_world_demo.py')
    out = tmp_path / 'out'
    written = demo.main(
        [
            world_files['img'],
            world_files['config'],
            world_files['ckpt'],
            '--texts',
            ','.join(VOCAB),
            '--score-thr',
            '0.1',
            '--topk',
            '5',
            '--out-dir',
            str(out),
        ]
    )
    assert written == [str(out / 'scene.png')]
    drawing, original = cv2.imread(written[0]), cv2.imread(world_files['img'])
    assert drawing.shape == original.shape
    assert (np.abs(drawing.astype(int) - original).sum(-1) > 30).mean() > 0.01  # boxes drawn
    dets = json.load(open(out / 'scene.json'))
    ref = inference_detector(world_model, world_files['img'], texts=VOCAB).pred_instances
    ref = ref[ref.scores >= 0.1]
    assert len(dets) == min(5, len(ref)) == 5
    assert [d['score'] for d in dets] == sorted((d['score'] for d in dets), reverse=True)
    assert dets[0]['score'] == pytest.approx(float(ref.scores.max()), abs=1e-6)
    assert all(d['text'] == VOCAB[d['label']] for d in dets)

    # a vocabulary file, and a 3-frame video
    vocab_file = tmp_path / 'vocab.txt'
    vocab_file.write_text('\n'.join(VOCAB) + '\n')
    from tests.yolo_world_infer_helpers import scene

    video = str(tmp_path / 'clip.mp4')
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*'mp4v'), 5, (128, 96))
    for i in range(3):
        writer.write(scene(seed=i))
    writer.release()
    written = demo.main(
        [
            video,
            world_files['config'],
            world_files['ckpt'],
            '--texts',
            str(vocab_file),
            '--out-dir',
            str(out),
        ]
    )
    assert written == [str(out / 'clip.mp4')]
    cap = cv2.VideoCapture(written[0])
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    assert len(frames) == 3 and frames[0].shape == (96, 128, 3)
    assert len(json.load(open(out / 'clip.json'))) == 3

    # a folder: every image (sorted), other files ignored
    folder = tmp_path / 'folder'
    folder.mkdir()
    for name, seed in (('b.png', 1), ('a.jpg', 2)):
        cv2.imwrite(str(folder / name), scene(seed=seed))
    (folder / 'notes.txt').write_text('not an image')
    written = demo.main(
        [
            str(folder),
            world_files['config'],
            world_files['ckpt'],
            '--texts',
            'cat',
            '--out-dir',
            str(tmp_path / 'folder_out'),
        ]
    )
    assert written == [str(tmp_path / 'folder_out' / n) for n in ('a.jpg', 'b.png')]
    assert all(cv2.imread(w).shape == (96, 128, 3) for w in written)


def test_demo_with_text_embeddings_equals_clip(world_files, tiny_clip_dir, tmp_path):
    demo = _load_script('demo', 'yolo_world_demo.py')
    gen = _load_script('tools', 'misc', 'generate_text_embeddings.py')
    embeds = str(tmp_path / 'vocab.pt')
    gen.main([tiny_clip_dir, '--texts', *VOCAB, '--out', embeds])
    common = [world_files['img'], world_files['config'], world_files['ckpt'], '--score-thr', '0.05']
    demo.main(common + ['--texts', ','.join(VOCAB), '--out-dir', str(tmp_path / 'clip')])
    demo.main(common + ['--text-embeddings', embeds, '--out-dir', str(tmp_path / 'emb')])
    a = json.load(open(tmp_path / 'clip' / 'scene.json'))
    b = json.load(open(tmp_path / 'emb' / 'scene.json'))
    assert len(a) == len(b) > 0
    for x, y in zip(a, b):
        assert x['text'] == y['text'] and x['score'] == pytest.approx(y['score'], abs=1e-5)
        assert x['bbox'] == pytest.approx(y['bbox'], abs=1e-3)


def test_prompt_format_model_reparameterized_without_its_text_model(world_files, tmp_path):
    """LoadText(prompt_format='a photo of {}'): baked with the same format, the model without
    CLIP gives the detections of the un-reparameterized model with CLIP; the baked prompts
    are not re-encoded; baked without the format, it refuses instead of detecting wrongly."""
    from mmengine.config import Config

    from ai4rs.apis import inference_detector, init_detector

    cfg = Config.fromfile(world_files['config'])
    (load_text,) = [t for t in cfg.test_dataloader.dataset.pipeline if t.type == 'LoadText']
    load_text.prompt_format = 'a photo of {}'
    config = str(tmp_path / 'prompted.py')
    cfg.dump(config)
    prompts = [f'a photo of {t}' for t in VOCAB]

    with_clip = init_detector(config, world_files['ckpt'])
    ref = inference_detector(with_clip, world_files['img'], texts=VOCAB)
    assert ref.texts == prompts

    baked = init_detector(config, world_files['ckpt'])
    baked.reparameterize(VOCAB, drop_text_model=True, prompt_format='a photo of {}')
    assert baked.texts == [VOCAB] and baked.prompts == [prompts]
    result = inference_detector(baked, world_files['img'])
    assert result.texts == prompts
    assert len(ref.pred_instances) > 5
    for a, b in zip(_arrays(result), _arrays(ref)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)

    # exported (the baked prompts' embeddings in the graph) and run from the .onnx file: the
    # runtime accepts the samples' formatted prompts and gives the same detections
    if importlib.util.find_spec('onnxruntime') and importlib.util.find_spec('onnx'):
        from ai4rs.apis.deployment import Preprocessor, export_onnx
        from ai4rs.apis.pipeline import text_prompt_format

        assert text_prompt_format(baked.cfg) == 'a photo of {}'  # what export_onnx.py bakes with
        onnx_file = str(tmp_path / 'prompted.onnx')
        inputs, _ = Preprocessor(baked.cfg, (64, 64))(world_files['img'])
        export_onnx(baked, inputs, onnx_file)
        from_onnx = inference_detector(init_detector(config, onnx_file), world_files['img'])
        for a, b in zip(_arrays(from_onnx), _arrays(ref)):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=0)

    # kept text model: the baked prompts are used, not encoded again
    kept = init_detector(config, world_files['ckpt'])
    kept.reparameterize(VOCAB, prompt_format='a photo of {}')

    def no_encoding(*args, **kwargs):
        raise AssertionError('the baked prompts were encoded again')

    kept.backbone.forward_text = no_encoding
    again = inference_detector(kept, world_files['img'])
    for a, b in zip(_arrays(again), _arrays(ref)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)

    # baked without the pipeline's format: a clear error, not other detections
    plain = init_detector(config, world_files['ckpt'])
    plain.reparameterize(VOCAB, drop_text_model=True)
    with pytest.raises(RuntimeError, match='prompt_format'):
        inference_detector(plain, world_files['img'])
    with pytest.raises(ValueError, match="one '{}' field"):
        plain_b = init_detector(config, world_files['ckpt'])
        plain_b.reparameterize(VOCAB, prompt_format='a photo')


def test_demo_folder_skips_a_corrupt_image_and_lists_it(world_files, tmp_path, capsys):
    from tests.yolo_world_infer_helpers import scene

    demo = _load_script('demo', 'yolo_world_demo.py')
    folder = tmp_path / 'folder'
    folder.mkdir()
    cv2.imwrite(str(folder / 'a.png'), scene(seed=1))
    (folder / 'b.jpg').write_bytes(b'\xff\xd8\xff\xe0 cut short')  # a JPEG header, no image
    cv2.imwrite(str(folder / 'c.png'), scene(seed=2))
    out = tmp_path / 'out'
    common = [world_files['config'], world_files['ckpt'], '--texts', 'cat,dog']
    assert demo.cli([str(folder), *common, '--out-dir', str(out)]) == 0
    assert sorted(p.name for p in out.glob('*.png')) == ['a.png', 'c.png']  # after b too
    err = capsys.readouterr().err
    assert f'warning: skipped {folder / "b.jpg"}' in err
    assert err.rstrip().endswith(f'skipped 1 of 3 images that could not be read:\n  {folder}/b.jpg')

    # nothing readable: status 1 and one line
    (folder / 'a.png').write_bytes(b'')
    (folder / 'c.png').write_bytes(b'\x89PNG\r\n\x1a\n')
    assert demo.cli([str(folder), *common, '--out-dir', str(tmp_path / 'out2')]) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith('error: none of the 3 images could be read: ')


@pytest.mark.parametrize(
    'args, message',
    [
        (['--texts', ','], "error: --texts ',': expected one or more non-empty texts"),
        (['--texts', 'cat,cat'], "error: --texts 'cat,cat' holds duplicates: ['cat']"),
    ],
)
def test_demo_usage_errors_are_one_line(world_files, tmp_path, args, message):
    import subprocess
    import sys

    demo = osp.join(REPO_ROOT, 'demo', 'yolo_world_demo.py')
    cmd = [sys.executable, demo, world_files['img'], world_files['config'], world_files['ckpt']]
    proc = subprocess.run(cmd + args, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].endswith(message)


def test_demo_batch_size_gives_the_one_by_one_detections(world_files, tmp_path):
    from tests.yolo_world_infer_helpers import scene

    demo = _load_script('demo', 'yolo_world_demo.py')
    folder = tmp_path / 'folder'
    folder.mkdir()
    for i, name in enumerate(('a.png', 'c.png', 'd.png', 'e.png')):
        cv2.imwrite(str(folder / name), scene(seed=i, h=96 + 16 * (i % 2)))
    (folder / 'b.jpg').write_bytes(b'\xff\xd8\xff\xe0 cut short')  # skipped, batch still runs
    common = [
        world_files['config'],
        world_files['ckpt'],
        '--texts',
        'cat,dog',
        '--score-thr',
        '0.05',
    ]
    demo.main([str(folder), *common, '--out-dir', str(tmp_path / 'one')])
    written = demo.main(
        [str(folder), *common, '--out-dir', str(tmp_path / 'four'), '--batch-size', '3']
    )
    assert [osp.basename(w) for w in written] == ['a.png', 'c.png', 'd.png', 'e.png']
    for name in ('a', 'c', 'd', 'e'):
        one = json.load(open(tmp_path / 'one' / f'{name}.json'))
        many = json.load(open(tmp_path / 'four' / f'{name}.json'))
        assert len(one) == len(many) > 0
        for a, b in zip(one, many):
            assert a['label'] == b['label'] and a['score'] == pytest.approx(b['score'], abs=1e-4)
            assert a['bbox'] == pytest.approx(b['bbox'], abs=1e-3)
