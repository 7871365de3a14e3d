"""Image prompts: example crops embedded by CLIP's image tower (a tiny random
CLIPVisionModelWithProjection written with save_pretrained), used where text embeddings
are used, mixed with texts; generate_image_prompts.py and the demo's --image-prompts."""

import importlib.util
import json
import os.path as osp

import cv2
import numpy as np
import pytest
import torch

from tests.conftest import REPO_ROOT

pytest.importorskip('transformers')


def _load_script(*parts):
    spec = importlib.util.spec_from_file_location(parts[-1][:-3], osp.join(REPO_ROOT, *parts))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def vision_dir(tmp_path_factory):
    from ai4rs.testing.tiny_clip import make_tiny_clip_vision

    return make_tiny_clip_vision(tmp_path_factory.mktemp('vision'))


@pytest.fixture(scope='module')
def encoder(vision_dir):
    from ai4rs.models.backbones.clip_image import CLIPImageEncoder

    return CLIPImageEncoder(vision_dir)


@pytest.fixture(scope='module')
def world(tiny_clip_dir, tmp_path_factory):
    from ai4rs.apis import init_detector
    from tests.yolo_world_infer_helpers import save_model, world_config, write_scene

    tmp = tmp_path_factory.mktemp('prompt_world')
    config, ckpt = save_model(world_config(tiny_clip_dir), str(tmp), 'world')
    return dict(
        model=init_detector(config, ckpt),
        config=config,
        ckpt=ckpt,
        img=write_scene(tmp / 'scene.png'),
    )


def _arrays(sample):
    pred = sample.pred_instances
    return pred.bboxes.tensor, pred.scores, pred.labels


def test_crop_preparation_by_hand(encoder):
    # a constant BGR colour: the resize and the crop keep it, so each normalised value is
    # (c / 255 - mean) / std of the RGB channel, hand-computed
    crop = np.zeros((20, 50, 3), np.uint8)
    crop[:] = (10, 128, 250)  # B, G, R
    pixels = encoder.prepare([crop])
    assert pixels.shape == (1, 3, 32, 32)
    rgb = np.array([250, 128, 10]) / 255.0
    mean = np.array([0.48145466, 0.4578275, 0.40821073])
    std = np.array([0.26862954, 0.26130258, 0.27577711])
    expected = torch.tensor((rgb - mean) / std, dtype=torch.float32)
    torch.testing.assert_close(pixels[0].mean((1, 2)), expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(pixels[0].amax((1, 2)), pixels[0].amin((1, 2)))


def test_class_embedding_is_the_normalised_mean_of_its_crops(encoder):
    from ai4rs.apis.image_prompts import image_prompt_embeddings

    rng = np.random.default_rng(0)
    crops = {
        'mug': [(rng.random((40, 30, 3)) * 255).astype(np.uint8) for _ in range(3)],
        'pen': [(rng.random((16, 64, 3)) * 255).astype(np.uint8)],
    }
    table = image_prompt_embeddings(encoder, crops)
    assert list(table) == ['mug', 'pen']
    with torch.no_grad():
        raw = encoder.model(pixel_values=encoder.prepare(crops['mug'])).image_embeds
    each = raw / raw.norm(dim=-1, keepdim=True)
    mean = each.mean(0)
    torch.testing.assert_close(table['mug'], mean / mean.norm(), atol=1e-6, rtol=0)
    assert table['pen'].norm().item() == pytest.approx(1.0, abs=1e-6)


def test_json_boxes_and_a_crop_folder_give_the_same_embeddings(encoder, tmp_path):
    from ai4rs.apis.image_prompts import image_prompt_embeddings, load_crops, read_prompt_spec
    from tests.yolo_world_infer_helpers import scene

    img = scene()
    cv2.imwrite(str(tmp_path / 'scene.png'), img)
    boxes = {'square': [8, 10, 51, 47], 'disc': [68, 38, 113, 83]}
    (tmp_path / 'spec.json').write_text(
        json.dumps({k: [{'image': 'scene.png', 'box': b}] for k, b in boxes.items()})
    )
    for name, (x1, y1, x2, y2) in boxes.items():
        (tmp_path / 'folder' / name).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / 'folder' / name / 'a.png'), img[y1:y2, x1:x2])
    by_json = image_prompt_embeddings(
        encoder, load_crops(read_prompt_spec(str(tmp_path / 'spec.json')))
    )
    by_dir = image_prompt_embeddings(
        encoder, load_crops(read_prompt_spec(str(tmp_path / 'folder')))
    )
    assert sorted(by_json) == sorted(by_dir) == ['disc', 'square']
    for name in by_json:
        torch.testing.assert_close(by_json[name], by_dir[name])
    assert not torch.allclose(by_json['disc'], by_json['square'])


@pytest.mark.parametrize(
    'box, message',
    [
        ([0, 0, 200, 20], r'lies outside the image \(128 x 96 pixels\)'),
        ([-1, 0, 10, 10], 'lies outside the image'),
        ([5, 5, 5, 20], 'has zero area'),
        ([5, 5, float('nan'), 20], 'not finite'),
        ([1, 2, 3], r'box must be \[x1, y1, x2, y2\]'),
    ],
)
def test_bad_crop_boxes_name_the_file_and_entry(tmp_path, box, message):
    from ai4rs.apis.image_prompts import load_crops, read_prompt_spec
    from tests.yolo_world_infer_helpers import write_scene

    write_scene(tmp_path / 'scene.png')
    spec_file = tmp_path / 'spec.json'
    spec_file.write_text(
        json.dumps(
            {
                'mug': [
                    {'image': 'scene.png', 'box': [0, 0, 8, 8]},
                    {'image': 'scene.png', 'box': box},
                ]
            }
        )
    )
    with pytest.raises(ValueError, match=message) as err:
        load_crops(read_prompt_spec(str(spec_file)))
    assert f"{spec_file}: 'mug' entry 1" in str(err.value)


def test_image_prompts_are_used_where_text_embeddings_are(world):
    from ai4rs.apis import inference_detector

    model, img = world['model'], world['img']
    text_model = model.backbone.text_model
    feats = model.backbone.forward_text([['person', 'dog']])[0].detach()
    # an image prompt equal to a text's embedding scores like that text
    ref = inference_detector(model, img, texts=['cat', 'person', 'dog'])
    got = inference_detector(
        model, img, texts=['cat', 'my mug', 'dog'], prompt_embeddings={'my mug': feats[0]}
    )
    assert got.texts == ['cat', 'my mug', 'dog']
    for a, b in zip(_arrays(got), _arrays(ref)):
        torch.testing.assert_close(a, b)
    # only image prompts: the vocabulary is the table's classes, in its order
    only = inference_detector(model, img, prompt_embeddings={'a': feats[0], 'b': feats[1]})
    ref = inference_detector(model, img, texts=['person', 'dog'])
    for a, b in zip(_arrays(only), _arrays(ref)):
        torch.testing.assert_close(a, b)
    assert model.backbone.text_model is text_model  # restored after the call
    with pytest.raises(
        ValueError, match=r'width \[16\] do not fit the model, which takes embeddings of width 512'
    ):
        inference_detector(model, img, prompt_embeddings={'a': torch.ones(16)})
    assert model.backbone.text_model is text_model


def test_generate_image_prompts_and_the_demo(world, vision_dir, tmp_path, capsys):
    from ai4rs.apis import inference_detector
    from ai4rs.apis.image_prompts import image_prompts_from
    from tests.yolo_world_infer_helpers import scene

    for name, seed in (('mug', 1), ('pen', 2)):
        (tmp_path / 'crops' / name).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / 'crops' / name / 'x.png'), scene(40, 40, seed=seed))
    gen = _load_script('tools', 'misc', 'generate_image_prompts.py')
    out = str(tmp_path / 'prompts.pt')
    table = gen.main(
        [str(tmp_path / 'crops'), '--vision-model', vision_dir, '--texts', 'cat']
        + ['--text-model', world['config'], '--out', out]
    )
    assert list(table) == ['cat', 'mug', 'pen']
    saved = torch.load(out, weights_only=True)
    assert list(saved) == ['cat', 'mug', 'pen'] and saved['mug'].shape == (512,)
    with torch.no_grad():
        cat = world['model'].backbone.forward_text([['cat']])[0, 0]
    torch.testing.assert_close(saved['cat'], cat)  # the text class: CLIP's text embedding
    direct = image_prompts_from(str(tmp_path / 'crops'), vision_dir)
    torch.testing.assert_close(saved['mug'], direct['mug'])

    demo = _load_script('demo', 'yolo_world_demo.py')
    common = [world['img'], world['config'], world['ckpt'], '--score-thr', '0.05', '--topk', '10']
    demo.main(common + ['--texts', 'dog', '--image-prompts', out, '--out-dir', str(tmp_path / 'a')])
    demo.main(
        common
        + [
            '--texts',
            'dog',
            '--image-prompts',
            str(tmp_path / 'crops'),
            '--vision-model',
            vision_dir,
            '--out-dir',
            str(tmp_path / 'b'),
        ]
    )
    a = json.load(open(tmp_path / 'a' / 'scene.json'))
    b = json.load(open(tmp_path / 'b' / 'scene.json'))
    assert len(a) == len(b) == 10
    assert {d['text'] for d in a} <= {'dog', 'cat', 'mug', 'pen'}
    ref = inference_detector(
        world['model'], world['img'], texts=['dog', 'cat', 'mug', 'pen'], prompt_embeddings=saved
    ).pred_instances
    for x, y in zip(a, b):
        assert x['text'] == y['text'] and x['score'] == pytest.approx(y['score'], abs=1e-5)
    assert a[0]['score'] == pytest.approx(float(ref.scores.max()), abs=1e-6)

    # a class named as a text and as an image prompt; a missing vision tower
    assert (
        demo.cli(
            common + ['--texts', 'mug,dog', '--image-prompts', out, '--out-dir', str(tmp_path)]
        )
        == 1
    )
    assert "['mug'] named both as texts and as image prompts" in capsys.readouterr().err
    missing = str(tmp_path / 'no_such_clip')
    assert (
        demo.cli(
            common
            + [
                '--image-prompts',
                str(tmp_path / 'crops'),
                '--vision-model',
                missing,
                '--out-dir',
                str(tmp_path),
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert (
        'cannot load the CLIP image tower' in err
        and 'hf download openai/clip-vit-base-patch32' in err
    )


def test_generate_image_prompts_bad_input_is_one_line(tmp_path, capsys):
    gen = _load_script('tools', 'misc', 'generate_image_prompts.py')
    missing = str(tmp_path / 'no_prompts')
    assert gen.cli([missing, '--vision-model', 'x', '--out', str(tmp_path / 'p.pt')]) == 1
    assert capsys.readouterr().err == f'error: image prompts {missing}: no such file or folder\n'
    assert not (tmp_path / 'p.pt').exists()
