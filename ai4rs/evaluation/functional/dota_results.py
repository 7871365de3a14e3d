"""DOTA result handling: merging patch detections back onto full images, Task1 files.

Patches written by ``tools/data/dota/split/img_split.py`` are named
``{image}__{window}__{x}___{y}``; ``(x, y)`` is the patch's top-left corner in the full
image. Splitting never rescales, so a detection goes back to the full image by a
translation. Detections of one image and class coming from overlapping patches are merged by
rotated NMS (IoU 0.1 by default).

The DOTA Task1 submission is one file per class, ``Task1_{class}.txt``, with one line per
detection::

    {image} {score} x1 y1 x2 y2 x3 y3 x4 y4

corners as ``%.2f``, in :func:`ai4rs.structures.bbox.rbox2qbox` order for rboxes.
"""

import os
import os.path as osp
import re
import zipfile
from collections import OrderedDict
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from ai4rs.ops import batched_nms, nms_rotated
from ai4rs.structures.bbox import (
    BaseBoxes,
    HorizontalBoxes,
    QuadriBoxes,
    RotatedBoxes,
    boxes_from_tensor,
)

from .mean_ap import BOX_DIMS, boxes_to_polygons
from .polygon_iou import polygon_nms

_PATCH_RE = re.compile(r'__(\d+)___(\d+)')


def parse_patch_name(img_id: str) -> tuple[str, int, int]:
    """Split a patch id ``{image}__{window}__{x}___{y}`` into ``(image, x, y)``.

    The image name is the text before the first ``__`` and ``(x, y)`` the first
    ``__{int}___{int}`` group, as mmrotate's ``merge_results`` reads them.

    Raises:
        ValueError: ``img_id`` has no ``__{x}___{y}`` part (not a patch of img_split).
    """
    img_id = str(img_id)
    found = _PATCH_RE.search(img_id)
    if found is None or '__' not in img_id:
        raise ValueError(
            f'merge_patches: img_id {img_id!r} is not a patch name '
            f'"{{image}}__{{window}}__{{x}}___{{y}}" as written by '
            f'tools/data/dota/split/img_split.py; use merge_patches=False for unsplit images'
        )
    return img_id.split('__')[0], int(found.group(1)), int(found.group(2))


def merge_patch_boxes(boxes: BaseBoxes, scores: Tensor, labels: Tensor, iou_thr: float) -> Tensor:
    """The one patch-merging NMS: class-aware, chosen by the box type.

    Used by :func:`merge_patch_results` (DOTA result merging) and by
    :func:`ai4rs.apis.inference_detector_by_patches` (sliced inference). Boxes of different
    classes never suppress each other.

    - ``RotatedBoxes``: :func:`ai4rs.ops.nms_rotated` in float32 with the classes as labels.
    - ``HorizontalBoxes``: :func:`ai4rs.ops.batched_nms` with ``type='nms'``.
    - ``QuadriBoxes``: exact polygon IoU NMS (:func:`polygon_nms`), class by class.

    Args:
        boxes (BaseBoxes): (N, box_dim) boxes in full-image coordinates.
        scores (Tensor): (N,) scores.
        labels (Tensor): (N,) class indices.
        iou_thr (float): IoU threshold.

    Returns:
        Tensor: (K,) int64 indices of the kept boxes (per class in descending score order).
    """
    if not isinstance(boxes, BaseBoxes):
        raise TypeError(f'merge_patch_boxes needs a box object, got {type(boxes).__name__}')
    scores, labels = torch.as_tensor(scores), torch.as_tensor(labels)
    if len(scores) == 0:
        return torch.zeros(0, dtype=torch.long)
    with torch.no_grad():
        if isinstance(boxes, RotatedBoxes):
            _, keep = nms_rotated(boxes.tensor.float(), scores.float(), iou_thr, labels=labels)
            return keep.long().reshape(-1)
        if isinstance(boxes, HorizontalBoxes):
            _, keep = batched_nms(
                boxes.tensor, scores, labels, dict(type='nms', iou_threshold=iou_thr)
            )
            return keep
    if isinstance(boxes, QuadriBoxes):
        polys = boxes.tensor.detach().cpu().double().numpy()
        sc, lab = scores.detach().cpu().double().numpy(), labels.detach().cpu().numpy()
        keep = [
            idx[polygon_nms(polys[idx], sc[idx], iou_thr)]
            for idx in (np.nonzero(lab == c)[0] for c in np.unique(lab))
        ]
        return torch.from_numpy(np.concatenate(keep).astype(np.int64))
    raise TypeError(f'merge_patch_boxes: no merging rule for {type(boxes).__name__}')


def merge_patch_results(
    results: Sequence[dict], num_classes: int, iou_thr: float = 0.1, box_type: str = 'rbox'
) -> 'OrderedDict[str, list[np.ndarray]]':
    """Map patch detections onto their full images and merge them per image and class.

    Args:
        results (list[dict]): per patch ``img_id`` (str), ``bboxes`` (n, 5|8) in patch
            pixels, ``scores`` (n,), ``labels`` (n,).
        num_classes (int): number of classes.
        iou_thr (float): NMS IoU threshold. Defaults to 0.1.
        box_type (str): the type of the ``bboxes`` arrays, 'rbox' or 'qbox'.

    Returns:
        OrderedDict: full image name -> list over classes of (k, 6) ``rbox + score`` or
        (k, 9) ``qbox + score`` float64 arrays, images in order of first appearance.
    """
    dim = BOX_DIMS[box_type]
    collected: 'OrderedDict[str, list]' = OrderedDict()
    for res in results:
        name, x, y = parse_patch_name(res['img_id'])
        boxes = boxes_from_tensor(
            torch.from_numpy(np.array(res['bboxes'], dtype=np.float64).reshape(-1, dim)), box_type
        )
        boxes.translate_([float(x), float(y)])
        collected.setdefault(name, []).append(
            (
                boxes,
                np.asarray(res['scores'], np.float64).reshape(-1),
                np.asarray(res['labels'], np.int64).reshape(-1),
            )
        )
    merged: 'OrderedDict[str, list[np.ndarray]]' = OrderedDict()
    for name, parts in collected.items():
        boxes = type(parts[0][0]).cat([p[0] for p in parts])
        scores = np.concatenate([p[1] for p in parts])
        labels = np.concatenate([p[2] for p in parts])
        keep = merge_patch_boxes(
            boxes, torch.from_numpy(scores), torch.from_numpy(labels), iou_thr
        ).numpy()
        dets = np.concatenate([boxes.tensor.numpy()[keep], scores[keep, None]], axis=1)
        kept_labels = labels[keep]
        merged[name] = [dets[kept_labels == c] for c in range(num_classes)]
    return merged


def check_outfile_prefix(outfile_prefix: str) -> None:
    """Refuse an existing ``outfile_prefix`` (results must not mix with older ones)."""
    if osp.exists(outfile_prefix):
        raise ValueError(
            f'outfile_prefix {outfile_prefix!r} already exists; it must be a new '
            f'path (delete it or choose another) so results do not mix'
        )


def write_task1_files(
    out_dir: str,
    classes: Sequence[str],
    image_dets: Mapping[str, Sequence[np.ndarray]],
    box_type: str = 'rbox',
) -> list[str]:
    """Write one ``Task1_{class}.txt`` per class (empty ones too) into ``out_dir``.

    Args:
        out_dir (str): an existing folder.
        classes (list[str]): class names, the order of the per-class lists.
        image_dets (Mapping): image name -> per-class (k, 6) ``rbox + score`` or (k, 9)
            ``qbox + score`` arrays.
        box_type (str): 'rbox' or 'qbox'.

    Returns:
        list[str]: the file paths, in class order.
    """
    dim = BOX_DIMS[box_type]
    paths = [osp.join(out_dir, f'Task1_{c}.txt') for c in classes]
    lines: list[list[str]] = [[] for _ in classes]
    for name, per_cls in image_dets.items():
        if len(per_cls) != len(classes):
            raise ValueError(
                f'image {name!r} has detections for {len(per_cls)} classes, expected {len(classes)}'
            )
        for c, dets in enumerate(per_cls):
            dets = np.asarray(dets, dtype=np.float64).reshape(-1, dim + 1)
            if not len(dets):
                continue
            polys = boxes_to_polygons(dets[:, :dim], box_type)
            for poly, score in zip(polys, dets[:, dim]):
                coords = ' '.join(f'{v:.2f}' for v in poly)
                lines[c].append(f'{name} {score:.6g} {coords}\n')
    for path, cls_lines in zip(paths, lines):
        with open(path, 'w', encoding='utf-8') as f:
            f.writelines(cls_lines)
    return paths


def write_task1(
    out_dir: str,
    image_name: str,
    boxes: BaseBoxes,
    labels,
    scores,
    class_names: Sequence[str],
) -> list[str]:
    """Write the Task1 files of one (whole) image, in its pixel coordinates.

    A thin front of :func:`write_task1_files` for one image's detections (the output of
    whole-scene inference): ``Task1_{class}.txt`` for every class of ``class_names`` in
    ``out_dir`` (existing files of those names are replaced).

    Args:
        out_dir (str): an existing folder.
        image_name (str): the image name of every line (no whitespace).
        boxes (RotatedBoxes | QuadriBoxes): (n, 5) / (n, 8) boxes in pixels.
        labels (array-like): (n,) class indices into ``class_names``.
        scores (array-like): (n,) scores.
        class_names (list[str]): the classes.

    Returns:
        list[str]: the file paths, in class order.
    """
    if isinstance(boxes, RotatedBoxes):
        box_type = 'rbox'
    elif isinstance(boxes, QuadriBoxes):
        box_type = 'qbox'
    else:
        raise TypeError(
            f'write_task1 needs RotatedBoxes or QuadriBoxes, got {type(boxes).__name__}'
        )
    if not isinstance(image_name, str) or not image_name or any(c.isspace() for c in image_name):
        raise ValueError(
            f'write_task1: image_name must be one word (no whitespace), got {image_name!r}'
        )
    dets = boxes.tensor.detach().cpu().double().numpy().reshape(-1, BOX_DIMS[box_type])
    labels = np.asarray(torch.as_tensor(labels).cpu(), np.int64).reshape(-1)
    scores = np.asarray(torch.as_tensor(scores).cpu(), np.float64).reshape(-1)
    if not len(labels) == len(scores) == len(dets):
        raise ValueError(
            f'write_task1: {len(dets)} boxes, {len(labels)} labels, {len(scores)} scores'
        )
    bad = (labels < 0) | (labels >= len(class_names))
    if bad.any():
        raise ValueError(
            f'write_task1: label {int(labels[bad][0])} is not an index of the '
            f'{len(class_names)} class_names'
        )
    dets = np.concatenate([dets, scores[:, None]], axis=1)
    per_class = [dets[labels == c] for c in range(len(class_names))]
    return write_task1_files(out_dir, class_names, {image_name: per_class}, box_type)


def zip_files(paths: Sequence[str], zip_path: str) -> str:
    """Zip files flat (by base name) into ``zip_path``; returns it."""
    with zipfile.ZipFile(zip_path, 'w', zipfile.ZIP_DEFLATED) as zf:
        for path in paths:
            zf.write(path, osp.basename(path))
    return zip_path


def write_submission(
    outfile_prefix: str,
    classes: Sequence[str],
    image_dets: Mapping[str, Sequence[np.ndarray]],
    box_type: str = 'rbox',
) -> str:
    """Create ``outfile_prefix/``, its Task1 files and ``outfile_prefix/{basename}.zip``.

    Raises:
        ValueError: ``outfile_prefix`` already exists.

    Returns:
        str: the zip path.
    """
    check_outfile_prefix(outfile_prefix)
    os.makedirs(outfile_prefix)
    paths = write_task1_files(outfile_prefix, classes, image_dets, box_type)
    name = osp.basename(osp.normpath(outfile_prefix))
    return zip_files(paths, osp.join(outfile_prefix, f'{name}.zip'))


def load_task1_file(path: str) -> tuple[list[str], np.ndarray, np.ndarray, list[int]]:
    """Read one Task1 file (blank lines are skipped).

    Returns:
        tuple: image names (list of n str), (n,) float64 scores, (n, 8) float64 polygons,
        1-based line numbers (list of n int).

    Raises:
        ValueError: a line is not ``name score x1 y1 ... x4 y4``; names file and line.
    """
    names, scores, polys, line_numbers = [], [], [], []
    with open(path, encoding='utf-8') as f:
        for lineno, line in enumerate(f, start=1):
            tokens = line.split()
            if not tokens:
                continue
            if len(tokens) != 10:
                raise ValueError(
                    f'{path}, line {lineno}: expected "image score x1 y1 x2 y2 '
                    f'x3 y3 x4 y4" (10 fields), got {len(tokens)}: '
                    f'{line.strip()!r}'
                )
            try:
                values = [float(t) for t in tokens[1:]]
            except ValueError:
                raise ValueError(
                    f'{path}, line {lineno}: score and corners must be numbers: {line.strip()!r}'
                ) from None
            if not np.all(np.isfinite(values)):
                raise ValueError(
                    f'{path}, line {lineno}: score and corners must be finite: {line.strip()!r}'
                )
            names.append(tokens[0])
            scores.append(values[0])
            polys.append(values[1:])
            line_numbers.append(lineno)
    return (
        names,
        np.asarray(scores, np.float64).reshape(-1),
        np.asarray(polys, np.float64).reshape(-1, 8),
        line_numbers,
    )


def load_task1_dir(
    det_dir: str, classes: Sequence[str]
) -> tuple[dict[str, list[np.ndarray]], list[str], dict[str, tuple]]:
    """Read the ``Task1_{class}.txt`` files of a folder.

    Args:
        det_dir (str): the folder.
        classes (list[str]): class names.

    Returns:
        tuple: (image name -> per-class (k, 9) ``qbox + score`` arrays, the classes whose
        file is missing, image name -> (file, line) of its first detection, for messages).
    """
    if not osp.isdir(det_dir):
        raise FileNotFoundError(f'det_dir {det_dir!r} is not a folder')
    per_image: dict[str, list[list]] = {}
    first_seen: dict[str, tuple[str, int]] = {}
    missing = []
    for c, cls in enumerate(classes):
        path = osp.join(det_dir, f'Task1_{cls}.txt')
        if not osp.isfile(path):
            missing.append(cls)
            continue
        names, scores, polys, line_numbers = load_task1_file(path)
        dets = np.concatenate([polys, scores[:, None]], axis=1)
        for k, name in enumerate(names):
            if name not in per_image:
                per_image[name] = [[] for _ in classes]
                first_seen[name] = (path, line_numbers[k])
            per_image[name][c].append(dets[k])
    out = {
        name: [np.asarray(d, np.float64).reshape(-1, 9) for d in per_cls]
        for name, per_cls in per_image.items()
    }
    return out, missing, first_seen
