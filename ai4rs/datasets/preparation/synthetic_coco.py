"""A small, deterministic COCO-format dataset of named coloured shapes on textured ground.

Used by tests and the YOLO-World quick start. Layout (the ordinary ``CocoDataset`` /
``MultiModalDataset`` read it)::

    {out_dir}/annotations/instances_train.json   COCO json: images, annotations, categories
    {out_dir}/annotations/instances_val.json
    {out_dir}/train/{000001..}.{jpg|png}
    {out_dir}/val/...
    {out_dir}/texts/class_texts.json             [["red circle"], ["blue square"], ...]
    {out_dir}/manifest.json                      the generator's arguments

Each class is a shape with its own colour, named as a CLIP vocabulary would hold it:
``red circle`` (32-gon), ``blue square``, ``green triangle``, ``yellow star`` (10 corners),
at random size, rotation and position, never overlapping and fully inside the image.
Each annotation has a polygon ``segmentation`` (one ring, 2 decimals), ``bbox`` = the tight
``[x, y, w, h]`` box of that polygon, ``area`` = the polygon's area (shoelace), ``iscrowd``
0. Category ids are 1..4; image and annotation ids count from 1.
"""

import json
import math
import os
import os.path as osp

import cv2
import numpy as np

from .manifest import existing_dataset, write_manifest

CLASSES = ('red circle', 'blue square', 'green triangle', 'yellow star')
PALETTE = [(220, 40, 40), (40, 80, 220), (40, 180, 60), (230, 210, 40)]

#: BGR fill colour of each class (the RGB palette, reversed)
_BGR = {name: rgb[::-1] for name, rgb in zip(CLASSES, PALETTE)}


def shape_polygon(name: str, cx: float, cy: float, radius: float, theta: float) -> np.ndarray:
    """Corners (P, 2) float64 of a class's shape, inscribed in a circle of ``radius``.

    Args:
        name (str): one of :data:`CLASSES`.
        cx, cy (float): centre in pixels.
        radius (float): circumradius in pixels.
        theta (float): rotation in radians.
    """
    if name == 'red circle':
        angles, radii = np.linspace(0, 2 * np.pi, 32, endpoint=False), np.full(32, radius)
    elif name == 'blue square':
        angles, radii = np.pi / 4 + np.arange(4) * np.pi / 2, np.full(4, radius)
    elif name == 'green triangle':
        angles, radii = -np.pi / 2 + np.arange(3) * 2 * np.pi / 3, np.full(3, radius)
    elif name == 'yellow star':
        angles = -np.pi / 2 + np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, radius, 0.45 * radius)
    else:
        raise ValueError(f'unknown shape class {name!r}; classes are {CLASSES}')
    angles = angles + theta
    return np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1)


def polygon_area(points: np.ndarray) -> float:
    """Area of a simple polygon (P, 2) by the shoelace formula."""
    x, y = points[:, 0], points[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Low-contrast grey-brown texture (H, W, 3) float: smooth blobs plus fine noise."""
    base = rng.uniform(90, 150, size=3)
    coarse = rng.normal(0, 15, size=(height // 16 + 1, width // 16 + 1, 3))
    coarse = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    fine = rng.normal(0, 5, size=(height, width, 3))
    return np.clip(base + coarse + fine, 0, 255)


def _sample_objects(rng, width, height, num_objects, margin=2):
    """Non-overlapping (class, cx, cy, radius, theta); each shape's disc lies in the image."""
    short = min(width, height)
    r_lo, r_hi = max(4.0, 0.03 * short), max(6.0, 0.18 * short)
    objects = []
    tries = 0
    while len(objects) < num_objects and tries < 200 * max(num_objects, 1):
        tries += 1
        name = CLASSES[int(rng.integers(len(CLASSES)))]
        radius = float(rng.uniform(r_lo, r_hi))
        theta = float(rng.uniform(0, 2 * math.pi))
        if radius + margin >= min(width, height) / 2:
            continue
        cx = float(rng.uniform(radius + margin, width - radius - margin))
        cy = float(rng.uniform(radius + margin, height - radius - margin))
        if any(math.hypot(cx - x, cy - y) < radius + r + 2 for _, x, y, r, _ in objects):
            continue
        objects.append((name, cx, cy, radius, theta))
    return objects


def make_image(
    rng: np.random.Generator,
    width: int = 320,
    height: int | None = None,
    num_objects: tuple[int, int] = (1, 6),
):
    """One image (H, W, 3) BGR uint8 and its objects as (class name, polygon (P, 2)).

    Polygons are rounded to 2 decimals (as written to the json) before drawing.
    """
    height = width if height is None else height
    img = _background(rng, width, height)
    count = int(rng.integers(num_objects[0], num_objects[1] + 1))
    objects = []
    for name, cx, cy, radius, theta in _sample_objects(rng, width, height, count):
        polygon = np.round(shape_polygon(name, cx, cy, radius, theta), 2)
        jitter = rng.uniform(-20, 20, size=3)
        color = np.clip(np.array(_BGR[name], dtype=np.float64) + jitter, 0, 255)
        cv2.fillPoly(
            img, [np.round(polygon * 16).astype(np.int32)], color.tolist(), cv2.LINE_AA, shift=4
        )
        objects.append((name, polygon))
    img = cv2.GaussianBlur(img, (3, 3), 0.6)
    return np.clip(img, 0, 255).astype(np.uint8), objects


def annotation_record(ann_id: int, image_id: int, category_id: int, polygon: np.ndarray) -> dict:
    """COCO annotation of one polygon: tight bbox, shoelace area, one-ring segmentation."""
    flat = [round(float(v), 2) for v in polygon.reshape(-1)]
    pts = np.asarray(flat, dtype=np.float64).reshape(-1, 2)
    x1, y1 = pts.min(axis=0)
    x2, y2 = pts.max(axis=0)
    return dict(
        id=ann_id,
        image_id=image_id,
        category_id=category_id,
        segmentation=[flat],
        area=round(polygon_area(pts), 4),
        bbox=[
            round(float(x1), 2),
            round(float(y1), 2),
            round(float(x2 - x1), 2),
            round(float(y2 - y1), 2),
        ],
        iscrowd=0,
    )


def generate_dataset(
    out_dir: str,
    num_train: int = 160,
    num_val: int = 40,
    img_size: int | tuple[int, int] = 320,
    seed: int = 0,
    img_suffix: str = 'jpg',
) -> dict:
    """Write the dataset described in the module docstring; return the manifest dict.

    Deterministic for given arguments. If ``out_dir`` already holds a dataset written with
    the same arguments (``manifest.json``), nothing is rewritten; a different one there, or
    a non-empty folder that is not a generated dataset, is an error.

    Args:
        out_dir (str): output folder.
        num_train, num_val (int): number of images per split.
        img_size (int | tuple[int, int]): side of square images, or (width, height).
        seed (int): random seed.
        img_suffix (str): ``'jpg'`` or ``'png'``.
    """
    width, height = (img_size, img_size) if isinstance(img_size, int) else map(int, img_size)
    img_suffix = img_suffix.lstrip('.').lower()
    if img_suffix not in ('jpg', 'png'):
        raise ValueError(f"img_suffix must be 'jpg' or 'png', got {img_suffix!r}")
    manifest = dict(
        generator='ai4rs.datasets.synthetic_coco',
        version=1,
        num_train=num_train,
        num_val=num_val,
        img_size=[width, height],
        seed=seed,
        img_suffix=img_suffix,
        classes=list(CLASSES),
    )
    if existing_dataset(out_dir, manifest):
        return manifest
    categories = [
        dict(id=i + 1, name=name, supercategory='shape') for i, name in enumerate(CLASSES)
    ]
    cat_id = {c['name']: c['id'] for c in categories}
    rng = np.random.default_rng(seed)
    os.makedirs(osp.join(out_dir, 'annotations'), exist_ok=True)
    for split, count in (('train', num_train), ('val', num_val)):
        os.makedirs(osp.join(out_dir, split), exist_ok=True)
        images, annotations = [], []
        for i in range(count):
            img, objects = make_image(rng, width, height)
            file_name = f'{i + 1:06d}.{img_suffix}'
            path = osp.join(out_dir, split, file_name)
            params = [cv2.IMWRITE_JPEG_QUALITY, 95] if img_suffix == 'jpg' else []
            if not cv2.imwrite(path, img, params):
                raise OSError(f'could not write {path}')
            images.append(dict(id=i + 1, file_name=file_name, width=width, height=height))
            for name, polygon in objects:
                annotations.append(
                    annotation_record(len(annotations) + 1, i + 1, cat_id[name], polygon)
                )
        coco = dict(
            info=dict(description=f'ai4rs synthetic shapes, {split}', version='1'),
            images=images,
            annotations=annotations,
            categories=categories,
        )
        with open(osp.join(out_dir, 'annotations', f'instances_{split}.json'), 'w') as f:
            json.dump(coco, f)
    os.makedirs(osp.join(out_dir, 'texts'), exist_ok=True)
    with open(osp.join(out_dir, 'texts', 'class_texts.json'), 'w') as f:
        f.write(json.dumps([[name] for name in CLASSES]) + '\n')
    write_manifest(out_dir, manifest)
    return manifest
