"""inference_detector(..., batch_size=N): N images per forward pass, results equal to
one-by-one inference (tiny YOLO-World v2 with the tiny CLIP, 64 px letterbox; tiny rotated
YOLOX, 64 px keep-ratio resize), images of several sizes, and the text model run once per
vocabulary."""

import numpy as np
import pytest
import torch

pytest.importorskip('transformers')

VOCAB = ['cat', 'dog', 'person']


def _images():
    from tests.yolo_world_infer_helpers import scene

    # three sizes (two share one): the letterbox gives one input size to all, the
    # keep-ratio resize of rotated YOLOX two
    shapes = [(96, 128), (128, 96), (96, 128), (80, 80), (96, 128)]
    return [scene(h, w, seed=i) for i, (h, w) in enumerate(shapes)]


def _assert_same(one, many):
    assert len(one) == len(many)
    for a, b in zip(one, many):
        pa, pb = a.pred_instances, b.pred_instances
        assert a.ori_shape == b.ori_shape
        assert type(pa.bboxes) is type(pb.bboxes)
        assert len(pa) == len(pb) > 0
        torch.testing.assert_close(pa.bboxes.tensor, pb.bboxes.tensor, atol=1e-4, rtol=0)
        torch.testing.assert_close(pa.scores, pb.scores, atol=1e-4, rtol=0)
        assert torch.equal(pa.labels, pb.labels)


@pytest.fixture(scope='module')
def world_model(tiny_clip_dir, tmp_path_factory):
    from ai4rs.apis import init_detector
    from tests.yolo_world_infer_helpers import save_model, world_config

    tmp = tmp_path_factory.mktemp('batched_world')
    return init_detector(*save_model(world_config(tiny_clip_dir), str(tmp), 'world', box_bin=1))


@pytest.mark.parametrize('batch_size', [2, 4])
def test_yolo_world_batched_equals_one_by_one(world_model, batch_size, monkeypatch):
    from ai4rs.apis import inference_detector

    imgs = _images()
    one = inference_detector(world_model, imgs, texts=VOCAB)
    shapes = []
    step = world_model.test_step
    monkeypatch.setattr(
        world_model,
        'test_step',
        lambda data: shapes.append(len(data['inputs'])) or step(data),
    )
    many = inference_detector(world_model, imgs, texts=VOCAB, batch_size=batch_size)
    _assert_same(one, many)
    # one letterbox size: the five images go in ceil(5 / N) forward passes of N, then the rest
    assert shapes == [batch_size] * (5 // batch_size) + ([5 % batch_size] if 5 % batch_size else [])
    assert [s.texts for s in many] == [VOCAB] * 5


def test_rotated_yolox_batches_only_images_of_one_input_size(tmp_path, monkeypatch):
    from ai4rs.apis import inference_detector, init_detector
    from ai4rs.structures import RotatedBoxes
    from tests.yolo_world_infer_helpers import save_model, yolox_config

    model = init_detector(*save_model(yolox_config(), str(tmp_path), 'yolox'))
    imgs = _images()
    one = inference_detector(model, imgs)
    sizes = []
    step = model.test_step
    monkeypatch.setattr(
        model,
        'test_step',
        lambda data: sizes.append([tuple(x.shape) for x in data['inputs']]) or step(data),
    )
    many = inference_detector(model, imgs, batch_size=8)
    _assert_same(one, many)
    assert type(many[0].pred_instances.bboxes) is RotatedBoxes
    # keep-ratio resize to 64: 96x128 -> 48x64 (three images), 128x96 -> 64x48, 80x80 -> 64x64;
    # each size its own forward pass, never padded together
    assert sorted(sizes) == sorted([[(3, 48, 64)] * 3, [(3, 64, 48)], [(3, 64, 64)]])


def test_text_model_runs_once_per_vocabulary(world_model, monkeypatch):
    from ai4rs.apis import inference_detector

    text_model = world_model.backbone.text_model
    text_model.clear_cache()
    encoded = []
    encode = text_model.encode
    monkeypatch.setattr(
        text_model, 'encode', lambda texts: encoded.append(list(texts)) or encode(texts)
    )
    imgs = _images()[:3]
    inference_detector(world_model, imgs, texts=VOCAB, batch_size=2)
    assert encoded == [VOCAB]  # once for the call, not per batch or image
    inference_detector(world_model, imgs[:1], texts=VOCAB)
    assert encoded == [VOCAB]  # a later call with the same vocabulary: no CLIP run
    inference_detector(world_model, imgs[:1], texts=['cat', 'bird'])
    assert encoded == [VOCAB, ['bird']]  # only the new prompt


@pytest.mark.parametrize('bad', [0, -1, 1.5, True, '2'])
def test_bad_batch_size(world_model, bad):
    from ai4rs.apis import inference_detector

    with pytest.raises(ValueError, match='batch_size must be a positive integer'):
        inference_detector(
            world_model, [np.zeros((32, 32, 3), np.uint8)], texts=VOCAB, batch_size=bad
        )
