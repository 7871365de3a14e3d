"""Reparameterized YOLO-World: a tiny YOLO-World v2 (tests/yolo_world_builders.py, tiny CLIP)
folded by tools/model_converters/reparameterize_yolo_world.py into the Rep layers
(RepConvMaxSigmoidCSPLayerWithTwoConv, RepYOLOWorldHeadModule) of a SimpleYOLOWorldDetector
with no text model: the written checkpoint loads with strict keys, and the raw head outputs
and the detections equal the original model's given the same texts (<= 1e-4), with the v2 BN
head and the v1 L2 head, with and without the neck's learnable attention ``scale``. Bad
input (texts of another width, a checkpoint that is not YOLO-World) ends in one error line.
The S / M / L Rep configs resolve and build; S runs a forward pass and a training step on
generated COCO data through its own pipeline.

Planted bugs these tests were checked to fail on (one at a time, then reverted), all caught by
``test_rep_model_equals_original_with_those_texts``: the head conv weight without
``exp(logit_scale)``; the guide convs without the ``sqrt(out / embed)`` factor; the attention
``scale`` not folded into ``project_conv``'s BN (the ``with_scale`` case); the heads' guide convs
in reverse order; ``RepBNContrastiveHead`` without its BN; ``RepContrastiveHead`` without its L2
norm. ``YOLOv5DetDataPreprocessor`` still requiring texts fails the training-step test.
"""

import copy
import importlib.util
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from ai4rs.structures import DetDataSample
from tests.conftest import REPO_ROOT

pytest.importorskip('transformers')

SCRIPT = osp.join(REPO_ROOT, 'tools', 'model_converters', 'reparameterize_yolo_world.py')
TEXTS = ['cat', 'dog', 'bird', 'red car']
SIZE = 64
META = dict(
    img_shape=(SIZE, SIZE),
    ori_shape=(SIZE, SIZE),
    scale_factor=(1.0, 1.0),
    pad_param=[0.0, 0.0, 0.0, 0.0],
    batch_input_shape=(SIZE, SIZE),
)
REP_CONFIGS = {
    k: osp.join(
        REPO_ROOT,
        'configs',
        'yolo_world_v2',
        f'yolo_world_v2_{k}_rep_vlpan_bn_2e-4_80e_8gpus_mask-refine_finetune_coco.py',
    )
    for k in 'sml'
}


def load_tool():
    spec = importlib.util.spec_from_file_location('reparameterize_yolo_world_tool', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def original_cfg(clip_dir, use_bn_head: bool = True, with_scale: bool = False) -> dict:
    from tests.yolo_world_builders import tiny_detector_cfg

    cfg = tiny_detector_cfg(clip_dir, num_train_classes=len(TEXTS), score_thr=0.0)
    cfg['neck']['block_cfg'] = dict(type='MaxSigmoidCSPLayerWithTwoConv', with_scale=with_scale)
    # 2 to 4 heads and attention widths (8, 16) other than the blocks' (32, 16), as in the real
    # sizes (v2-S: 64 vs 128): the Rep block's sqrt(out / M) differs from sqrt(embed / M)
    cfg['neck'].update(embed_channels=[64, 128, 64], num_heads=[16, 32, 16])
    cfg['bbox_head']['head_module']['use_bn_head'] = use_bn_head
    return cfg


def rep_cfg(orig: dict, num_texts: int) -> dict:
    """The Rep form of a YOLO-World model config, as the *_rep_* configs change theirs."""
    cfg = copy.deepcopy(orig)
    cfg.update(type='SimpleYOLOWorldDetector', reparameterized=True)
    cfg['num_train_classes'] = cfg['num_test_classes'] = num_texts
    cfg['data_preprocessor']['type'] = 'YOLOv5DetDataPreprocessor'
    cfg['backbone'].update(text_model=None, with_text_model=False)
    cfg['neck']['guide_channels'] = num_texts
    cfg['neck']['block_cfg']['type'] = 'RepConvMaxSigmoidCSPLayerWithTwoConv'
    cfg['bbox_head']['head_module'].update(type='RepYOLOWorldHeadModule', num_guide=num_texts)
    cfg['train_cfg']['assigner']['num_classes'] = num_texts
    return cfg


def build(cfg: dict, seed: int = 0):
    from ai4rs.registry import MODELS
    from ai4rs.utils import register_all_modules

    register_all_modules(init_default_scope=False)
    torch.manual_seed(seed)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def randomize(det, seed: int = 1) -> None:
    """Make every parameter that the fold touches non-trivial: BN statistics and affine,
    contrast scale and bias, attention biases and scales, guide projections."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in det.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
        for name, p in det.named_parameters():
            if 'text_model' in name:
                continue
            if name.endswith(('logit_scale', 'attn_block.bias', 'attn_block.scale')):
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
            elif 'cls_contrasts' in name and name.endswith('.bias'):
                p.fill_(-1.5)
            elif 'guide_fc' in name:
                p.copy_(torch.randn(p.shape, generator=g))
        # boxes of a few strides (distribution peak at bin 1), not all the whole 64 px input:
        # else NMS compares equal boxes and float rounding decides which one it keeps
        for reg in det.bbox_head.head_module.reg_preds:
            reg[-1].weight.mul_(0.1)
            reg[-1].bias.copy_(torch.tensor([0.0, 6.0] + [0.0] * 14).repeat(4))


def write_original(tmp_path, clip_dir, **kwargs):
    """(config path, checkpoint path, model) of a randomized tiny YOLO-World v2."""
    cfg = original_cfg(clip_dir, **kwargs)
    det = build(cfg)
    randomize(det)
    det.eval()
    config_path = str(tmp_path / 'orig.py')
    ckpt_path = str(tmp_path / 'orig.pth')
    Config(dict(model=cfg)).dump(config_path)
    state = det.state_dict()
    ckpt = {'state_dict': state, 'meta': {'epoch': 3}, 'ema_state_dict': dict(state)}
    torch.save(ckpt, ckpt_path)
    return config_path, ckpt_path, det, cfg


def convert(args: list[str]) -> int:
    return load_tool().main(args)


def load_rep(cfg: dict, ckpt_path: str):
    from ai4rs.utils.checkpoint import load_checkpoint_safely

    rep = build(rep_cfg(cfg, len(TEXTS)), seed=5)
    state = load_checkpoint_safely(ckpt_path)['state_dict']
    rep.load_state_dict(state, strict=True)
    return rep.eval()


def images(n: int = 2, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, SIZE, SIZE, generator=g)


def samples(n: int, texts=None) -> list:
    out = []
    for _ in range(n):
        s = DetDataSample(metainfo=dict(META))
        if texts is not None:
            s.texts = list(texts)
        out.append(s)
    return out


def assert_same_outputs(det, rep, atol: float = 1e-4) -> None:
    x = images()
    with torch.no_grad():
        txt = det.backbone.forward_text([TEXTS])
        # the neck's attention path, block by block on unit-scale inputs (in the whole
        # untrained network the texts move the features by ~1e-3 only)
        g = torch.Generator().manual_seed(2)
        other = det.backbone.forward_text([['sky', 'sea', 'x', 'y']])
        blocks_o = {n: m for n, m in det.neck.named_modules() if n.endswith('attn_block')}
        blocks_r = {n: m for n, m in rep.neck.named_modules() if n.endswith('attn_block')}
        assert len(blocks_o) == len(blocks_r) == 4
        for name, block in blocks_o.items():
            channels = block.project_conv.conv.in_channels
            feat = torch.randn(2, channels, 8, 8, generator=g)
            out_o = block(feat, txt.expand(2, -1, -1))
            torch.testing.assert_close(blocks_r[name](feat), out_o, atol=atol, rtol=0)
            # the texts matter: a fold that ignored them would not pass
            assert (block(feat, other.expand(2, -1, -1)) - out_o).abs().max() > 100 * atol
        neck_o = det.neck(det.backbone.forward_image(x), txt.expand(2, -1, -1))
        neck_r = rep.neck(det.backbone.forward_image(x), None)
        for a, b in zip(neck_o, neck_r):
            torch.testing.assert_close(b, a, atol=atol, rtol=0)
        cls_o, box_o = det.forward_with_text_feats(x, txt)
        cls_r, box_r = rep._forward(x)
        for a, b in zip(cls_o, cls_r):
            assert a.shape == b.shape == (2, len(TEXTS)) + a.shape[2:]
            torch.testing.assert_close(b, a, atol=atol, rtol=0)
        for a, b in zip(box_o, box_r):
            torch.testing.assert_close(b, a, atol=atol, rtol=0)
        # the logits vary over cells and texts: a comparison of constants would prove little
        assert torch.cat([c.flatten() for c in cls_o]).std() > 0.05
        pred_o = det.predict(x, samples(2, TEXTS))
        pred_r = rep.predict(x, samples(2))
    for po, pr in zip(pred_o, pred_r):
        io, ir = po.pred_instances, pr.pred_instances
        assert len(io) > 10 and len(io) == len(ir)
        # scores equal to ~1e-7 may sort either way: compare the detections as sets
        rows_o, rows_r = detection_rows(io), detection_rows(ir)
        torch.testing.assert_close(rows_r, rows_o, atol=1e-3, rtol=0)


def detection_rows(inst) -> torch.Tensor:
    """(N, 6) [label, x1, y1, x2, y2, score] sorted by label, then box."""
    rows = torch.cat([inst.labels[:, None].float(), inst.bboxes.tensor, inst.scores[:, None]], 1)
    for col in (4, 3, 2, 1, 0):  # stable sorts: the last key sorted is the first
        rows = rows[torch.sort(rows[:, col].round(decimals=2), stable=True).indices]
    return rows


@pytest.mark.parametrize(
    'use_bn_head,with_scale,source',
    [(True, False, 'config'), (True, True, 'embeddings'), (False, False, 'config')],
)
def test_rep_model_equals_original_with_those_texts(
    tmp_path, tiny_clip_dir, use_bn_head, with_scale, source
):
    """Converted with the config's text model, or from a saved embeddings file; strict load;
    raw outputs, the neck's attention blocks and the detections equal."""
    config_path, ckpt_path, det, cfg = write_original(
        tmp_path, tiny_clip_dir, use_bn_head=use_bn_head, with_scale=with_scale
    )
    out = str(tmp_path / 'rep.pth')
    if source == 'config':
        args = [ckpt_path, '--texts', ','.join(TEXTS), '--config', config_path, '--out', out]
    else:
        with torch.no_grad():
            embeds = det.backbone.forward_text([TEXTS])[0]
        emb_path = str(tmp_path / 'texts.pt')
        torch.save({t: e.clone() for t, e in zip(TEXTS, embeds)}, emb_path)
        args = ['--model', ckpt_path, '--texts', emb_path, '--out', out]
    assert convert(args) == 0
    saved = torch.load(out, weights_only=True)
    assert saved['meta']['epoch'] == 3
    assert sorted(saved) == ['meta', 'state_dict']  # no stale training state (EMA copy)
    assert saved['meta']['reparameterized_texts'] == TEXTS
    assert not any('text_model' in k for k in saved['state_dict'])
    rep = load_rep(cfg, out)
    assert rep.backbone.text_model is None
    blocks = [m for n, m in rep.neck.named_modules() if n.endswith('attn_block')]
    assert any(b.split_channels != b.head_channels and b.num_heads > 1 for b in blocks)
    assert_same_outputs(det, rep)


def test_out_dir_names_the_checkpoint_as_upstream(tmp_path, tiny_clip_dir):
    """``--out-dir`` with upstream's ``--text-embed`` (a (K, D) .npy in --texts order)."""
    import numpy as np

    config_path, ckpt_path, det, cfg = write_original(tmp_path, tiny_clip_dir)
    with torch.no_grad():
        embeds = det.backbone.forward_text([TEXTS])[0].numpy()
    np.save(tmp_path / 'texts.npy', embeds)
    txt = tmp_path / 'texts.txt'
    txt.write_text('\n'.join(TEXTS) + '\n')
    out_dir = tmp_path / 'out'
    args = [ckpt_path, '--texts', str(txt), '--text-embed', str(tmp_path / 'texts.npy')]
    assert convert([*args, '--out-dir', str(out_dir), '--conv-neck']) == 0
    rep = load_rep(cfg, str(out_dir / 'orig_rep_conv.pth'))
    assert_same_outputs(det, rep)


def test_fold_contrastive_head_by_hand():
    """A hand-computed case: texts (3, 4) -> (3,0,0,0)/3 ... times exp(s), bias b."""
    tool = load_tool()
    texts = torch.tensor([[3.0, 0, 0, 4], [0, 2, 0, 0], [1, 1, 1, 1]])
    w, b = tool.fold_contrastive_head(torch.tensor(0.5), torch.tensor(-2.0), texts)
    e = torch.exp(torch.tensor(0.5))
    expected = torch.tensor([[0.6, 0, 0, 0.8], [0, 1, 0, 0], [0.5, 0.5, 0.5, 0.5]]) * e
    torch.testing.assert_close(w[:, :, 0, 0], expected)
    assert w.shape == (3, 4, 1, 1)
    torch.testing.assert_close(b, torch.full((3,), -2.0))


def test_texts_of_another_width_are_refused(tmp_path, tiny_clip_dir, capsys):
    _, ckpt_path, _, _ = write_original(tmp_path, tiny_clip_dir)
    emb_path = str(tmp_path / 'narrow.pt')
    torch.save({t: torch.randn(64) for t in TEXTS}, emb_path)
    out = tmp_path / 'rep.pth'
    assert convert([ckpt_path, '--texts', emb_path, '--out', str(out)]) == 1
    err = capsys.readouterr().err
    assert 'width 64' in err and '512' in err and ckpt_path in err
    assert not out.exists()


def test_a_checkpoint_that_is_not_yolo_world_is_refused(tmp_path, capsys):
    from tests.test_models.yolox_builders import rotated_yolox_cfg

    yolox = build(rotated_yolox_cfg('tiny'))
    ckpt_path = str(tmp_path / 'yolox.pth')
    torch.save({'state_dict': yolox.state_dict()}, ckpt_path)
    emb_path = str(tmp_path / 'texts.pt')
    torch.save({t: torch.randn(512) for t in TEXTS}, emb_path)
    out = tmp_path / 'rep.pth'
    assert convert([ckpt_path, '--texts', emb_path, '--out', str(out)]) == 1
    err = capsys.readouterr().err
    assert 'not a YOLO-World checkpoint' in err and ckpt_path in err
    assert not out.exists()


def test_no_embeddings_source_is_refused(tmp_path, tiny_clip_dir, capsys):
    _, ckpt_path, _, _ = write_original(tmp_path, tiny_clip_dir)
    assert convert([ckpt_path, '--texts', 'a,b', '--out', str(tmp_path / 'r.pth')]) == 1
    assert '--config' in capsys.readouterr().err


def test_a_reparameterized_model_with_a_text_model_is_refused(tiny_clip_dir):
    cfg = rep_cfg(original_cfg(tiny_clip_dir), 3)
    cfg['backbone'].update(original_cfg(tiny_clip_dir)['backbone'], with_text_model=True)
    with pytest.raises(ValueError, match='must be built without a text model'):
        build(cfg)


@pytest.mark.parametrize('size', ['s', 'm', 'l'])
def test_rep_configs_resolve_and_build_without_text_model(size):
    from ai4rs.utils.config import load_config

    cfg = load_config(REP_CONFIGS[size])
    model = cfg.model
    assert model.type == 'SimpleYOLOWorldDetector' and model.reparameterized
    assert model.data_preprocessor.type == 'YOLOv5DetDataPreprocessor'
    assert model.backbone.text_model is None
    assert model.neck.block_cfg.type == 'RepConvMaxSigmoidCSPLayerWithTwoConv'
    assert model.bbox_head.head_module.type == 'RepYOLOWorldHeadModule'
    steps = [t['type'] for t in cfg.train_pipeline]
    assert 'RandomLoadText' not in steps and 'MultiModalMosaic' not in steps
    assert cfg.train_dataloader.dataset.type == 'YOLOv5CocoDataset'
    det = build(model)
    assert det.backbone.text_model is None
    assert not any('text_model' in k for k in det.state_dict())
    # the widths of the non-Rep recipe of the same size
    base = load_config(REP_CONFIGS[size].replace('_rep_vlpan', '_vlpan'))
    assert model.neck.widen_factor == base.model.neck.widen_factor


def test_s_rep_config_forward_and_a_training_step_on_generated_data(tmp_path):
    """The S Rep config (tiny widths) through its own train pipeline (mosaic, mixup, no
    texts) on generated COCO data: losses finite, parameters updated, no text model; then
    inference with its test pipeline."""
    from mmengine.dataset import Compose

    from ai4rs.datasets.preparation.synthetic_coco import CLASSES, generate_dataset
    from ai4rs.registry import DATASETS, FUNCTIONS
    from ai4rs.utils import register_all_modules
    from ai4rs.utils.config import load_config

    register_all_modules(init_default_scope=True)
    data_root = str(tmp_path / 'coco')
    generate_dataset(data_root, 4, 1, 96, 0, 'jpg')
    cfg = load_config(REP_CONFIGS['s'])
    cfg.model.backbone.image_model.widen_factor = 0.125
    cfg.model.neck.widen_factor = 0.125
    cfg.model.bbox_head.head_module.widen_factor = 0.125
    ds_cfg = copy.deepcopy(cfg.train_dataloader.dataset)
    ds_cfg.update(
        data_root=data_root,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        metainfo=dict(classes=CLASSES),
    )
    if importlib.util.find_spec('albumentations') is None:  # optional, not in the tests extra
        ds_cfg.pipeline = [t for t in ds_cfg.pipeline if t['type'] != 'Albu']
    dataset = DATASETS.build(ds_cfg)
    collate = FUNCTIONS.get(cfg.train_dataloader.collate_fn.type)
    batch = collate([dataset[0], dataset[1]])
    det = build(cfg.model)
    det.train()
    data = det.data_preprocessor(batch, True)
    assert data['inputs'].shape[0] == 2
    optim = torch.optim.SGD(det.parameters(), lr=0.01)
    before = det.bbox_head.head_module.cls_contrasts[0].conv.weight.clone()
    losses = det.loss(data['inputs'], data['data_samples'])
    total = sum(v for v in losses.values())
    assert torch.isfinite(total) and total > 0
    total.backward()
    optim.step()
    assert not torch.equal(before, det.bbox_head.head_module.cls_contrasts[0].conv.weight)
    # inference through the config's test pipeline: labels index the 80 baked classes
    det.eval()
    test_pipeline = Compose([t for t in cfg.test_pipeline if t['type'] != 'LoadAnnotations'])
    img_path = dataset.get_data_info(0)['img_path']
    item = test_pipeline(dict(img_path=img_path, img_id=0))
    data = det.data_preprocessor(dict(inputs=[item['inputs']], data_samples=[item['data_samples']]))
    with torch.no_grad():
        (result,) = det.predict(data['inputs'], data['data_samples'])
    labels = result.pred_instances.labels
    assert len(labels) > 0 and int(labels.max()) < 80


def test_rep_checkpoint_runs_through_init_detector_and_inference_detector(tmp_path, tiny_clip_dir):
    """The folded checkpoint with a Rep config file: ``init_detector`` loads it (class names
    from the converter's meta), ``inference_detector`` runs without texts (closed set), and the
    detections equal the original model's given those texts."""
    from ai4rs.apis import inference_detector, init_detector
    from tests.yolo_world_infer_helpers import world_config, write_scene

    config_path, ckpt_path, det, cfg = write_original(tmp_path, tiny_clip_dir)
    out = str(tmp_path / 'rep.pth')
    assert (
        convert([ckpt_path, '--texts', ','.join(TEXTS), '--config', config_path, '--out', out]) == 0
    )
    world = world_config(tiny_clip_dir)
    world.model = cfg
    world.dump(str(tmp_path / 'world.py'))
    rep_world = world_config(tiny_clip_dir)
    rep_world.model = rep_cfg(cfg, len(TEXTS))
    pipeline = rep_world.test_dataloader.dataset.pipeline
    pipeline = [t for t in pipeline if t['type'] != 'LoadText']
    pipeline[-1]['meta_keys'] = tuple(k for k in pipeline[-1]['meta_keys'] if k != 'texts')
    rep_world.test_dataloader.dataset = dict(
        type='YOLOv5CocoDataset', data_root='data/coco/', ann_file='a.json', pipeline=pipeline
    )
    rep_world.dump(str(tmp_path / 'rep_world.py'))
    img = write_scene(tmp_path / 'scene.jpg')

    rep = init_detector(str(tmp_path / 'rep_world.py'), out)
    assert list(rep.dataset_meta['classes']) == TEXTS
    with pytest.raises(ValueError, match='fixed set of classes'):
        inference_detector(rep, img, texts=TEXTS)
    got = inference_detector(rep, img).pred_instances
    orig = init_detector(str(tmp_path / 'world.py'), ckpt_path)
    want = inference_detector(orig, img, texts=TEXTS).pred_instances
    assert len(want) > 10 and len(got) == len(want)
    torch.testing.assert_close(detection_rows(got), detection_rows(want), atol=1e-3, rtol=0)


def test_s_rep_config_loads_a_converted_s_checkpoint_strictly(tmp_path):
    """At the real S size: the non-Rep S recipe's image side and neck / head (text model left
    out, its keys are dropped anyway) converted with 80 texts loads into the S Rep config's
    model with strict keys and equal shapes."""
    from ai4rs.utils.checkpoint import load_checkpoint_safely
    from ai4rs.utils.config import load_config

    base = load_config(REP_CONFIGS['s'].replace('_rep_vlpan', '_vlpan')).model
    base.backbone.text_model = None
    orig = build(base)
    ckpt_path = str(tmp_path / 's.pth')
    torch.save({'state_dict': orig.state_dict(), 'meta': {}}, ckpt_path)
    g = torch.Generator().manual_seed(0)
    emb_path = str(tmp_path / 'coco.pt')
    torch.save({f'class {i}': torch.randn(512, generator=g) for i in range(80)}, emb_path)
    out = str(tmp_path / 's_rep.pth')
    assert convert([ckpt_path, '--texts', emb_path, '--out', out]) == 0
    rep = build(load_config(REP_CONFIGS['s']).model)
    state = load_checkpoint_safely(out)['state_dict']
    rep.load_state_dict(state, strict=True)
    assert state['bbox_head.head_module.cls_contrasts.0.conv.weight'].shape == (80, 512, 1, 1)
