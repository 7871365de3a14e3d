"""Measure prompt tuning against zero-shot on the quick-start data (docs/yolo_world.md,
"Prompt tuning").

    python tools/analysis_tools/prompt_tuning_ap.py CHECKPOINT --text-model CLIP_DIR \
        [--data-root data/synthetic_coco] [--work-dir work_dirs/prompt_tuning_ap] \
        [--tune-classes "red circle,blue square"] [--texts "crimson disc,navy box"] \
        [--epochs 5] [--finetune] [--mix-dataset [DIR]]

CHECKPOINT is a YOLO-World trained by tools/quickstart_yolo_world.py (with the CLIP of
CLIP_DIR, e.g. its tiny_clip). ``--texts`` names the ``--tune-classes`` (default: all four
generated shapes) anew: the vocabulary to tune; the tuning data annotates only those classes
(the others stay in its images, unlabelled), and the other classes are the untuned ones,
scored with their original names. On the held-out split (the quick start's val images, not
trained on) it prints the COCO AP of

- zero-shot: the checkpoint with the new names (their CLIP embeddings);
- prompt-tuned: SimpleYOLOWorldDetector (configs/yolo_world_v2/
  yolo_world_v2_quickstart_prompt_tuning.py) trained ``--epochs`` on the training split with
  the network frozen, the embeddings initialised from the new names;
- the original names with the checkpoint (the vocabulary the network was trained with, which
  prompt tuning leaves bit-identical);

and with ``--finetune`` upstream's other route: the whole image side fine-tuned (text model
frozen, as the quick-start config) on the new names, alone or with the original names
mixed in (each class's texts ``[new, original]``, RandomLoadText picking one per image),
each scored with the new and with the original names.

``--mix-dataset`` adds upstream's mixing of whole datasets: the image side fine-tuned on a
``ConcatDataset`` of the tuning set and a second generated set (DIR, default
``data/synthetic_coco_mix``: other images, seed 1) that annotates the untuned classes with
their original names (the tuned shapes in its images stay unlabelled), each dataset with its
own class-text file, so each image is trained with its own dataset's vocabulary.
"""

import argparse
import json
import os
import os.path as osp
import sys

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO_ROOT)

import ai4rs  # noqa: E402,F401,I001  (first: sets the OpenMP wait policy before torch loads)
import torch  # noqa: E402

from ai4rs.datasets.class_texts import read_vocabulary  # noqa: E402
from ai4rs.datasets.preparation.synthetic_coco import CLASSES, PALETTE, generate_dataset  # noqa: E402

CONFIGS = osp.join(REPO_ROOT, 'configs', 'yolo_world_v2')
WORLD_CONFIG = osp.join(CONFIGS, 'yolo_world_v2_quickstart_synthetic.py')
PT_CONFIG = osp.join(CONFIGS, 'yolo_world_v2_quickstart_prompt_tuning.py')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('checkpoint', help='a quick-start YOLO-World checkpoint')
    parser.add_argument('--text-model', required=True, help='its CLIP text model directory')
    parser.add_argument('--data-root', default='data/synthetic_coco')
    parser.add_argument('--work-dir', default='work_dirs/prompt_tuning_ap')
    parser.add_argument(
        '--tune-classes',
        default=','.join(CLASSES),
        help='the classes to tune (the others are annotated nowhere in the tuning data and '
        'scored with their original names as the untuned classes)',
    )
    parser.add_argument(
        '--texts',
        default='crimson disc,navy box,lime wedge,gold star',
        help='new names of the tuned classes, in their order',
    )
    parser.add_argument('--epochs', type=int, default=5)
    parser.add_argument('--finetune', action='store_true', help='also the fine-tuning route')
    parser.add_argument(
        '--mix-dataset',
        nargs='?',
        const='data/synthetic_coco_mix',
        default=None,
        metavar='DIR',
        help='also fine-tune on the tuning set concatenated with a second generated set '
        '(written to DIR, default data/synthetic_coco_mix) labelling the untuned classes '
        'with their original names',
    )
    args = parser.parse_args(argv)
    args.tune_classes = read_vocabulary(args.tune_classes, '--tune-classes')
    unknown = [c for c in args.tune_classes if c not in CLASSES]
    if unknown:
        parser.error(f'--tune-classes: {unknown} are not among {CLASSES}')
    args.texts = read_vocabulary(args.texts)[: len(args.tune_classes)]
    if len(args.texts) != len(args.tune_classes):
        parser.error(f'--texts: one new name per tuned class {args.tune_classes}')
    if args.mix_dataset is not None and len(args.tune_classes) == len(CLASSES):
        parser.error('--mix-dataset: every class is tuned, none is left for the mixed-in set')
    return args


def write_texts(path: str, texts: list) -> str:
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(texts, f)
    return path


def with_data(cfg, data_root, train, test, work_dir):
    """``cfg`` reading ``data_root``, writing ``work_dir``; ``train`` and ``test`` are
    (classes, class-text file): the dataset's classes (annotations of the others are
    dropped) and their texts."""
    data_root = osp.join(osp.abspath(data_root), '')
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        classes, texts = train if key == 'train_dataloader' else test
        palette = [PALETTE[CLASSES.index(c)] for c in classes]
        cfg[key].dataset.dataset.data_root = data_root
        cfg[key].dataset.dataset.metainfo = dict(classes=tuple(classes), palette=palette)
        cfg[key].dataset.class_text_path = texts
    for key in ('val_evaluator', 'test_evaluator'):
        cfg[key].ann_file = osp.join(data_root, 'annotations', 'instances_val.json')
    set_num_texts(cfg, len(train[0]))
    cfg.work_dir = work_dir
    return cfg


def set_num_texts(cfg, n: int) -> None:
    """``n`` texts per training image: the model's classes and every ``RandomLoadText`` of
    the training set(s) (upstream's ``num_neg_samples=(n, n)``, ``max_num_samples=n``, padded
    to ``n`` with ``''``), so images of datasets with fewer classes stack with the others."""
    cfg.model.update(num_train_classes=n, num_test_classes=n)
    cfg.model.bbox_head.head_module.num_classes = n
    cfg.model.train_cfg.assigner.num_classes = n
    dataset = cfg.train_dataloader.dataset
    for part in dataset.get('datasets', [dataset]):
        for transform in part.pipeline:
            if transform['type'] == 'RandomLoadText':
                transform.update(
                    num_neg_samples=(n, n),
                    max_num_samples=n,
                    padding_to_max=True,
                    padding_value='',
                )


def mix_in(cfg, data_root: str, mix) -> None:
    """Train ``cfg`` on a ``ConcatDataset`` (upstream's ``dict(type='ConcatDataset',
    datasets=[...], ignore_keys=['classes', 'palette'])``) of its training set and a copy of
    it reading ``data_root`` with ``mix`` = (classes, class-text file); the texts per image
    become the larger vocabulary's size."""
    first = cfg.train_dataloader.dataset
    second = first.copy()
    second.dataset = first.dataset.copy()
    second.dataset.data_root = osp.join(osp.abspath(data_root), '')
    classes, texts = mix
    second.dataset.metainfo = dict(
        classes=tuple(classes), palette=[PALETTE[CLASSES.index(c)] for c in classes]
    )
    second.class_text_path = texts
    cfg.train_dataloader.dataset = dict(
        type='ConcatDataset', datasets=[first, second], ignore_keys=['classes', 'palette']
    )
    set_num_texts(cfg, max(len(first.dataset.metainfo['classes']), len(classes)))


def held_out_ap(cfg, checkpoint: str) -> dict:
    """COCO AP / AP50 of ``checkpoint`` on the held-out split (the weights as saved)."""
    from ai4rs.engine.runner import Runner

    cfg = cfg.copy()
    cfg.load_from = checkpoint
    cfg.custom_hooks = []
    metrics = Runner.from_cfg(cfg).test()
    return {k: metrics.get(f'coco/bbox_{k}', 0.0) for k in ('mAP', 'mAP_50')}


def train(cfg, epochs: int) -> str:
    from ai4rs.engine.runner import Runner

    cfg.train_cfg.update(max_epochs=epochs, val_interval=epochs + 1)
    cfg.default_hooks.param_scheduler.max_epochs = epochs
    cfg.default_hooks.checkpoint.interval = epochs
    Runner.from_cfg(cfg).train()
    return osp.join(cfg.work_dir, f'epoch_{epochs}.pth')


def main(argv=None):
    args = parse_args(argv)
    from ai4rs.models.backbones.clip_text import HuggingCLIPLanguageBackbone
    from ai4rs.utils import register_all_modules
    from ai4rs.utils.config import load_config

    register_all_modules(init_default_scope=False)
    generate_dataset(args.data_root, num_train=160, num_val=40, img_size=256)
    work = osp.abspath(args.work_dir)
    os.makedirs(work, exist_ok=True)
    text_model = osp.abspath(args.text_model)
    checkpoint = osp.abspath(args.checkpoint)
    tuned = list(args.tune_classes)
    untuned = [c for c in CLASSES if c not in tuned]
    new = (tuned, write_texts(osp.join(work, 'new_texts.json'), [[t] for t in args.texts]))
    old = (tuned, write_texts(osp.join(work, 'original_texts.json'), [[c] for c in tuned]))
    mixed = (
        tuned,
        write_texts(
            osp.join(work, 'mixed_texts.json'), [[t, c] for t, c in zip(args.texts, tuned)]
        ),
    )
    rest = (untuned, write_texts(osp.join(work, 'untuned_texts.json'), [[c] for c in untuned]))
    init = osp.join(work, 'init_embeddings.pt')
    clip = HuggingCLIPLanguageBackbone(text_model).eval()
    with torch.no_grad():
        feats = clip([args.texts])[0]
    torch.save({t: e.clone() for t, e in zip(args.texts, feats)}, init)

    def world(train_set, test_set, name):
        cfg = load_config(WORLD_CONFIG)
        cfg.model.backbone.text_model.model_name = text_model
        return with_data(cfg, args.data_root, train_set, test_set, osp.join(work, name))

    def scores(ckpt, name):
        out = {'new names': held_out_ap(world(new, new, name + '_new'), ckpt)}
        out['original names'] = held_out_ap(world(old, old, name + '_old'), ckpt)
        if untuned:
            out['untuned classes'] = held_out_ap(world(rest, rest, name + '_untuned'), ckpt)
        return out

    results = {'start (zero-shot)': scores(checkpoint, 'start')}
    cfg = with_data(load_config(PT_CONFIG), args.data_root, new, new, osp.join(work, 'tuned'))
    cfg.load_from = checkpoint
    cfg.model.update(
        embedding_path=init, prompt_texts=list(args.texts), num_prompts=len(args.texts)
    )
    results['prompt-tuned'] = {'new names': held_out_ap(cfg, train(cfg, args.epochs))}

    if args.finetune:
        for name, train_set in (('fine-tuned, new names', new), ('fine-tuned, mixed', mixed)):
            tag = name.replace(', ', '_').replace(' ', '_')
            cfg = world(train_set, new, tag)
            cfg.load_from = checkpoint
            results[name] = scores(train(cfg, args.epochs), tag)
    if args.mix_dataset is not None:
        generate_dataset(args.mix_dataset, num_train=160, num_val=0, img_size=256, seed=1)
        cfg = world(new, new, 'fine-tuned_mixed_dataset')
        mix_in(cfg, args.mix_dataset, rest)
        cfg.load_from = checkpoint
        results['fine-tuned, mixed dataset'] = scores(
            train(cfg, args.epochs), 'fine-tuned_mixed_dataset'
        )

    print(f'\nheld-out AP ({args.data_root} val, 40 images); tuned: {tuned} as {args.texts}')
    for run, by_vocab in results.items():
        for vocab, value in by_vocab.items():
            print(f'  {run:26s} {vocab:16s} AP {value["mAP"]:.3f}  AP50 {value["mAP_50"]:.3f}')
    with open(osp.join(work, 'results.json'), 'w') as f:
        json.dump(results, f, indent=1)
    return results


if __name__ == '__main__':
    main()
