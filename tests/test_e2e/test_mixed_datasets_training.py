"""Training YOLO-World on several datasets at once, each with its own vocabulary, as upstream's
pre-training / fine-tuning configs mix them: ``dict(type='ConcatDataset', datasets=[...],
ignore_keys=['classes', 'palette'])`` of ``MultiModalDataset`` wrappers, each with its own
``class_text_path``. A tiny quick-start YOLO-World (the tiny random CLIP) runs 2 iterations
through the Runner on two generated COCO-format sets labelling different classes under
different names; every training sample must be prompted with its own dataset's vocabulary
and labelled by it, and the losses must be finite.

Planted bugs this test was checked to fail on (one at a time, then reverted):

- ``MultiModalDataset.get_data_info`` giving every sample the texts of the last wrapper
  built (a class-level attribute): A's images prompted with B's vocabulary, an assertion
  error naming the sample (the first wrapper's texts instead: RandomLoadText's error, B's
  label 2 has no text among A's 2);
- ``RandomLoadText`` not padding the smaller vocabulary to ``max_num_samples``: the batch's
  texts are ragged and the text model refuses them (an error, the test fails).
"""

import json
import math
import os.path as osp
from collections import Counter

import pytest

from tests.conftest import REPO_ROOT

WORLD_CONFIG = osp.join(
    REPO_ROOT, 'configs', 'yolo_world_v2', 'yolo_world_v2_quickstart_synthetic.py'
)
SIZE = 64
# dataset A labels two shapes under new names; dataset B three shapes under their own names
A_CLASSES = ('red circle', 'blue square')
A_TEXTS = [['crimson disc'], ['navy box']]
B_CLASSES = ('green triangle', 'yellow star', 'red circle')
B_TEXTS = [['green triangle'], ['yellow star'], ['red circle']]
NUM_TEXTS = 3  # the larger vocabulary: every image gets 3 prompts ('' pads A's)


def _dataset(cfg, data_root: str, classes, texts_path: str) -> dict:
    """The quick start's training ``MultiModalDataset`` reading ``data_root`` with
    ``classes`` (annotations of the other shapes dropped) named by ``texts_path``."""
    part = cfg.train_dataloader.dataset.copy()
    part.dataset = part.dataset.copy()
    part.dataset.data_root = osp.join(data_root, '')
    part.dataset.metainfo = dict(classes=classes)
    part.class_text_path = texts_path
    return part


def _annotated_names(data_root: str, split: str = 'train') -> dict:
    """img file name -> Counter of the annotated class names (from the COCO json)."""
    with open(osp.join(data_root, 'annotations', f'instances_{split}.json')) as f:
        coco = json.load(f)
    cats = {c['id']: c['name'] for c in coco['categories']}
    files = {im['id']: im['file_name'] for im in coco['images']}
    out = {name: Counter() for name in files.values()}
    for ann in coco['annotations']:
        out[files[ann['image_id']]][cats[ann['category_id']]] += 1
    return out


@pytest.fixture(scope='module')
def mixed_run(tiny_clip_dir, tmp_path_factory):
    from mmengine.hooks import Hook

    from ai4rs.datasets.preparation.synthetic_coco import generate_dataset
    from ai4rs.engine.runner import Runner
    from ai4rs.utils import register_all_modules
    from ai4rs.utils.config import load_config

    register_all_modules(init_default_scope=False)
    tmp = tmp_path_factory.mktemp('mixed_datasets')
    roots = {'A': str(tmp / 'a'), 'B': str(tmp / 'b')}
    # 2 + 4 images, batches of 3 in order: the first batch holds images of both datasets
    generate_dataset(roots['A'], num_train=2, num_val=1, img_size=SIZE, seed=0)
    generate_dataset(roots['B'], num_train=4, num_val=1, img_size=SIZE, seed=1)
    texts = {}
    for name, vocab in (('A', A_TEXTS), ('B', B_TEXTS)):
        texts[name] = str(tmp / f'{name}_texts.json')
        with open(texts[name], 'w') as f:
            json.dump(vocab, f)

    cfg = load_config(WORLD_CONFIG)
    cfg.model.backbone.text_model.model_name = str(tiny_clip_dir)
    for transform in cfg.train_dataloader.dataset.pipeline:
        if 'scale' in transform:
            transform['scale'] = (SIZE, SIZE)
        if transform['type'] == 'RandomLoadText':
            transform.update(num_neg_samples=(NUM_TEXTS, NUM_TEXTS), max_num_samples=NUM_TEXTS)
    cfg.model.update(num_train_classes=NUM_TEXTS, num_test_classes=NUM_TEXTS)
    cfg.model.bbox_head.head_module.num_classes = NUM_TEXTS
    cfg.model.train_cfg.assigner.num_classes = NUM_TEXTS
    cfg.train_dataloader.dataset = dict(
        type='ConcatDataset',
        datasets=[
            _dataset(cfg, roots['A'], A_CLASSES, texts['A']),
            _dataset(cfg, roots['B'], B_CLASSES, texts['B']),
        ],
        ignore_keys=['classes', 'palette'],
    )
    cfg.train_dataloader.update(
        batch_size=3, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False)
    )
    for key in ('val', 'test'):
        cfg[f'{key}_dataloader'] = cfg[f'{key}_cfg'] = cfg[f'{key}_evaluator'] = None
    cfg.train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=2)
    cfg.default_hooks.param_scheduler.max_epochs = 1
    cfg.default_hooks.checkpoint.interval = 1
    cfg.work_dir = str(tmp / 'work')

    record = {'samples': [], 'batch_texts': [], 'losses': []}

    class Record(Hook):
        """Each sample's (dataset, image, prompts, labels) as RandomLoadText leaves them,
        each batch's texts as the model gets them, each iteration's losses."""

        def before_train(self, runner):
            concat = runner.train_dataloader.dataset
            for name, part in zip(('A', 'B'), concat.datasets):
                part.pipeline.transforms.insert(-1, self._recorder(name))

        @staticmethod
        def _recorder(name):
            def recorder(results):
                record['samples'].append(
                    dict(
                        dataset=name,
                        file=osp.basename(results['img_path']),
                        texts=list(results['texts']),
                        labels=[int(x) for x in results['gt_bboxes_labels']],
                    )
                )
                return results

            return recorder

        def before_train_iter(self, runner, batch_idx, data_batch=None):
            record['batch_texts'].append([list(t) for t in data_batch['data_samples']['texts']])

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            record['losses'].append({k: float(v.detach()) for k, v in outputs.items()})

    runner = Runner.from_cfg(cfg)
    runner.register_hook(Record(), priority='LOWEST')
    runner.train()
    return dict(record=record, roots=roots, runner=runner, cfg=cfg)


def test_each_sample_is_prompted_with_its_own_vocabulary(mixed_run):
    record = mixed_run['record']
    vocab = {
        'A': dict(zip(A_CLASSES, sum(A_TEXTS, []))),
        'B': dict(zip(B_CLASSES, sum(B_TEXTS, []))),
    }
    samples = record['samples']
    # one epoch over 2 + 4 images, in order (no shuffle)
    assert [s['dataset'] for s in samples] == ['A'] * 2 + ['B'] * 4
    for s in samples:
        own = vocab[s['dataset']]
        other = vocab['B' if s['dataset'] == 'A' else 'A']
        assert len(s['texts']) == NUM_TEXTS
        prompts = [t for t in s['texts'] if t != '']
        # all of its own vocabulary (as many negatives as classes), nothing of the other's
        assert sorted(prompts) == sorted(own.values()), s
        assert not set(prompts) & (set(other.values()) - set(own.values()))
        # the labels name the annotated objects of its own classes, by its own texts
        names = _annotated_names(mixed_run['roots'][s['dataset']])[s['file']]
        expected = Counter({own[c]: n for c, n in names.items() if c in own})
        assert Counter(s['texts'][lb] for lb in s['labels']) == expected, s
    # the model got these prompts, batched per image: the first batch mixes both datasets
    batches = record['batch_texts']
    assert len(batches) == 2
    assert [t for batch in batches for t in batch] == [s['texts'] for s in samples]
    assert {t for t in batches[0][0] if t} <= set(vocab['A'].values())
    assert {t for t in batches[0][2] if t} <= set(vocab['B'].values())


def test_losses_are_finite(mixed_run):
    losses = mixed_run['record']['losses']
    assert len(losses) == 2
    for step in losses:
        assert {'loss_cls', 'loss_bbox', 'loss_dfl'} <= set(step)
        assert all(math.isfinite(v) for v in step.values()), step
    assert osp.isfile(osp.join(mixed_run['cfg'].work_dir, 'epoch_1.pth'))
