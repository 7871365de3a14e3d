"""Each YOLO-World v2 recipe in configs/yolo_world_v2/ trains and validates, at tiny size.

One test per recipe file: the real config is loaded, pointed at a generated COCO-format set (two
64-px training and two 64-px validation images of the four synthetic shape classes) and at the
tiny CLIP text model, built into mmengine's Runner (ai4rs' :func:`build_runner`, the one
``tools/train.py`` uses), trained for ONE iteration and validated on two images with CocoMetric.

What is changed from the recipe, and why (nothing else is):

- data: ``data_root`` / ``ann_file`` / ``data_prefix`` / ``class_text_path`` / the val
  evaluator's ``ann_file`` point at the generated set, and the wrapped datasets get its
  ``metainfo`` (its four class names; the recipe's 80 COCO names would match no category);
- the text model: ``model_name`` is the tiny CLIP (hidden 32, 2 layers, projection 512: the
  width the recipes' heads expect), written once per session; the recipe's CLIP ViT-B/32 would
  have to be downloaded and takes seconds per forward pass;
- the image scale: every ``(640, 640)`` in the train, stage-2, val and test pipelines (Mosaic,
  RandomAffine's border ``(-320, -320)``, KeepRatioResize, LetterResize, MixUp's inner
  pipeline) becomes ``(64, 64)`` (border ``(-32, -32)``): a forward/backward pass at 640 px
  takes seconds on CPU, at 64 px milliseconds;
- without the optional package ``albumentations`` (not in the ``tests`` extra), the ``Albu``
  step (blur / median blur / grey / CLAHE, each with p = 0.01) is left out of the pipelines, as
  tests/test_datasets/test_yolo_world_pipeline.py does;
- batch 2 (train and val), ``num_workers=0``, no pinned memory: two images, one process;
- ``load_from=None``: the upstream pre-trained checkpoint is not here (the recipe's
  ``load_from`` is a path the user downloads to); weights are the model's own initialisation;
- ``train_cfg.max_epochs=1`` (one iteration: 2 images, batch 2; mmengine validates after the
  last epoch) and no checkpoint saved at its end (``save_last=False``: writing the X model with
  its AdamW state is ~1.5 GB of disk I/O);
- ``model.test_cfg.score_thr=0`` (recipe: 0.001): the head's prior bias makes an untrained
  model's scores ~1e-5 (``log(5 / 80 / (640 / stride)^2)``), so at 0.001 nothing would be
  detected and CocoMetric (as mmdet's) would report no metric at all;
- a fixed seed (``randomness.seed=0``) and a visualizer name of the test's own (mmengine
  would hand every test the first test's visualizer, writing into that test's work dir);
- mmengine's yapf formatting of the config text (four times per Runner, ~2.7 s each for these
  recipes) is replaced by an unformatted dump: the text is not under test.

The model structure (all widths and depths, 80 training / test classes, the text-guided or
efficient neck), the train pipeline's transforms and their strengths, the optimizer constructor
and its ``paramwise_cfg``, ``clip_grad``, the YOLOv5 parameter-scheduler hook, EMA and the
close-mosaic ``PipelineSwitchHook`` are the recipe's own.

Checked (independent expectations):

- the loss and its parts are finite;
- the optimizer has one parameter group per parameter, in the model's order, with the recipe's
  weight decay (x1: 16 images per GPU x 1 process against a base of 64) and 0 for ``logit_scale``;
- the learning rates of that iteration follow YOLOv5's warm-up at iteration 0: 0 for every
  parameter group except group 2, which gets ``warmup_bias_lr`` = 0.1 (and, for SGD, momentum
  ``warmup_momentum`` = 0.8); so the one optimizer step leaves every parameter but group 2's
  unchanged, and moves group 2's (here ``backbone.image_model.stem.bn.bias``) by exactly the
  optimizer's first-step formula, ``g_c`` its gradient after clipping the total norm to 10
  (AdamW: ``p (1 - lr wd) - lr g_c / (|g_c| + eps)``; SGD with Nesterov momentum ``m``:
  ``p - lr (1 + m)(g_c + wd p)``);
- the EMA copy equals the model after its first update (mmengine's EMA copies on update 0);
- the param-scheduler, EMA and pipeline-switch hooks are the recipe's (switch epoch
  ``max_epochs - close_mosaic_epochs``); at the switch epoch the hook installs the stage-2
  pipeline, which then yields a training sample of the shrunk size with 80 texts;
- validation on two images gives ``coco/bbox_mAP_50`` in [0, 1].
"""

import glob
import math
import os.path as osp
import time
from pprint import pformat

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook

from tests.conftest import REPO_ROOT

pytest.importorskip('transformers')

RECIPES = sorted(
    p
    for p in glob.glob(osp.join(REPO_ROOT, 'configs', 'yolo_world_v2', '*.py'))
    if 'quickstart' not in p and '_rep_' not in p  # Rep recipes: test_yolo_world_rep.py
)
RECIPE_SCALE = 640
TINY_SCALE = 64


def albu_available() -> bool:
    try:
        import albumentations  # noqa: F401

        return True
    except ImportError:
        return False


KEEP_ALBU = albu_available()


def rescaled(node, old: int = RECIPE_SCALE, new: int = TINY_SCALE, keep_albu: bool = KEEP_ALBU):
    """A copy of a config node (dicts, lists, tuples) with every image scale ``(old, old)``
    replaced by ``(new, new)`` and every mosaic border ``(-old // 2, -old // 2)`` by
    ``(-new // 2, -new // 2)``; without ``keep_albu``, ``Albu`` steps are left out of lists."""
    if isinstance(node, dict):
        return {k: rescaled(v, old, new, keep_albu) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        if len(node) == 2 and tuple(node) == (old, old):
            return type(node)((new, new))
        if len(node) == 2 and tuple(node) == (-old // 2, -old // 2):
            return type(node)((-new // 2, -new // 2))
        return type(node)(
            rescaled(v, old, new, keep_albu)
            for v in node
            if keep_albu or not (isinstance(v, dict) and v.get('type') == 'Albu')
        )
    return node


def transform_types(pipeline) -> list[str]:
    """The ``type`` of each step, ``Albu`` left out when albumentations is missing."""
    return [t['type'] for t in pipeline if KEEP_ALBU or t['type'] != 'Albu']


@pytest.fixture(scope='module')
def shapes_coco(tmp_path_factory):
    """Two training and two validation 64-px images, COCO format (the synthetic shapes)."""
    from ai4rs.datasets.preparation.synthetic_coco import generate_dataset

    root = str(tmp_path_factory.mktemp('shapes_coco'))
    generate_dataset(root, num_train=2, num_val=2, img_size=TINY_SCALE, seed=3)
    return root


def tiny_recipe_config(path: str, data_root: str, clip_dir: str, work_dir: str) -> Config:
    """The recipe at ``path`` with only the changes listed in the module docstring."""
    from ai4rs.datasets.preparation.synthetic_coco import CLASSES

    cfg = Config.fromfile(path)
    cfg.work_dir = work_dir
    cfg.load_from = None
    cfg.model.backbone.text_model.model_name = clip_dir
    for key, split in (
        ('train_dataloader', 'train'),
        ('val_dataloader', 'val'),
        ('test_dataloader', 'val'),
    ):
        loader = cfg[key]
        loader.batch_size = 2
        loader.num_workers = 0
        loader.persistent_workers = False
        loader.pin_memory = False
        inner = loader.dataset.dataset
        inner.data_root = data_root
        inner.ann_file = f'annotations/instances_{split}.json'
        inner.data_prefix = dict(img=f'{split}/')
        inner.metainfo = dict(classes=CLASSES)
        loader.dataset.class_text_path = osp.join(data_root, 'texts', 'class_texts.json')
        cfg[key] = rescaled(loader.to_dict())
    for key in ('val_evaluator', 'test_evaluator'):
        cfg[key].ann_file = osp.join(data_root, 'annotations', 'instances_val.json')
    cfg.custom_hooks = rescaled([h.to_dict() for h in cfg.custom_hooks])
    cfg.train_cfg.max_epochs = 1
    cfg.default_hooks.checkpoint.save_last = False
    cfg.model.test_cfg.score_thr = 0.0
    cfg.randomness = dict(seed=0)
    cfg.visualizer.name = f'visualizer:{work_dir}'  # mmengine keeps one instance per name
    return cfg


class StepRecorder(Hook):
    """Records, around the first training iteration: the parameters before it, the
    gradients of parameter group 2 (as computed by backward), the group settings used and
    the loss outputs."""

    priority = 'LOWEST'  # before_train_iter: after the param-scheduler hook set the lr

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        model = runner.model
        self.before = {n: p.detach().clone() for n, p in model.named_parameters()}
        self.groups = [
            dict(
                lr=g['lr'],
                momentum=g.get('momentum'),
                weight_decay=g['weight_decay'],
                nesterov=g.get('nesterov'),
                params=[id(p) for p in g['params']],
            )
            for g in runner.optim_wrapper.optimizer.param_groups
        ]
        self.group2 = runner.optim_wrapper.optimizer.param_groups[2]['params'][0]
        self.grad = None

        def keep(grad):
            self.grad = grad.detach().clone()

        self.handle = self.group2.register_hook(keep)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.handle.remove()
        self.outputs = {k: float(v.detach()) for k, v in outputs.items()}
        self.grad_norm = runner.message_hub.get_scalar('train/grad_norm').current()

    def after_val_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.predictions = getattr(self, 'predictions', []) + list(outputs)

    def after_val_epoch(self, runner, metrics=None):
        self.metrics = dict(metrics)


def _hook(runner, name):
    found = [h for h in runner.hooks if type(h).__name__ == name]
    assert len(found) == 1, [type(h).__name__ for h in runner.hooks]
    return found[0]


@pytest.mark.parametrize('path', RECIPES, ids=lambda p: osp.basename(p)[:-3])
def test_recipe_trains_one_iteration_and_validates(
    path, shapes_coco, tiny_clip_dir, tmp_path, monkeypatch
):
    from ai4rs.engine.runner import build_runner
    from ai4rs.utils import register_all_modules

    # Formatting the whole config with yapf takes ~2.7 s for these recipes on one core (ai4rs'
    # Runner does it once, FormatOnceConfig; mmengine's four times). The text is not under test:
    # an unformatted dump replaces it here.
    monkeypatch.setattr(Config, 'pretty_text', property(lambda self: pformat(self.to_dict())))
    start = time.perf_counter()
    register_all_modules(init_default_scope=False)
    recipe = Config.fromfile(path)  # the unchanged recipe, for the expected values
    cfg = tiny_recipe_config(path, shapes_coco, tiny_clip_dir, str(tmp_path / 'work'))
    for key in ('train_dataloader', 'val_dataloader', 'custom_hooks'):
        assert str(RECIPE_SCALE) not in str(cfg[key]), f'{key} still has a 640-px scale'
    runner = build_runner(cfg)
    recorder = StepRecorder()
    runner.register_hook(recorder)
    runner.train()
    trained = time.perf_counter()

    # ---- the hooks are the recipe's
    sched = _hook(runner, 'YOLOv5ParamSchedulerHook')
    assert sched.max_epochs == recipe.max_epochs
    assert (sched.scheduler_type, sched.lr_factor) == ('linear', 0.01)
    switch = _hook(runner, 'PipelineSwitchHook')
    assert switch.switch_epoch == recipe.max_epochs - recipe.close_mosaic_epochs
    assert 'Albu' in [t['type'] for t in recipe.train_pipeline_stage2]
    assert transform_types(switch.switch_pipeline) == transform_types(recipe.train_pipeline_stage2)
    ema = _hook(runner, 'EMAHook')
    assert type(ema.ema_model).__name__ == 'ExpMomentumEMA'
    assert ema.ema_model.momentum == pytest.approx(1e-4)

    # ---- the one training iteration
    assert runner.iter == 1
    assert {'loss', 'loss_cls', 'loss_bbox', 'loss_dfl'} <= set(recorder.outputs)
    assert all(math.isfinite(v) for v in recorder.outputs.values()), recorder.outputs
    is_sgd = recipe.optim_wrapper.optimizer.type == 'SGD'
    for idx, group in enumerate(recorder.groups):
        assert group['lr'] == (0.1 if idx == 2 else 0.0), (idx, group)
        if is_sgd:
            assert group['momentum'] == pytest.approx(0.8)
    model = runner.model
    names = {id(p): n for n, p in model.named_parameters()}
    # the recipe's optimizer constructor: one group per parameter, in the model's order;
    # weight decay x1 (16 per GPU x 1 process against 64), none for logit_scale
    assert [names[g['params'][0]] for g in recorder.groups] == list(names.values())
    for group in recorder.groups:
        name = names[group['params'][0]]
        expected_wd = 0.0 if name.endswith('logit_scale') else recipe.weight_decay
        assert group['weight_decay'] == pytest.approx(expected_wd), (name, group)
    group2_name = names[id(recorder.group2)]
    assert group2_name == 'backbone.image_model.stem.bn.bias'  # the model's third parameter
    after = dict(model.named_parameters())
    for name, value in recorder.before.items():
        if name != group2_name:
            assert torch.equal(after[name], value), f'{name} changed with lr 0'
    p0, p1, g = recorder.before[group2_name], after[group2_name].detach(), recorder.grad
    assert g is not None and not torch.equal(p0, p1)
    lr, wd = 0.1, recorder.groups[2]['weight_decay']
    g = g * min(1.0, 10.0 / (recorder.grad_norm + 1e-6))  # clip_grad max_norm=10
    if is_sgd:
        expected = p0 - lr * (1 + 0.8) * (g + wd * p0)
    else:
        expected = p0 * (1 - lr * wd) - lr * g / (g.abs() + 1e-8)
    torch.testing.assert_close(p1, expected, rtol=1e-4, atol=1e-6)
    # the EMA copy after its first update equals the model
    ema_params = dict(ema.ema_model.module.named_parameters())
    torch.testing.assert_close(ema_params[group2_name], p1)

    # ---- validation after the epoch: CocoMetric on the two held-out images, 4 class texts
    assert len(recorder.predictions) == 2
    for sample in recorder.predictions:
        pred = sample.pred_instances
        assert 0 < len(pred) <= recipe.model.test_cfg.max_per_img
        assert set(pred.labels.tolist()) <= set(range(4))
    assert 0.0 <= recorder.metrics['coco/bbox_mAP_50'] <= 1.0, recorder.metrics

    # ---- close mosaic: at the switch epoch the hook installs the stage-2 pipeline
    runner.train_loop._epoch = switch.switch_epoch
    switch.before_train_epoch(runner)
    dataset = runner.train_dataloader.dataset
    assert [type(t).__name__ for t in dataset.pipeline.transforms] == transform_types(
        recipe.train_pipeline_stage2
    )
    sample = dataset[0]
    assert tuple(sample['inputs'].shape) == (3, TINY_SCALE, TINY_SCALE)
    assert len(sample['data_samples'].texts) == recipe.num_training_classes
    print(
        f'{osp.basename(path)}: build+train+val {trained - start:.1f} s, '
        f'total {time.perf_counter() - start:.1f} s'
    )
