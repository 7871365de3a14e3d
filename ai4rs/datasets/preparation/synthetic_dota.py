"""A small, deterministic DOTA-style dataset of rotated objects on textured ground.

Used by the quick start and by tests: it is written in the layout of a split
DOTA dataset (``images/*.png`` + ``annfiles/*.txt`` with one
``x1 y1 x2 y2 x3 y3 x4 y4 class difficulty`` line per object), so the
ordinary ``DOTADataset`` reads it.

Each class has its own look, so a small detector can learn it in minutes:

- ``vehicle``: a long thin bar (aspect about 3:1) with a dark windscreen at one end;
- ``pool``: a near-square blue rectangle with a light rim;
- ``court``: a green rectangle (aspect about 1.8:1) with a white centre line.

Objects never overlap; sizes, angles (any direction) and positions are random.
"""

import json
import math
import os
import os.path as osp

import cv2
import numpy as np
import torch

from ai4rs.structures.bbox import rbox_corners

from .manifest import existing_dataset, write_manifest

CLASSES = ('vehicle', 'pool', 'court')
PALETTE = [(220, 60, 60), (60, 120, 230), (60, 200, 90)]

#: (long side range in px, aspect range = long / short) per class
_SHAPES = {
    'vehicle': ((18, 40), (2.6, 3.4)),
    'pool': ((22, 46), (1.0, 1.3)),
    'court': ((30, 60), (1.6, 2.0)),
}


def _corners(cx, cy, w, h, theta):
    """Corners (4, 2) of one rotated box, by :func:`ai4rs.structures.bbox.rbox_corners`."""
    box = torch.tensor([cx, cy, w, h, theta], dtype=torch.float64)
    return rbox_corners(box).numpy()


def _background(rng, size):
    """Low-contrast ground texture: smooth colour blobs plus fine noise."""
    base = rng.uniform(90, 150, size=3)
    coarse = rng.normal(0, 18, size=(size // 16 + 1, size // 16 + 1, 3))
    coarse = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    fine = rng.normal(0, 6, size=(size, size, 3))
    return np.clip(base + coarse + fine, 0, 255)


def _fill(img, corners, color):
    cv2.fillPoly(img, [np.round(corners * 16).astype(np.int32)], color, cv2.LINE_AA, shift=4)


def _draw_object(img, name, cx, cy, w, h, theta, rng):
    jitter = rng.uniform(-20, 20, size=3)
    if name == 'vehicle':
        color = np.clip(np.array([60, 60, 220]) + jitter, 0, 255)  # BGR red body
        _fill(img, _corners(cx, cy, w, h, theta), color.tolist())
        # windscreen at the front quarter
        fx, fy = cx + 0.3 * w * math.cos(theta), cy + 0.3 * w * math.sin(theta)
        _fill(img, _corners(fx, fy, 0.15 * w, 0.8 * h, theta), (30, 30, 30))
    elif name == 'pool':
        _fill(img, _corners(cx, cy, w, h, theta), (235, 235, 235))
        color = np.clip(np.array([230, 140, 50]) + jitter, 0, 255)  # BGR blue water
        _fill(img, _corners(cx, cy, 0.8 * w, 0.8 * h, theta), color.tolist())
    else:
        color = np.clip(np.array([70, 170, 60]) + jitter, 0, 255)  # BGR green
        _fill(img, _corners(cx, cy, w, h, theta), color.tolist())
        _fill(img, _corners(cx, cy, 0.06 * w, 0.9 * h, theta), (250, 250, 250))


def _sample_objects(rng, size, num_objects, margin=4):
    """Non-overlapping objects as (class, cx, cy, w, h, theta) (w is the long side)."""
    objects, discs = [], []
    tries = 0
    while len(objects) < num_objects and tries < 200 * num_objects:
        tries += 1
        name = CLASSES[int(rng.integers(len(CLASSES)))]
        (lo, hi), (alo, ahi) = _SHAPES[name]
        w = rng.uniform(lo, hi)
        h = w / rng.uniform(alo, ahi)
        theta = rng.uniform(-math.pi, math.pi)
        radius = math.hypot(w, h) / 2
        cx = rng.uniform(radius + margin, size - radius - margin)
        cy = rng.uniform(radius + margin, size - radius - margin)
        if any(math.hypot(cx - x, cy - y) < radius + r + 2 for x, y, r in discs):
            continue
        discs.append((cx, cy, radius))
        objects.append((name, cx, cy, w, h, theta))
    return objects


def make_image(rng, size=256, num_objects=(3, 8)):
    """One image (H, W, 3) BGR uint8 and its objects."""
    img = _background(rng, size)
    objects = _sample_objects(rng, size, int(rng.integers(num_objects[0], num_objects[1] + 1)))
    for obj in objects:
        _draw_object(img, *obj, rng)
    img = cv2.GaussianBlur(img, (3, 3), 0.6)
    return np.clip(img, 0, 255).astype(np.uint8), objects


def _label_lines(objects):
    lines = ['imagesource:ai4rs-synthetic', 'gsd:null']
    for name, cx, cy, w, h, theta in objects:
        pts = _corners(cx, cy, w, h, theta).reshape(-1)
        lines.append(' '.join(f'{v:.1f}' for v in pts) + f' {name} 0')
    return lines


def generate_dataset(out_dir, num_train=160, num_val=40, img_size=256, seed=0):
    """Write ``{out_dir}/{train,val}/{images,annfiles}``; return the manifest dict.

    Deterministic for given arguments. If ``out_dir`` already holds a dataset
    written with the same arguments (``manifest.json``), nothing is rewritten.
    A different dataset there is an error rather than a silent mix.
    """
    # the generator's id, kept from its first location so existing datasets stay valid
    manifest = dict(
        generator='ai4rs.datasets.synthetic_dota',
        version=1,
        num_train=num_train,
        num_val=num_val,
        img_size=img_size,
        seed=seed,
        classes=list(CLASSES),
    )
    if existing_dataset(out_dir, manifest):
        return manifest
    rng = np.random.default_rng(seed)
    for split, count in (('train', num_train), ('val', num_val)):
        img_dir, ann_dir = osp.join(out_dir, split, 'images'), osp.join(out_dir, split, 'annfiles')
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(ann_dir, exist_ok=True)
        for i in range(count):
            img, objects = make_image(rng, img_size)
            name = f'{split}{i:04d}__{img_size}__0___0'
            if not cv2.imwrite(osp.join(img_dir, name + '.png'), img):
                raise OSError(f'could not write {osp.join(img_dir, name + ".png")}')
            with open(osp.join(ann_dir, name + '.txt'), 'w') as f:
                f.write('\n'.join(_label_lines(objects)) + '\n')
    write_manifest(out_dir, manifest)
    return manifest


def write_class_texts(out_dir: str) -> str:
    """Write ``{out_dir}/texts/class_texts.json``: one text per class, its name (``[["vehicle"],
    ["pool"], ["court"]]``), the class-text file of the open-vocabulary rotated quick start.
    Returns its path."""
    path = osp.join(out_dir, 'texts', 'class_texts.json')
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        json.dump([[name] for name in CLASSES], f)
    return path
