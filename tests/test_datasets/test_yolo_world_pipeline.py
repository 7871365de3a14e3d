"""The YOLO-World v2 COCO fine-tuning recipe's data: its own train (stage 1), stage-2 and
test datasets, loaded from ``configs/yolo_world_v2/`` and built through
``MultiModalDataset(YOLOv5CocoDataset)`` with the recipe's class texts (the 80 COCO names),
on a tiny COCO-format set this module writes (JPEG images, polygon segmentations, a crowd
region as uncompressed RLE, non-contiguous category ids listed in a shuffled order),
collated by the recipe's ``yolow_collate``.

Changed from the recipe, and nothing else: the data paths; every ``(640, 640)`` image scale
(and the mosaic border) shrunk to 64 (tests/test_configs/test_yolo_world_v2_recipe_runs.py's
``rescaled``); ``Albu`` left out when albumentations is missing; where a test says so, a
transform's probability forced or photometric steps removed.

Objects are filled polygons whose colour encodes their COCO category, so after any geometric
augmentation the pixels under a box can be checked against the label's text.

Planted bugs these tests were checked to fail on (one at a time, then reverted):

- ``MultiModalDataset.get_data_info`` without ``texts`` (the class texts not attached):
  every test here;
- ``RandomLoadText`` labels not remapped to the positions of the sampled texts (the original
  class index kept): ``test_stage1_labels_name_their_objects``;
- ``YOLOv5CocoDataset._class_category_ids`` returning the json's category ids in the json's
  order instead of ``metainfo['classes']`` order (labels by json position, not by name):
  ``test_stage1_labels_name_their_objects`` and
  ``test_test_pipeline_keeps_original_boxes_and_maps_letterbox_back``.
"""

import copy
import json
import random

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config

from tests.conftest import REPO_ROOT

RECIPE = (
    f'{REPO_ROOT}/configs/yolo_world_v2/'
    'yolo_world_v2_s_vlpan_bn_2e-4_80e_8gpus_mask-refine_finetune_coco.py'
)
SCALE = 64
# the categories drawn: well-separated BGR colours (JPEG keeps them within a few levels)
DRAWN = {
    'person': (40, 40, 220),
    'cat': (220, 60, 40),
    'dog': (40, 200, 60),
    'bird': (230, 230, 40),
    'traffic light': (200, 40, 210),
}
COLOUR_TOL = 40
MIN_SIDE = 4  # px: boxes whose colour is checked


def category_id(label: int) -> int:
    """Non-contiguous json ids (COCO's are too): label i has id 3 * i + 7."""
    return 3 * label + 7


def write_coco(root, split: str, num_images: int, seed: int):
    """``root/{split}/NNN.jpg`` and ``root/annotations/instances_{split}.json``; returns the
    json dict."""
    from ai4rs.datasets.coco import COCO_CLASSES

    rng = np.random.default_rng(seed)
    (root / split).mkdir(parents=True, exist_ok=True)
    (root / 'annotations').mkdir(exist_ok=True)
    images, anns = [], []
    names = list(DRAWN)
    for i in range(num_images):
        h, w = int(rng.integers(48, 97)), int(rng.integers(48, 97))
        img = np.full((h, w, 3), 128, np.uint8)
        # one object per image quadrant at most: no object hides another
        quadrants = rng.permutation(4)[: int(rng.integers(2, 4))]
        for q in quadrants:
            qw, qh = w / 2, h / 2
            name = names[int(rng.integers(len(names)))]
            cx = (q % 2 + 0.5) * qw + rng.uniform(-0.1, 0.1) * qw
            cy = (q // 2 + 0.5) * qh + rng.uniform(-0.1, 0.1) * qh
            r = rng.uniform(0.25, 0.35) * min(qw, qh)
            angles = np.sort(rng.uniform(0, 2 * np.pi, 6))
            pts = np.round(np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], 1))
            pts = np.clip(pts, 0, [w - 1, h - 1])
            cv2.fillPoly(img, [pts.astype(np.int32)], DRAWN[name])
            x1, y1 = pts.min(0)
            x2, y2 = pts.max(0)
            anns.append(
                dict(
                    id=len(anns) + 1,
                    image_id=i + 1,
                    category_id=category_id(COCO_CLASSES.index(name)),
                    bbox=[float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
                    area=float((x2 - x1) * (y2 - y1)),
                    segmentation=[pts.reshape(-1).tolist()],
                    iscrowd=0,
                )
            )
        # a crowd region (ignored): uncompressed RLE of the top-left 4 x 4 pixels
        # (column-major runs, zeros first)
        counts = [0, 4, h - 4, 4, h - 4, 4, h - 4, 4, h - 4 + h * (w - 4)]
        anns.append(
            dict(
                id=len(anns) + 1,
                image_id=i + 1,
                category_id=category_id(0),
                bbox=[0.0, 0.0, 4.0, 4.0],
                area=16.0,
                segmentation=dict(size=[h, w], counts=counts),
                iscrowd=1,
            )
        )
        name = f'{i:03d}.jpg'
        assert cv2.imwrite(str(root / split / name), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
        images.append(dict(id=i + 1, file_name=name, height=h, width=w))
    # listed in a shuffled order: labels must follow the names, not the json order
    categories = [dict(id=category_id(int(i)), name=COCO_CLASSES[i]) for i in rng.permutation(80)]
    data = dict(images=images, annotations=anns, categories=categories)
    (root / 'annotations' / f'instances_{split}.json').write_text(json.dumps(data))
    return data


@pytest.fixture(scope='module')
def coco_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('tiny_coco')
    write_coco(root, 'train2017', 6, seed=0)
    val = write_coco(root, 'val2017', 4, seed=1)
    return root, val


@pytest.fixture(scope='module')
def recipe(coco_root):
    """The recipe config, pointed at the tiny set, scales shrunk to 64."""
    from ai4rs.utils import register_all_modules
    from tests.test_configs.test_yolo_world_v2_recipe_runs import rescaled

    register_all_modules()
    root, _ = coco_root
    cfg = Config.fromfile(RECIPE)
    for key in ('train_dataloader', 'val_dataloader'):
        cfg[key].dataset.dataset.data_root = str(root)
        cfg[key] = rescaled(cfg[key].to_dict())
    cfg.custom_hooks = rescaled([h.to_dict() for h in cfg.custom_hooks])
    assert '640' not in str(cfg.train_dataloader) + str(cfg.val_dataloader)
    return cfg


def build_dataset(dataset_cfg, pipeline=None):
    from ai4rs.registry import DATASETS

    dataset_cfg = copy.deepcopy(dataset_cfg)
    if pipeline is not None:
        dataset_cfg['pipeline'] = pipeline
    dataset = DATASETS.build(dataset_cfg)
    assert type(dataset).__name__ == 'MultiModalDataset'
    return dataset


def with_prob(pipeline, type_name: str, prob: float):
    """A copy of ``pipeline`` with every ``type_name`` step's ``prob`` set (nested too)."""
    out = []
    for step in copy.deepcopy(pipeline):
        if step['type'] == type_name:
            step['prob'] = prob
        if 'pre_transform' in step:
            step['pre_transform'] = with_prob(step['pre_transform'], type_name, prob)
        out.append(step)
    return out


def collate(cfg, samples):
    from ai4rs.registry import FUNCTIONS

    return FUNCTIONS.get(cfg.train_dataloader.collate_fn['type'])(samples)


def seed_all(seed: int) -> None:
    np.random.seed(seed)
    random.seed(seed)
    torch.manual_seed(seed)


def check_train_batch(batch, num_imgs):
    """Shapes, 80 texts per image (the recipe's RandomLoadText pads to 80), boxes inside
    the 64 px image, and every label naming a real class text, never padding."""
    from ai4rs.datasets.coco import COCO_CLASSES

    assert batch['inputs'].shape == (num_imgs, 3, SCALE, SCALE)
    rows = batch['data_samples']['bboxes_labels']
    texts = batch['data_samples']['texts']
    assert rows.shape[1] == 6 and len(texts) == num_imgs
    assert all(len(t) == 80 for t in texts)
    boxes = rows[:, 2:].numpy()
    assert (boxes >= 0).all() and (boxes <= SCALE).all()
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    for row in rows.numpy():
        assert texts[int(row[0])][int(row[1])] in COCO_CLASSES
    return rows, texts


def colour_matches(img: np.ndarray, box, text: str) -> bool:
    """Some pixel under ``box`` (x1, y1, x2, y2) has the colour of ``text``'s category."""
    x1, y1 = np.floor(box[:2]).astype(int).clip(0)
    x2, y2 = np.ceil(box[2:]).astype(int)
    patch = img[y1:y2, x1:x2].reshape(-1, 3).astype(int)
    return bool((np.abs(patch - np.array(DRAWN[text])).max(1) <= COLOUR_TOL).any())


@pytest.mark.parametrize('forced', [False, True], ids=['recipe_probs', 'mixup_copypaste_always'])
def test_stage1_pipeline_runs_through_multimodal_dataset(recipe, forced):
    pipeline = recipe.train_dataloader.dataset.pipeline
    if forced:
        pipeline = with_prob(
            with_prob(pipeline, 'YOLOv5MultiModalMixUp', 1.0), 'YOLOv5CopyPaste', 1.0
        )
    dataset = build_dataset(recipe.train_dataloader.dataset, pipeline)
    assert len(dataset) == 6
    seed_all(int(forced))
    samples = [dataset[i] for i in range(3)]
    rows, _ = check_train_batch(collate(recipe, samples), 3)
    assert len(rows) > 0
    for sample in samples:
        assert sample['inputs'].dtype == torch.uint8
        assert 'gt_masks' not in sample['data_samples'].gt_instances


def test_stage1_labels_name_their_objects(recipe):
    """Geometry only (the recipe's stage-1 pipeline without HSV/Albu, no mixup, which blends
    two images' colours; copy-paste always): each box (of sides >= 4 px) covers pixels of the
    colour of the category its label's text names."""
    pipeline = with_prob(recipe.train_dataloader.dataset.pipeline, 'YOLOv5MultiModalMixUp', 0.0)
    pipeline = with_prob(pipeline, 'YOLOv5CopyPaste', 1.0)
    pipeline = [t for t in pipeline if t['type'] not in ('YOLOv5HSVRandomAug', 'Albu')]
    dataset = build_dataset(recipe.train_dataloader.dataset, pipeline)
    checked = 0
    for seed in range(3):
        seed_all(seed)
        for i in range(len(dataset)):
            out = dataset[i]
            img = out['inputs'].permute(1, 2, 0).numpy()
            texts = out['data_samples'].texts
            gt = out['data_samples'].gt_instances
            for box, label in zip(gt.bboxes.tensor.numpy(), gt.labels.numpy()):
                text = texts[label]
                assert text in DRAWN, (text, box)  # a drawn category, never a negative text
                if min(box[2] - box[0], box[3] - box[1]) < MIN_SIDE:
                    continue  # a sliver: its few pixels are blends with the background
                assert colour_matches(img, box, text), (text, box)
                checked += 1
    assert checked >= 10


def test_stage2_pipeline_from_the_switch_hook(recipe):
    """The close-mosaic pipeline is the one the recipe's PipelineSwitchHook installs."""
    (switch,) = [h for h in recipe.custom_hooks if h['type'] == 'PipelineSwitchHook']
    dataset = build_dataset(recipe.train_dataloader.dataset, switch['switch_pipeline'])
    seed_all(3)
    check_train_batch(collate(recipe, [dataset[i] for i in range(4)]), 4)


def test_test_pipeline_keeps_original_boxes_and_maps_letterbox_back(recipe, coco_root):
    """The recipe's test dataset: texts are the 80 COCO names, annotations are loaded after
    the letterbox so they stay the json's boxes in original pixels (for the metric), labels
    are the json categories by name; loading them before the letterbox, the letterboxed
    boxes map back exactly by hand: (box - [left, top, left, top]) / scale_factor."""
    from ai4rs.datasets.coco import COCO_CLASSES

    _, val = coco_root
    test = recipe.val_dataloader.dataset.pipeline
    assert [t['type'] for t in test][:4] == [
        'LoadImageFromFile',
        'YOLOv5KeepRatioResize',
        'LetterResize',
        'LoadAnnotations',
    ]
    moved = [test[0], test[3], *test[1:3], *test[4:]]
    for pipeline, letterboxed in ((test, False), (moved, True)):
        dataset = build_dataset(recipe.val_dataloader.dataset, pipeline)
        assert len(dataset) == len(val['images'])
        for i, image in enumerate(val['images']):
            out = dataset[i]
            meta = out['data_samples'].metainfo
            assert out['inputs'].shape == (3, SCALE, SCALE)
            assert meta['texts'] == list(COCO_CLASSES) and 'dataset' not in out
            h, w = image['height'], image['width']
            assert meta['ori_shape'] == (h, w)
            top, bottom, left, right = meta['pad_param']
            sx, sy = meta['scale_factor']
            # the letterbox fills 64 x 64: the resized image plus the padding
            assert round(w * sx) + left + right == SCALE and round(h * sy) + top + bottom == SCALE
            assert min(top + bottom, left + right) == 0
            gt = out['data_samples'].gt_instances
            boxes = gt.bboxes.tensor.numpy()
            if letterboxed:
                boxes = (boxes - [left, top, left, top]) / [sx, sy, sx, sy]
            anns = [
                a for a in val['annotations'] if a['image_id'] == image['id'] and not a['iscrowd']
            ]
            expected = np.array(
                [[x, y, x + bw, y + bh] for x, y, bw, bh in (a['bbox'] for a in anns)]
            )
            np.testing.assert_allclose(boxes, expected, atol=1e-3)
            labels = [COCO_CLASSES[label] for label in gt.labels.tolist()]
            assert labels == [COCO_CLASSES[(a['category_id'] - 7) // 3] for a in anns]
