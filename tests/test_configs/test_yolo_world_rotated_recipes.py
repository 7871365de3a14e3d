"""Every config in configs/yolo_world_rotated/ resolves, builds and trains, at tiny size.

Parametrized over the folder (a new file is covered without editing this module). For each:

- it resolves through ``ai4rs.utils.config.load_config`` and is consistent with itself: the
  class-text files have one entry per class of the dataset they are given to, the training
  class count is the same in the detector, the head, the assigner and ``RandomLoadText``, the
  test class count is the validation dataset's, and ``RandomRotate``'s 90-degree-only labels
  name exactly the round classes (storage-tank, roundabout) among the training classes;
- a DOTA recipe builds upstream YOLO-World v2's network of its size: every weight of the
  matching upstream checkpoint (tests/data/yolo_world_v2_state_dict_keys.json, the text
  model aside) with upstream's shape, plus the angle branch only, and its ``load_from`` names
  that checkpoint;
- its model is built by mmengine's Runner (ai4rs' ``build_runner``) with a tiny random CLIP of
  the recipe's text width (512), trains ONE iteration on two generated DOTA-format images
  (96 px label files and PNGs written here) through its own train pipeline, with finite
  losses, and validates them with its own evaluator.

Changed from each config for the run (nothing else): data root (and, for the quick start,
its class-text file, which lives under the data root), batch 2, no workers, every image scale
``(1024, 1024)`` / ``(256, 256)`` -> ``(64, 64)`` and ``(2048, 2048)`` -> ``(128, 128)`` (so
the random resize / crop / pad keep their proportions), ``load_from=None``, one epoch with
validation at its end and no checkpoint, score threshold 0 (an untrained head's scores are
~1e-4, below the recipes' 0.01, and DOTAMetric needs detections), a fixed seed. Widths and
depths are the recipes' own (at 64 px even the L network trains one step in about a second).

The base / novel protocol recipe is also checked against the hand-written split: no sample of
its training set holds a novel box or a novel text (the label files written here hold both),
validation is on all 15 DOTA-v1.0 classes with their full texts, and the evaluator is
DOTAMetric with the 11 base and 4 novel classes, reporting dota/mAP_base and dota/mAP_novel.

The quick-start config is checked to be driven by its top-level settings: a copy whose
``data_root``, ``classes``, ``num_classes``, ``img_scale``, ... lines are edited resolves to a
config in which every place that depends on them follows.

Planted bugs these tests were checked to fail on (one at a time, then reverted):

- the base / novel recipe's ``RandomRotate`` keeping the 15-class ``rect_obj_labels=[9, 11]``,
  or its assigner keeping 15 classes: ``test_config_resolves_and_is_consistent``;
- its training set given the 15-class text file: that test and the base / novel test;
- its ``ignore_classes`` left out, its ``class_groups`` left out, or two entries of
  dota_v1_base_class_texts.json swapped (plane / baseball diamond):
  ``test_base_novel_recipe_trains_on_base_classes_and_evaluates_all``;
- the M recipe's head left at the S width, or its neck's attention heads at S's:
  ``test_recipe_network_is_upstream_v2_of_its_size_plus_the_angle_branch``;
- the quick start's ``RandomLoadText`` with a literal ``max_num_samples=3``:
  ``test_quickstart_follows_its_top_level_settings``.
"""

import ast
import glob
import json
import math
import os.path as osp
import random
from pprint import pformat

import cv2
import numpy as np
import pytest
from mmengine.config import Config
from mmengine.hooks import Hook

from ai4rs.datasets import DOTADataset, load_class_texts
from ai4rs.utils.config import load_config
from tests.conftest import DATA_DIR, REPO_ROOT

pytest.importorskip('transformers')

CONFIG_DIR = osp.join(REPO_ROOT, 'configs', 'yolo_world_rotated')
CONFIGS = sorted(glob.glob(osp.join(CONFIG_DIR, '*.py')))
QUICKSTART = osp.join(CONFIG_DIR, 'yolo_world_rotated_quickstart_synthetic.py')
BASE_NOVEL = osp.join(
    CONFIG_DIR, 'yolo_world_rotated_v2_s_vlpan_bn_2e-4_36e_dota_base_novel_le90.py'
)
SCALES = {1024: 64, 2048: 128, 256: 64}
IMG = 96

# written out by hand: DOTA-v1.0's classes and their words in dota_v1_class_texts.json
DOTA_V1 = {
    'plane': 'plane',
    'baseball-diamond': 'baseball diamond',
    'bridge': 'bridge',
    'ground-track-field': 'ground track field',
    'small-vehicle': 'small vehicle',
    'large-vehicle': 'large vehicle',
    'ship': 'ship',
    'tennis-court': 'tennis court',
    'basketball-court': 'basketball court',
    'storage-tank': 'storage tank',
    'soccer-ball-field': 'soccer ball field',
    'roundabout': 'roundabout',
    'harbor': 'harbor',
    'swimming-pool': 'swimming pool',
    'helicopter': 'helicopter',
}
NOVEL = ('tennis-court', 'storage-tank', 'harbor', 'helicopter')
BASE = tuple(c for c in DOTA_V1 if c not in NOVEL)
# the classes rotated by multiples of 90 degrees only (round objects)
ROUND = {'storage-tank', 'roundabout'}
# (cx, cy, w, h, angle in degrees, class): each image has base and novel objects; every
# centre is unique
OBJECTS = {
    'P0001': [
        (20, 20, 16, 8, 30, 'small-vehicle'),
        (60, 24, 30, 16, -20, 'tennis-court'),
        (30, 66, 26, 26, 0, 'roundabout'),
        (72, 70, 28, 14, 45, 'harbor'),
    ],
    'P0002': [
        (26, 30, 28, 24, 15, 'plane'),
        (70, 26, 18, 18, 0, 'storage-tank'),
        (48, 72, 34, 10, -35, 'ship'),
        (80, 78, 14, 12, 60, 'helicopter'),
    ],
}


def upstream_name(path: str) -> str | None:
    """The upstream YOLO-World v2 COCO recipe whose network a DOTA recipe is (None for the
    quick start)."""
    name = osp.splitext(osp.basename(path))[0]
    if 'quickstart' in name:
        return None
    size = name.split('_')[4]  # yolo_world_rotated_v2_{s,m,l}_...
    return f'yolo_world_v2_{size}_vlpan_bn_2e-4_80e_8gpus_mask-refine_finetune_coco'


def dataset_classes(dataset_cfg) -> tuple[str, ...]:
    """The classes of a ``DOTADataset`` config: its ``metainfo`` ones, else DOTA-v1.0's."""
    assert dataset_cfg.type == 'DOTADataset'
    meta = dataset_cfg.get('metainfo') or {}
    return tuple(meta.get('classes', DOTADataset.METAINFO['classes']))


def transforms_of(pipeline, name):
    return [t for t in pipeline if t['type'] == name]


def rescaled(node):
    """A copy of a config node with every image scale ``(s, s)`` of :data:`SCALES` shrunk."""
    if isinstance(node, dict):
        return {k: rescaled(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        if len(node) == 2 and node[0] == node[1] and node[0] in SCALES:
            return type(node)((SCALES[node[0]],) * 2)
        return type(node)(rescaled(v) for v in node)
    return node


def rotated_polygon(cx, cy, w, h, angle):
    return [float(v) for v in cv2.boxPoints(((cx, cy), (w, h), angle)).reshape(-1)]


def write_split(folder, objects_per_image):
    """``folder/images/{id}.png`` (IMG x IMG) and ``folder/annfiles/{id}.txt`` (DOTA format)."""
    (folder / 'images').mkdir(parents=True)
    (folder / 'annfiles').mkdir()
    rng = np.random.default_rng(0)
    for img_id, objects in objects_per_image.items():
        img = rng.integers(60, 120, (IMG, IMG, 3), dtype=np.uint8)
        lines = ['imagesource:GoogleEarth', 'gsd:0.5']
        for i, (cx, cy, w, h, angle, name) in enumerate(objects):
            poly = rotated_polygon(cx, cy, w, h, angle)
            colour = (40 * i % 255, 200, 255 - 50 * i)
            cv2.fillPoly(img, [np.round(np.reshape(poly, (4, 2))).astype(np.int32)], colour)
            lines.append(' '.join(f'{v:.3f}' for v in poly) + f' {name} 0')
        cv2.imwrite(str(folder / 'images' / f'{img_id}.png'), img)
        (folder / 'annfiles' / f'{img_id}.txt').write_text('\n'.join(lines) + '\n')


def write_data(root, classes=None):
    """The two images under every split a config may read (train, val, trainval); with
    ``classes`` (the quick start's), the objects are renamed to them in turn, and
    ``texts/class_texts.json`` holds them."""
    objects = OBJECTS
    if classes is not None:
        objects = {
            k: [o[:5] + (classes[i % len(classes)],) for i, o in enumerate(v)]
            for k, v in OBJECTS.items()
        }
        (root / 'texts').mkdir(parents=True)
        (root / 'texts' / 'class_texts.json').write_text(json.dumps([[c] for c in classes]))
    for split in ('train', 'val', 'trainval'):
        write_split(root / split, objects)
    return objects


# ------------------------------------------------------------------- resolving
@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: osp.basename(p)[:-3])
def test_config_resolves_and_is_consistent(path):
    cfg = load_config(path)
    train_set, val_set = cfg.train_dataloader.dataset, cfg.val_dataloader.dataset
    assert (train_set.type, val_set.type) == ('MultiModalDataset', 'MultiModalDataset')
    train_classes = dataset_classes(train_set.dataset)
    val_classes = dataset_classes(val_set.dataset)
    if 'quickstart' not in path:  # its text file is written with its data
        assert len(load_class_texts(train_set.class_text_path)) == len(train_classes)
        assert len(load_class_texts(val_set.class_text_path)) == len(val_classes)
    model = cfg.model
    assert model.type == 'YOLOWorldDetector'
    assert model.bbox_head.type == 'RotatedYOLOWorldHead'
    assert model.test_cfg.nms.type == 'nms_rotated'
    num_train = len(train_classes)
    assert model.num_train_classes == num_train
    assert model.bbox_head.head_module.num_classes == num_train
    assert model.train_cfg.assigner.num_classes == num_train
    assert model.num_test_classes == len(val_classes)
    pipelines = [cfg.train_pipeline]
    switch = [h for h in cfg.custom_hooks if h.type == 'PipelineSwitchHook']
    pipelines += [h.switch_pipeline for h in switch]
    for pipeline in pipelines:
        (load_text,) = transforms_of(pipeline, 'RandomLoadText')
        assert load_text.max_num_samples == num_train
        for rotate in transforms_of(pipeline, 'RandomRotate'):
            assert all(0 <= i < num_train for i in rotate.rect_obj_labels), rotate
            named = {train_classes[i] for i in rotate.rect_obj_labels}
            assert named == ROUND & set(train_classes), rotate.rect_obj_labels
    # the text model is the recipes' CLIP ViT-B/32 (512-d text embeddings)
    assert model.bbox_head.head_module.embed_dims == 512
    assert model.neck.guide_channels == 512
    if upstream_name(path) is not None:
        assert osp.basename(cfg.load_from) == upstream_name(path) + '.pth'
        assert cfg.test_evaluator.type == 'DOTAMetric'


@pytest.mark.parametrize(
    'path', [p for p in CONFIGS if upstream_name(p)], ids=lambda p: osp.basename(p)[:-3]
)
def test_recipe_network_is_upstream_v2_of_its_size_plus_the_angle_branch(path, tiny_clip_dir):
    from ai4rs.registry import MODELS
    from ai4rs.utils import register_all_modules

    register_all_modules(init_default_scope=False)
    cfg = load_config(path)
    cfg.model.backbone.text_model.model_name = tiny_clip_dir
    model = MODELS.build(cfg.model)
    with open(osp.join(DATA_DIR, 'yolo_world_v2_state_dict_keys.json')) as f:
        ref = json.load(f)[upstream_name(path)]
    ref.pop('_params')
    text = 'backbone.text_model.'
    ref = {k: v for k, v in ref.items() if not k.startswith(text)}
    ours = {k: list(v.shape) for k, v in model.state_dict().items() if not k.startswith(text)}
    assert {k: ours.get(k) for k in ref} == ref
    new = sorted(set(ours) - set(ref))
    assert new and all(k.startswith('bbox_head.head_module.ang_preds.') for k in new), new
    assert len(new) == 42  # 3 levels x (2 ConvModules (conv + 5 bn) + a conv weight and bias)


# ------------------------------------------------------------------- one iteration
class Recorder(Hook):
    priority = 'LOWEST'

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.outputs = {k: float(v.detach()) for k, v in outputs.items()}
        self.batch = data_batch

    def after_val_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.predictions = getattr(self, 'predictions', []) + list(outputs)

    def after_val_epoch(self, runner, metrics=None):
        self.metrics = dict(metrics)


def tiny_config(path, data_root, clip_dir, work_dir) -> Config:
    """The config at ``path`` with only the changes listed in the module docstring."""
    cfg = load_config(path)
    old_root = cfg.data_root
    cfg.work_dir = work_dir
    cfg.load_from = None
    cfg.model.backbone.text_model.model_name = clip_dir
    for key in ('train_dataloader', 'val_dataloader'):
        loader = cfg[key]
        loader.batch_size = 2
        loader.num_workers = 0
        loader.persistent_workers = False
        loader.pin_memory = False
        loader.dataset.dataset.data_root = data_root
        if loader.dataset.class_text_path.startswith(old_root):
            rest = loader.dataset.class_text_path[len(old_root) :]
            loader.dataset.class_text_path = osp.join(data_root, rest)
        cfg[key] = rescaled(loader.to_dict())
    cfg.custom_hooks = rescaled([h.to_dict() for h in cfg.custom_hooks])
    cfg.train_cfg.max_epochs = 1
    cfg.train_cfg.val_interval = 1
    cfg.train_cfg.dynamic_intervals = None
    cfg.default_hooks.checkpoint.save_last = False
    cfg.model.test_cfg.score_thr = 0.0
    cfg.randomness = dict(seed=0)
    cfg.visualizer.name = f'visualizer:{work_dir}'  # mmengine keeps one instance per name
    return cfg


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: osp.basename(p)[:-3])
def test_config_trains_one_iteration_and_validates(path, tiny_clip_dir, tmp_path, monkeypatch):
    from ai4rs.engine.runner import build_runner
    from ai4rs.utils import register_all_modules

    # the config text (yapf-formatted by mmengine, seconds per Runner) is not under test
    monkeypatch.setattr(Config, 'pretty_text', property(lambda self: pformat(self.to_dict())))
    register_all_modules(init_default_scope=False)
    recipe = load_config(path)
    quick = 'quickstart' in path
    data_root = str(tmp_path / 'data') + '/'
    write_data(tmp_path / 'data', classes=recipe.classes if quick else None)
    cfg = tiny_config(path, data_root, tiny_clip_dir, str(tmp_path / 'work'))
    for key in ('train_dataloader', 'val_dataloader', 'custom_hooks'):
        assert not any(str(s) in str(cfg[key]) for s in SCALES), f'{key} keeps a full scale'
    runner = build_runner(cfg)
    recorder = Recorder()
    runner.register_hook(recorder)
    runner.train()

    assert runner.iter == 1
    assert {'loss', 'loss_cls', 'loss_bbox', 'loss_dfl'} <= set(recorder.outputs)
    assert all(math.isfinite(v) for v in recorder.outputs.values()), recorder.outputs
    # the batch the train pipeline produced: tiny images, one prompt per training class
    num_train = recipe.model.num_train_classes
    inputs, samples = recorder.batch['inputs'], recorder.batch['data_samples']
    assert len(samples) == 2
    for img, sample in zip(inputs, samples):
        assert tuple(img.shape[1:]) == (64, 64)
        assert len(sample.texts) == num_train
        assert sample.gt_instances.bboxes.tensor.shape[1] == 5  # RotatedBoxes (cx, cy, w, h, t)
        labels = sample.gt_instances.labels.tolist()
        assert all(sample.texts[lb] != '' for lb in labels)

    # validation on the two images with the config's evaluator and all its test classes
    assert len(recorder.predictions) == 2
    for sample in recorder.predictions:
        pred = sample.pred_instances
        assert 0 < len(pred) and pred.bboxes.shape[1] == 5
        assert set(pred.labels.tolist()) <= set(range(recipe.model.num_test_classes))
    assert 0.0 <= recorder.metrics['dota/mAP'] <= 1.0, recorder.metrics
    if path == BASE_NOVEL:
        assert 0.0 <= recorder.metrics['dota/mAP_base'] <= 1.0
        assert 0.0 <= recorder.metrics['dota/mAP_novel'] <= 1.0


# ------------------------------------------------------------------- base / novel
def test_base_novel_recipe_trains_on_base_classes_and_evaluates_all(tmp_path, tiny_clip_dir):
    from mmengine.registry import DefaultScope

    from ai4rs.registry import DATASETS, METRICS
    from ai4rs.utils import register_all_modules

    register_all_modules(init_default_scope=False)
    cfg = load_config(BASE_NOVEL)
    assert tuple(cfg.base_classes) == BASE and tuple(cfg.novel_classes) == NOVEL
    data_root = str(tmp_path) + '/'
    write_data(tmp_path)

    # the training set with the recipe's load + text steps and its flip switched off (boxes
    # stay where written, so each packed box is traced back to its label line by its centre)
    train = cfg.train_dataloader.dataset.to_dict()
    train['dataset']['data_root'] = data_root
    steps = ('LoadImageFromFile', 'LoadAnnotations', 'ConvertBoxType', 'RandomFlip')
    steps += ('RandomLoadText', 'PackDetInputs')
    train['pipeline'] = [t for t in train['pipeline'] if t['type'] in steps]
    assert [t['type'] for t in train['pipeline']] == list(steps)
    train['pipeline'][3]['prob'] = 0.0
    base_words = sorted(DOTA_V1[c] for c in BASE)
    random.seed(0)
    with DefaultScope.overwrite_default_scope('ai4rs'):
        ds = DATASETS.build(train)
        assert len(ds) == 2
        for _ in range(2):
            for idx in range(len(ds)):
                sample = ds[idx]['data_samples']
                # every base class is prompted (positives + negatives), no novel text
                assert sorted(sample.texts) == base_words
                centres = sample.gt_instances.bboxes.tensor[:, :2].tolist()
                labels = sample.gt_instances.labels.tolist()
                got = sorted(
                    (round(cx), round(cy), sample.texts[lb])
                    for (cx, cy), lb in zip(centres, labels)
                )
                expected = sorted(
                    (o[0], o[1], DOTA_V1[o[5]]) for o in OBJECTS[sample.img_id] if o[5] in BASE
                )
                assert got == expected

        # validation: all 15 classes, the full DOTA-v1.0 texts in class order
        val = cfg.val_dataloader.dataset.to_dict()
        val['dataset']['data_root'] = data_root
        val_ds = DATASETS.build(val)
        assert val_ds.metainfo['classes'] == tuple(DOTA_V1)
        sample = val_ds[0]['data_samples']
        assert sample.texts == [DOTA_V1[c] for c in DOTA_V1]
        assert sorted(sample.gt_instances.labels.tolist()) == sorted(
            list(DOTA_V1).index(o[5]) for o in OBJECTS[sample.img_id]
        )

        metric = METRICS.build(cfg.val_evaluator)
    assert type(metric).__name__ == 'DOTAMetric'
    metric.dataset_meta = val_ds.metainfo
    assert {k: tuple(v) for k, v in metric.class_groups.items()} == dict(base=BASE, novel=NOVEL)
    assert cfg.model.num_train_classes == 11 and cfg.model.num_test_classes == 15


# ------------------------------------------------------------------- the quick start
def edited_copy(path: str, dest, values: dict) -> str:
    """A copy of the config at ``path`` in ``dest`` with the top-level assignments of the
    names in ``values`` replaced (the rest of the file as it is; ``_base_`` made absolute)."""
    with open(path) as f:
        text = f.read()
    lines = text.splitlines(keepends=True)
    tree = ast.parse(text)
    values = dict(values, _base_=[osp.join(osp.dirname(path), b) for b in load_bases(tree)])
    edits = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name in values:
                edits[name] = (node.lineno - 1, node.end_lineno)
    assert set(edits) == set(values), f'not assigned at the top level: {set(values) - set(edits)}'
    for name, (start, end) in sorted(edits.items(), key=lambda e: -e[1][0]):
        lines[start:end] = [f'{name} = {values[name]!r}\n']
    out = dest / osp.basename(path)
    out.write_text(''.join(lines))
    return str(out)


def load_bases(tree) -> list[str]:
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], 'id', '') == '_base_':
            value = ast.literal_eval(node.value)
            return [value] if isinstance(value, str) else list(value)
    return []


def test_quickstart_follows_its_top_level_settings(tmp_path):
    """Editing the quick start's settings at the top of the file (a copy of it) changes every
    place that depends on them: data paths, class texts, classes and class counts, image
    scale, batch size, epochs and width."""
    root = 'my_data/'
    classes = ('car', 'tank')
    path = edited_copy(
        QUICKSTART,
        tmp_path,
        dict(
            data_root=root,
            classes=classes,
            num_classes=2,
            img_scale=(320, 192),
            max_epochs=3,
            train_batch_size_per_gpu=4,
            widen_factor=0.125,
        ),
    )
    cfg = load_config(path)
    assert cfg.class_text_path == root + 'texts/class_texts.json'
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dataset = cfg[key].dataset
        assert dataset.dataset.data_root == root
        assert dataset.class_text_path == root + 'texts/class_texts.json'
        assert tuple(dataset.dataset.metainfo['classes']) == classes
        for resize in transforms_of(dataset.pipeline, 'Resize'):
            assert tuple(resize.scale) == (320, 192)
    assert cfg.train_dataloader.batch_size == 4
    assert cfg.optim_wrapper.optimizer.batch_size_per_gpu == 4
    model = cfg.model
    assert (model.num_train_classes, model.num_test_classes) == (2, 2)
    assert model.bbox_head.head_module.num_classes == 2
    assert model.train_cfg.assigner.num_classes == 2
    (load_text,) = transforms_of(cfg.train_pipeline, 'RandomLoadText')
    assert (tuple(load_text.num_neg_samples), load_text.max_num_samples) == ((2, 2), 2)
    widths = (
        model.backbone.image_model.widen_factor,
        model.neck.widen_factor,
        model.bbox_head.head_module.widen_factor,
    )
    assert widths == (0.125,) * 3
    assert cfg.train_cfg.max_epochs == 3
    assert cfg.default_hooks.param_scheduler.max_epochs == 3
    assert cfg.default_hooks.checkpoint.interval == 3
