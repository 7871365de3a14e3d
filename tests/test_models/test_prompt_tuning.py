"""Prompt tuning (SimpleYOLOWorldDetector, configs/yolo_world_v2/
yolo_world_v2_quickstart_prompt_tuning.py, tools/misc/export_prompt_embeddings.py):
a tiny quick-start YOLO-World is tuned a few iterations on generated data; only the class
embeddings may change, the exported file must reproduce the tuned model's predictions
and leave every other vocabulary's predictions bit-identical."""

import importlib.util
import os
import os.path as osp

import pytest
import torch

from tests.conftest import REPO_ROOT

CONFIGS = osp.join(REPO_ROOT, 'configs', 'yolo_world_v2')
PT_CONFIG = osp.join(CONFIGS, 'yolo_world_v2_quickstart_prompt_tuning.py')
WORLD_CONFIG = osp.join(CONFIGS, 'yolo_world_v2_quickstart_synthetic.py')
SIZE = 64
# new names for the four generated shapes (class i of the data is row i of the embeddings)
TUNED = ['crimson disc', 'navy box', 'lime wedge', 'gold star']
UNTUNED = ['red circle', 'yellow star', 'green triangle']


def _tool(name: str):
    path = osp.join(REPO_ROOT, 'tools', 'misc', f'{name}.py')
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _small(cfg, data_root: str):
    """Data at ``data_root``, every resize at SIZE px, no worker processes."""
    data_root = osp.join(data_root, '')
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg[key]
        loader.update(num_workers=0, persistent_workers=False)
        loader.dataset.class_text_path = osp.join(data_root, 'texts', 'class_texts.json')
        loader.dataset.dataset.data_root = data_root
        for transform in loader.dataset.pipeline:
            if 'scale' in transform:
                transform['scale'] = (SIZE, SIZE)
    for key in ('val_evaluator', 'test_evaluator'):
        cfg[key].ann_file = osp.join(data_root, 'annotations', 'instances_val.json')
    cfg.model.test_cfg.update(score_thr=0.001, max_per_img=100)
    return cfg


@pytest.fixture(scope='module')
def tuned_run(tiny_clip_dir, tmp_path_factory):
    """(world config, world checkpoint, tuning config, tuned checkpoint, initial
    embeddings file, a held-out image)."""
    from ai4rs.datasets.preparation.synthetic_coco import generate_dataset
    from ai4rs.engine.runner import Runner
    from ai4rs.utils import register_all_modules
    from ai4rs.utils.config import load_config
    from tests.yolo_world_infer_helpers import calibrate_batchnorm, save_model

    tmp = tmp_path_factory.mktemp('prompt_tuning')
    data_root = str(tmp / 'data')
    generate_dataset(data_root, num_train=4, num_val=2, img_size=SIZE)
    val_dir = osp.join(data_root, 'val')
    val_images = [osp.join(val_dir, f) for f in sorted(os.listdir(val_dir))]

    world = _small(load_config(WORLD_CONFIG), data_root)
    world.model.backbone.text_model.model_name = str(tiny_clip_dir)
    world_cfg, world_ckpt = save_model(world, str(tmp), 'world', logit_scale=2.0)
    calibrate_batchnorm(world_cfg, world_ckpt, val_images, UNTUNED + TUNED)

    init_path = str(tmp / 'init_embeddings.pt')
    _tool('generate_text_embeddings').main(
        [str(tiny_clip_dir), '--texts', *TUNED, '--out', init_path]
    )

    register_all_modules(init_default_scope=False)
    cfg = _small(load_config(PT_CONFIG), data_root)
    cfg.load_from = world_ckpt
    cfg.model.embedding_path = init_path
    cfg.model.prompt_texts = TUNED
    cfg.work_dir = str(tmp / 'work')
    cfg.train_dataloader.batch_size = 2
    cfg.train_cfg.update(max_epochs=2, val_interval=3)
    cfg.default_hooks.param_scheduler.max_epochs = 2
    cfg.default_hooks.checkpoint.interval = 2
    cfg.default_hooks.logger.interval = 1
    runner = Runner.from_cfg(cfg)
    runner.train()
    tuned_ckpt = osp.join(cfg.work_dir, 'epoch_2.pth')
    pt_cfg = str(tmp / 'prompt_tuning.py')
    cfg.dump(pt_cfg)
    return dict(
        world_cfg=world_cfg,
        world_ckpt=world_ckpt,
        pt_cfg=pt_cfg,
        tuned_ckpt=tuned_ckpt,
        init=init_path,
        image=val_images[0],
        tmp=tmp,
    )


def _state_dict(path):
    return torch.load(path, map_location='cpu', weights_only=False)['state_dict']


def test_only_the_embeddings_change(tuned_run):
    base = _state_dict(tuned_run['world_ckpt'])
    tuned = _state_dict(tuned_run['tuned_ckpt'])
    others = sorted(set(tuned) - {'embeddings'})
    # the image side is all there (the text model is not part of the tuning model)
    assert others == sorted(k for k in base if not k.startswith('backbone.text_model.'))
    assert any(k.endswith('running_mean') for k in others)
    assert any(k.endswith('num_batches_tracked') for k in others)
    changed = [k for k in others if not torch.equal(tuned[k], base[k])]
    assert changed == []
    init = torch.load(tuned_run['init'], weights_only=True)
    start = torch.stack([init[t] for t in TUNED])
    assert tuned['embeddings'].shape == start.shape
    # every class embedding was trained (the initial values are the texts' CLIP embeddings)
    assert all(not torch.equal(a, b) for a, b in zip(tuned['embeddings'], start))


def test_exported_file_is_the_tuned_classifier(tuned_run):
    from ai4rs.apis import inference_detector, init_detector
    from ai4rs.models.backbones.clip_text import PseudoLanguageBackbone

    out = str(tuned_run['tmp'] / 'tuned.pt')
    # the texts come from the config saved in the checkpoint
    _tool('export_prompt_embeddings').main([tuned_run['tuned_ckpt'], '--out', out])
    table = torch.load(out, weights_only=True)
    assert list(table) == TUNED
    learned = _state_dict(tuned_run['tuned_ckpt'])['embeddings']
    for text, row in zip(TUNED, learned):
        torch.testing.assert_close(table[text], row / row.norm(), rtol=0, atol=1e-7)
    feats = PseudoLanguageBackbone(text_embed_path=out).eval()([TUNED[::-1]])
    assert torch.equal(feats[0], torch.stack([table[t] for t in TUNED[::-1]]))

    # the original network with the file = the tuned detector (eager models: the comparison is
    # at 1e-6; the two models in inference mode differed by 1.3e-5 in one score of 49)
    tuned_model = init_detector(tuned_run['pt_cfg'], tuned_run['tuned_ckpt'], inference_mode=False)
    world = init_detector(tuned_run['world_cfg'], tuned_run['world_ckpt'], inference_mode=False)
    expected = inference_detector(tuned_model, tuned_run['image']).pred_instances
    got = inference_detector(
        world, tuned_run['image'], texts=TUNED, prompt_embeddings=out
    ).pred_instances
    assert len(expected.scores) > 0
    assert torch.equal(got.labels, expected.labels)
    torch.testing.assert_close(got.scores, expected.scores, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got.bboxes.tensor, expected.bboxes.tensor, rtol=1e-5, atol=1e-4)


def test_untuned_vocabulary_is_bit_identical(tuned_run):
    from ai4rs.apis import inference_detector, init_detector

    out = str(tuned_run['tmp'] / 'tuned_untuned_test.pt')
    _tool('export_prompt_embeddings').main(
        [tuned_run['tuned_ckpt'], '--texts', *TUNED, '--out', out]
    )
    before = init_detector(tuned_run['world_cfg'], tuned_run['world_ckpt'])
    # the tuned checkpoint's network in the YOLO-World detector (its text model from CLIP)
    after = init_detector(tuned_run['world_cfg'], tuned_run['tuned_ckpt'], allow_partial_load=True)
    image = tuned_run['image']
    ref = inference_detector(before, image, texts=UNTUNED).pred_instances
    assert len(ref.scores) > 0
    for model, table in ((after, None), (before, out), (after, out)):
        got = inference_detector(model, image, texts=UNTUNED, prompt_embeddings=table)
        got = got.pred_instances
        assert torch.equal(got.bboxes.tensor, ref.bboxes.tensor)
        assert torch.equal(got.scores, ref.scores)
        assert torch.equal(got.labels, ref.labels)
    # a vocabulary with a tuned class is another classifier (sanity: the file is used)
    mixed = inference_detector(before, image, texts=UNTUNED[:1] + TUNED[:1], prompt_embeddings=out)
    plain = inference_detector(before, image, texts=UNTUNED[:1] + TUNED[:1])
    assert not torch.equal(mixed.pred_instances.scores, plain.pred_instances.scores)


def test_bad_embedding_files_are_refused(tuned_run):
    from ai4rs.models.detectors.simple_yolo_world import read_prompt_embeddings
    from ai4rs.registry import MODELS
    from ai4rs.utils.config import load_config

    with pytest.raises(ValueError, match='pink hexagon'):
        read_prompt_embeddings(tuned_run['init'], ['crimson disc', 'pink hexagon'])
    with pytest.raises(FileNotFoundError, match='nowhere.pt'):
        read_prompt_embeddings(str(tuned_run['tmp'] / 'nowhere.pt'))
    cfg = load_config(tuned_run['pt_cfg']).model
    cfg.prompt_texts = TUNED[:3]
    with pytest.raises(ValueError, match=r'\(3, 512\).*\(4, 512\)'):
        MODELS.build(cfg)
    with pytest.raises(ValueError, match='--texts|3 texts'):
        _tool('export_prompt_embeddings').export(
            tuned_run['tuned_ckpt'], str(tuned_run['tmp'] / 'x.pt'), TUNED[:3]
        )
    with pytest.raises(ValueError, match='not a SimpleYOLOWorldDetector'):
        _tool('export_prompt_embeddings').export(
            tuned_run['world_ckpt'], str(tuned_run['tmp'] / 'x.pt'), TUNED
        )


def test_npy_init_adapter_and_export(tuned_run):
    """Upstream's .npy init (rows in class order), ``freeze_prompt`` and the MLP adapter,
    whose output (not the raw embeddings) the export must write."""
    import numpy as np

    from ai4rs.registry import MODELS
    from ai4rs.utils.config import load_config

    rows = torch.nn.functional.normalize(
        torch.randn(4, 512, generator=torch.Generator().manual_seed(3)), dim=-1
    )
    npy = str(tuned_run['tmp'] / 'init.npy')
    np.save(npy, rows.numpy())
    cfg = load_config(tuned_run['pt_cfg']).model
    cfg.update(embedding_path=npy, prompt_texts=None, freeze_prompt=True)
    model = MODELS.build(cfg)
    assert torch.equal(model.embeddings.data, rows)
    assert not model.embeddings.requires_grad and model.prompt_texts is None

    cfg.update(freeze_prompt=False, use_mlp_adapter=True)
    model = MODELS.build(cfg)
    with torch.no_grad():
        for p in model.adapter.parameters():
            p.normal_(0, 0.1, generator=torch.Generator().manual_seed(4))
    ckpt = str(tuned_run['tmp'] / 'adapter.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    out = str(tuned_run['tmp'] / 'adapter.pt')
    # no prompt texts in the checkpoint: --texts is needed
    with pytest.raises(ValueError, match='give --texts'):
        _tool('export_prompt_embeddings').export(ckpt, out)
    table = _tool('export_prompt_embeddings').export(ckpt, out, TUNED)
    expected = model.class_feats(1)[0].detach()
    # the adapter moved the rows: the file is not just the normalised embeddings
    assert not torch.allclose(expected, rows, atol=1e-3)
    got = torch.stack([torch.load(out, weights_only=True)[t] for t in TUNED])
    assert torch.equal(got, torch.stack([table[t] for t in TUNED]))
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
