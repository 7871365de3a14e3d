"""Upstream's other route to a new vocabulary (docs/yolo_world.md, "Prompt tuning"):
fine-tuning the image side with the text model frozen and the original names mixed in. The
class-text file lists two texts per class, ``[new name, original name]``; ``RandomLoadText``
picks one per image. A tiny quick-start YOLO-World (the tiny random CLIP, 64 px) is
fine-tuned 4 iterations on generated images from a saved checkpoint.

Planted bugs this test was checked to fail on (one at a time, then reverted):

- ``HuggingCLIPLanguageBackbone`` ignoring ``frozen_modules`` (the text model trained with
  the quick start's ``lr_mult=0.01``): ``test_text_model_frozen_image_side_trained``;
- ``RandomLoadText`` always taking the first text of a class:
  ``test_every_text_of_the_mixed_file_is_picked``.
"""

import json
import os
import os.path as osp
from collections import Counter

import pytest
import torch

from tests.conftest import REPO_ROOT

WORLD_CONFIG = osp.join(
    REPO_ROOT, 'configs', 'yolo_world_v2', 'yolo_world_v2_quickstart_synthetic.py'
)
SIZE = 64
CLASSES = ('red circle', 'blue square', 'green triangle', 'yellow star')
NEW = ('crimson disc', 'navy box', 'lime wedge', 'gold star')
MIXED = [[new, old] for new, old in zip(NEW, CLASSES)]


def _state_dict(path):
    return torch.load(path, map_location='cpu', weights_only=False)['state_dict']


@pytest.fixture(scope='module')
def finetuned(tiny_clip_dir, tmp_path_factory):
    from mmengine.hooks import Hook

    from ai4rs.datasets.preparation.synthetic_coco import generate_dataset
    from ai4rs.engine.runner import Runner
    from ai4rs.utils import register_all_modules
    from ai4rs.utils.config import load_config
    from tests.yolo_world_infer_helpers import save_model

    register_all_modules(init_default_scope=False)
    tmp = tmp_path_factory.mktemp('finetune_mixed_vocab')
    data_root = osp.join(str(tmp / 'data'), '')
    generate_dataset(data_root, num_train=4, num_val=1, img_size=SIZE)
    mixed_path = str(tmp / 'mixed_texts.json')
    with open(mixed_path, 'w') as f:
        json.dump(MIXED, f)

    cfg = load_config(WORLD_CONFIG)
    cfg.model.backbone.text_model.model_name = str(tiny_clip_dir)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].update(num_workers=0, persistent_workers=False)
        cfg[key].dataset.dataset.data_root = data_root
        cfg[key].dataset.class_text_path = osp.join(data_root, 'texts', 'class_texts.json')
        for transform in cfg[key].dataset.pipeline:
            if 'scale' in transform:
                transform['scale'] = (SIZE, SIZE)
    for key in ('val_evaluator', 'test_evaluator'):
        cfg[key].ann_file = osp.join(data_root, 'annotations', 'instances_val.json')
    cfg.model.test_cfg.update(score_thr=0.001, max_per_img=100)
    # the start point: a saved model (the text model's weights are the tiny CLIP's)
    start_cfg, start_ckpt = save_model(cfg.copy(), str(tmp), 'start', logit_scale=2.0)

    cfg.load_from = start_ckpt
    cfg.train_dataloader.dataset.class_text_path = mixed_path
    cfg.train_dataloader.batch_size = 2
    cfg.train_cfg.update(max_epochs=2, val_interval=3)
    cfg.default_hooks.param_scheduler.max_epochs = 2
    cfg.default_hooks.checkpoint.interval = 2
    cfg.work_dir = str(tmp / 'work')

    picks = []

    class RecordPicks(Hook):
        """The prompts RandomLoadText gave each training image."""

        def before_train(self, runner):
            transforms = runner.train_dataloader.dataset.pipeline.transforms
            index = [type(t).__name__ for t in transforms].index('RandomLoadText')
            transforms.insert(index + 1, self._record)

        @staticmethod
        def _record(results):
            picks.append(list(results['texts']))
            return results

    runner = Runner.from_cfg(cfg)
    runner.register_hook(RecordPicks(), priority='LOWEST')
    text_before = {
        k: v.detach().clone() for k, v in runner.model.backbone.text_model.state_dict().items()
    }
    runner.train()
    val_dir = osp.join(data_root, 'val')
    return dict(
        start_cfg=start_cfg,
        start_ckpt=start_ckpt,
        ckpt=osp.join(cfg.work_dir, 'epoch_2.pth'),
        runner=runner,
        text_before=text_before,
        picks=picks,
        image=osp.join(val_dir, sorted(os.listdir(val_dir))[0]),
    )


def test_text_model_frozen_image_side_trained(finetuned):
    start = _state_dict(finetuned['start_ckpt'])
    # the live model (weights as trained) and the checkpoint (EMA weights)
    live = {k: v.detach() for k, v in finetuned['runner'].model.state_dict().items()}
    saved = _state_dict(finetuned['ckpt'])
    text_keys = [k for k in start if k.startswith('backbone.text_model.')]
    image_keys = [k for k in start if k.startswith('backbone.image_model.')]
    assert len(text_keys) > 10 and len(image_keys) > 10
    assert sorted(saved) == sorted(start) == sorted(live)
    for trained in (live, saved):
        changed = [k for k in text_keys if not torch.equal(trained[k], start[k])]
        assert changed == []
    for k, v in finetuned['runner'].model.backbone.text_model.state_dict().items():
        assert torch.equal(v, finetuned['text_before'][k]), k
    # the image side (backbone, neck, head) was trained
    for prefix in ('backbone.image_model.', 'neck.', 'bbox_head.'):
        weights = [k for k in start if k.startswith(prefix) and k.endswith('.weight')]
        assert weights
        changed = [k for k in weights if not torch.equal(saved[k], start[k])]
        assert len(changed) > len(weights) // 2, prefix


def test_every_text_of_the_mixed_file_is_picked(finetuned):
    picks = finetuned['picks']
    # 4 images x 2 epochs, each prompted with its 4 classes (one text each)
    assert len(picks) == 8
    used = Counter(t for texts in picks for t in texts)
    assert set(used) == {t for texts in MIXED for t in texts}
    for texts in picks:
        # one text per class, never both names of a class in one image
        owners = [next(i for i, ts in enumerate(MIXED) if t in ts) for t in texts]
        assert sorted(owners) == [0, 1, 2, 3], texts


def test_checkpoint_predicts_with_either_name(finetuned):
    from ai4rs.apis import inference_detector, init_detector
    from ai4rs.registry import MODELS
    from ai4rs.utils.config import load_config

    # every key of the fine-tuned checkpoint fits the YOLO-World model, strictly
    model = MODELS.build(load_config(finetuned['start_cfg']).model)
    model.load_state_dict(_state_dict(finetuned['ckpt']), strict=True)

    det = init_detector(finetuned['start_cfg'], finetuned['ckpt'], inference_mode=False)
    results = {}
    for name, vocab in (('new', list(NEW)), ('original', list(CLASSES))):
        pred = inference_detector(det, finetuned['image'], texts=vocab).pred_instances
        assert len(pred.scores) > 0
        assert torch.isfinite(pred.scores).all() and torch.isfinite(pred.bboxes.tensor).all()
        assert int(pred.labels.max()) < len(vocab)
        results[name] = pred
    # the names are different prompts: the same network scores them differently
    assert not torch.equal(results['new'].scores, results['original'].scores)
    # a mix of both kinds of name in one vocabulary works as well
    pred = inference_detector(det, finetuned['image'], texts=[NEW[0], CLASSES[1]])
    assert len(pred.pred_instances.scores) > 0
