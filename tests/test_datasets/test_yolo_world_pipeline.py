"""The YOLO-World v2 COCO fine-tuning pipelines (stage 1, stage 2, test), composed from
config dicts as in the recipe (img_scale shrunk to 64), on real image files in a tmp dir.

Objects are filled polygons whose colour encodes their class, so after any geometric
augmentation the pixels under a box can be checked against the label's text.
"""

import copy

import cv2
import numpy as np
import pytest
import torch
from mmengine.dataset import Compose

from ai4rs.datasets.utils import yolov5_collate
from ai4rs.registry import TRANSFORMS

IMG_SCALE = (64, 64)
CLASS_NAMES = [f'thing{i}' for i in range(80)]
CLASS_TEXTS = [[name] for name in CLASS_NAMES]


def class_colour(label):
    rng = np.random.default_rng(label)
    return tuple(int(v) for v in rng.integers(30, 226, 3))


class MiniMultiModalDataset:
    """The dataset interface the transforms rely on: ``get_data_info`` (mmdet data info
    plus ``texts``), ``__len__``, and ``results['dataset']`` set in training mode."""

    def __init__(self, infos, pipeline, test_mode=False):
        self.infos = infos
        self.pipeline = Compose([TRANSFORMS.build(c) for c in pipeline])
        self.test_mode = test_mode

    def __len__(self):
        return len(self.infos)

    def get_data_info(self, idx):
        info = copy.deepcopy(self.infos[idx])
        info['texts'] = copy.deepcopy(CLASS_TEXTS)
        return info

    def __getitem__(self, idx):
        info = self.get_data_info(idx)
        if not self.test_mode:
            info['dataset'] = self
        return self.pipeline(info)


@pytest.fixture(scope='module')
def infos(tmp_path_factory):
    root = tmp_path_factory.mktemp('coco_like')
    rng = np.random.default_rng(0)
    out = []
    for i in range(6):
        h, w = int(rng.integers(40, 96)), int(rng.integers(40, 96))
        img = np.full((h, w, 3), 255, np.uint8)
        instances = []
        for _ in range(int(rng.integers(1, 4))):
            label = int(rng.integers(0, 80))
            cx, cy = rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h
            r = rng.uniform(6, 14)
            angles = np.sort(rng.uniform(0, 2 * np.pi, 5))
            pts = np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], 1)
            pts = np.clip(pts, 0, [w - 1, h - 1])
            cv2.fillPoly(img, [np.round(pts).astype(np.int32)], class_colour(label))
            instances.append(
                dict(
                    bbox=[*pts.min(0), *pts.max(0)],
                    bbox_label=label,
                    ignore_flag=0,
                    mask=[pts.reshape(-1).tolist()],
                )
            )
        # a crowd region (ignored, RLE) must not disturb the mask pipeline
        instances.append(
            dict(
                bbox=[0, 0, 4, 4],
                bbox_label=0,
                ignore_flag=1,
                mask={'size': [h, w], 'counts': 'xyz'},
            )
        )
        path = root / f'{i:03d}.png'
        cv2.imwrite(str(path), img)
        out.append(dict(img_path=str(path), img_id=i, height=h, width=w, instances=instances))
    return out


def albu_available():
    try:
        import albumentations  # noqa: F401

        return True
    except ImportError:
        return False


def recipe_pipelines(affine_scale=0.9, mixup_prob=0.15, copypaste_prob=0.3):
    """The v2-L recipe's pipelines, as in yolo_world_v2_l_..._mask-refine_finetune_coco."""
    pre_transform = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True, with_mask=True, mask2bbox=True),
    ]
    albu = dict(
        type='Albu',
        transforms=[
            dict(type='Blur', p=0.01),
            dict(type='MedianBlur', p=0.01),
            dict(type='ToGray', p=0.01),
            dict(type='CLAHE', p=0.01),
        ],
        bbox_params=dict(
            type='BboxParams',
            format='pascal_voc',
            label_fields=['gt_bboxes_labels', 'gt_ignore_flags'],
        ),
        keymap={'img': 'image', 'gt_bboxes': 'bboxes'},
    )
    last_transform = [dict(type='RemoveDataElement', keys=['gt_masks'])]
    if albu_available():
        last_transform.append(albu)
    last_transform += [dict(type='YOLOv5HSVRandomAug'), dict(type='RandomFlip', prob=0.5)]
    text_transform = [
        dict(
            type='RandomLoadText',
            num_neg_samples=(80, 80),
            max_num_samples=80,
            padding_to_max=True,
            padding_value='',
        ),
        dict(
            type='PackDetInputs',
            meta_keys=(
                'img_id',
                'img_path',
                'ori_shape',
                'img_shape',
                'flip',
                'flip_direction',
                'texts',
            ),
        ),
    ]
    mosaic_affine = [
        dict(
            type='MultiModalMosaic', img_scale=IMG_SCALE, pad_val=114.0, pre_transform=pre_transform
        ),
        dict(type='YOLOv5CopyPaste', prob=copypaste_prob),
        dict(
            type='YOLOv5RandomAffine',
            max_rotate_degree=0.0,
            max_shear_degree=0.0,
            max_aspect_ratio=100.0,
            scaling_ratio_range=(1 - affine_scale, 1 + affine_scale),
            border=(-IMG_SCALE[0] // 2, -IMG_SCALE[1] // 2),
            border_val=(114, 114, 114),
            min_area_ratio=0.01,
            use_mask_refine=True,
        ),
    ]
    train = [
        *pre_transform,
        *mosaic_affine,
        dict(
            type='YOLOv5MultiModalMixUp',
            prob=mixup_prob,
            pre_transform=[*pre_transform, *mosaic_affine],
        ),
        *last_transform,
        *text_transform,
    ]
    stage2 = [
        *pre_transform,
        dict(type='YOLOv5KeepRatioResize', scale=IMG_SCALE),
        dict(type='LetterResize', scale=IMG_SCALE, allow_scale_up=True, pad_val=dict(img=114.0)),
        dict(
            type='YOLOv5RandomAffine',
            max_rotate_degree=0.0,
            max_shear_degree=0.0,
            scaling_ratio_range=(1 - affine_scale, 1 + affine_scale),
            max_aspect_ratio=100,
            border_val=(114, 114, 114),
            min_area_ratio=0.01,
            use_mask_refine=True,
        ),
        *last_transform,
        *text_transform,
    ]
    test = [
        dict(type='LoadImageFromFile'),
        dict(type='YOLOv5KeepRatioResize', scale=IMG_SCALE),
        dict(type='LetterResize', scale=IMG_SCALE, allow_scale_up=False, pad_val=dict(img=114)),
        dict(type='LoadAnnotations', with_bbox=True),
        dict(type='LoadText'),
        dict(
            type='PackDetInputs',
            meta_keys=(
                'img_id',
                'img_path',
                'ori_shape',
                'img_shape',
                'scale_factor',
                'pad_param',
                'texts',
            ),
        ),
    ]
    return train, stage2, test


def check_train_batch(batch, num_imgs):
    assert batch['inputs'].shape == (num_imgs, 3, *IMG_SCALE[::-1])
    rows = batch['data_samples']['bboxes_labels']
    texts = batch['data_samples']['texts']
    assert rows.shape[1] == 6 and len(texts) == num_imgs
    assert all(len(t) == 80 for t in texts)
    boxes = rows[:, 2:].numpy()
    assert (boxes >= 0).all() and (boxes[:, 2] <= IMG_SCALE[0]).all()
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    for row in rows.numpy():
        img_idx, label = int(row[0]), int(row[1])
        text = texts[img_idx][label]
        assert text in CLASS_NAMES  # a real class, never padding
    return rows, texts


@pytest.mark.parametrize('seed', [0, 1])
def test_stage1_pipeline_runs_and_labels_name_their_objects(infos, seed):
    np.random.seed(seed)
    import random

    random.seed(seed)
    train, _, _ = recipe_pipelines(mixup_prob=1.0 if seed else 0.15, copypaste_prob=1.0)
    ds = MiniMultiModalDataset(infos, train)
    samples = [ds[i] for i in range(3)]
    rows, texts = check_train_batch(yolov5_collate(samples), 3)
    assert len(rows) > 0
    for sample in samples:
        assert sample['inputs'].dtype == torch.uint8
        assert 'gt_masks' not in sample['data_samples'].gt_instances


def test_stage1_colours_match_texts_without_photometric_noise(infos):
    """Geometry only (HSV/Albu removed, no mixup): the polygon-refined box of each object
    covers pixels of its class colour, and its label's text is its class name."""
    import random

    np.random.seed(5)
    random.seed(5)
    train, _, _ = recipe_pipelines(mixup_prob=0.0, copypaste_prob=0.0)
    train = [c for c in train if c['type'] not in ('YOLOv5HSVRandomAug', 'Albu')]
    ds = MiniMultiModalDataset(infos, train)
    checked = 0
    for i in range(len(infos)):
        out = ds[i]
        img = out['inputs'].permute(1, 2, 0).numpy().astype(int)
        texts = out['data_samples'].texts
        gt = out['data_samples'].gt_instances
        for b, label in zip(gt.bboxes.tensor.numpy(), gt.labels.numpy()):
            cls = CLASS_NAMES.index(texts[label])
            x1, y1, x2, y2 = (
                np.floor(b[:2]).astype(int).tolist() + np.ceil(b[2:]).astype(int).tolist()
            )
            patch = img[y1:y2, x1:x2].reshape(-1, 3)
            dist = np.abs(patch - np.array(class_colour(cls))).max(1)
            assert (dist <= 3).any(), (texts[label], b)
            checked += 1
    assert checked > 0


def test_stage2_pipeline(infos):
    import random

    np.random.seed(3)
    random.seed(3)
    _, stage2, _ = recipe_pipelines()
    ds = MiniMultiModalDataset(infos, stage2)
    check_train_batch(yolov5_collate([ds[i] for i in range(4)]), 4)


def test_test_pipeline_maps_boxes_back_to_the_original(infos):
    """The recipe loads annotations after the letterbox (they stay in original pixels, for
    the metric); loading them before it, the letterboxed boxes map back exactly with the
    detector's rescale: (box - [left, top, left, top]) / scale_factor."""
    _, _, test = recipe_pipelines()
    moved = [test[0], test[3], *test[1:3], *test[4:]]
    for pipeline, letterboxed in ((test, False), (moved, True)):
        ds = MiniMultiModalDataset(infos, pipeline, test_mode=True)
        for i, info in enumerate(infos):
            out = ds[i]
            meta = out['data_samples'].metainfo
            assert out['inputs'].shape == (3, 64, 64)
            assert meta['texts'] == CLASS_NAMES
            assert 'dataset' not in out
            top, _, left, _ = meta['pad_param']
            sx, sy = meta['scale_factor']
            boxes = out['data_samples'].gt_instances.bboxes.tensor.numpy()
            if letterboxed:
                boxes = (boxes - [left, top, left, top]) / [sx, sy, sx, sy]
            orig = np.array([inst['bbox'] for inst in info['instances'] if not inst['ignore_flag']])
            np.testing.assert_allclose(boxes, orig, atol=1e-3)
