"""Evaluate DOTA Task1 result files against a folder of DOTA label files, offline.

This is what users do with the official devkit (``dota_evaluation_task1.py``) on DOTA-val:
the detections are the ``Task1_{class}.txt`` files of a submission (for instance written by
``DOTAMetric(merge_patches=True, outfile_prefix=...)``) and the labels are the raw
full-image ``labelTxt`` files (``imagesource:`` / ``gsd:`` headers allowed)::

    python tools/analysis_tools/dota_eval.py --det-dir work_dirs/val_results \\
        --ann-dir data/DOTA/val/labelTxt --mode devkit --iou-thr 0.5 --out-json ap.json

``--mode devkit`` (default) scores like the devkit: exact polygon IoU, IoU > thr, difficult
objects ignored, VOC07 11-point AP, mAP over all classes. ``--mode mmrotate`` scores like
mmrotate's validation: both polygons and detections become minimum-area rectangles
(``qbox2rbox``), rotated-box IoU >= thr, mAP over the classes with ground truth, and by default
nothing ignored (``DOTADataset``'s ``diff_thr=100``).

Every label file of ``--ann-dir`` is an image of the evaluation (an image without detections
only adds ground truth). A detection naming an image without label file, a malformed line or an
unknown class name is an error naming the file and the line.

Patch labels: when every label file is a patch of ``img_split.py``
(``{image}__{size}__{x}___{y}.txt``, e.g. ``data/synthetic_dota/val/annfiles`` of the quick
start) and the detections name whole images (``DOTAMetric(merge_patches=True)``'s Task1 files),
the patches' objects are translated back onto their image and the copies of an object that
several overlapping patches hold are counted once (:func:`merge_patch_labels`)::

    python tools/analysis_tools/dota_eval.py --det-dir work_dirs/quickstart/TIMESTAMP/Task1 \
        --ann-dir data/synthetic_dota/val/annfiles

Classes: ``--classes``, or ``--dataset-version``; with neither, the DOTA version whose classes
include every class of the ``Task1_{class}.txt`` files (1.0, else 1.5, else 2.0), and for other
class names the classes of those files (alphabetical).
"""

import argparse
import glob
import json
import os.path as osp
import sys
from collections.abc import Sequence

import numpy as np

from ai4rs.datasets.dota import DOTADataset, DOTAv2Dataset, DOTAv15Dataset, load_dota_labels
from ai4rs.evaluation.functional import (
    eval_matches,
    load_task1_dir,
    match_detections,
    parse_patch_name,
    print_map_summary,
)

DATASET_CLASSES = {
    '1.0': tuple(DOTADataset.METAINFO['classes']),
    '1.5': tuple(DOTAv15Dataset.METAINFO['classes']),
    '2.0': tuple(DOTAv2Dataset.METAINFO['classes']),
}
# difficulty above which a ground truth is ignored, per mode: the devkit ignores every
# difficult object, mmrotate's DOTADataset (diff_thr=100) none
DEFAULT_DIFF_THR = {'devkit': 0, 'mmrotate': 100}
# two objects of one class in the same image whose corners all agree to within this many
# pixels are copies of one object held by overlapping patches
SAME_OBJECT_TOL = 0.5


def load_label_dir(ann_dir: str, classes: Sequence[str]) -> dict[str, dict]:
    """Read every ``*.txt`` DOTA label file of ``ann_dir``.

    Returns:
        dict: image name -> ``polygons`` (n, 8) float64, ``labels`` (n,) int64,
        ``difficulties`` (n,) int64.

    Raises:
        FileNotFoundError: ``ann_dir`` is not a folder or holds no ``.txt`` file.
        ValueError: a malformed line or an unknown class (file and line named).
    """
    if not osp.isdir(ann_dir):
        raise FileNotFoundError(f'--ann-dir {ann_dir!r} is not a folder')
    files = sorted(glob.glob(osp.join(ann_dir, '*.txt')))
    if not files:
        raise FileNotFoundError(f'--ann-dir {ann_dir!r} holds no .txt label file')
    cls_map = {c: i for i, c in enumerate(classes)}
    out = {}
    for path in files:
        labels = load_dota_labels(path, strict=True)
        for name, lineno in zip(labels.names, labels.line_numbers):
            if name not in cls_map:
                raise ValueError(
                    f'{path}, line {lineno}: unknown class {name!r}; the classes '
                    f'are {list(classes)} (see --classes / --dataset-version)'
                )
        out[osp.splitext(osp.basename(path))[0]] = dict(
            polygons=labels.polygons.reshape(-1, 8),
            labels=np.asarray([cls_map[n] for n in labels.names], np.int64),
            difficulties=labels.difficulties.reshape(-1),
        )
    return out


def task1_classes(det_dir: str) -> list[str]:
    """The classes of the ``Task1_{class}.txt`` files of ``det_dir`` (alphabetical).

    Raises:
        FileNotFoundError: ``det_dir`` is not a folder or holds no ``Task1_*.txt`` file.
    """
    if not osp.isdir(det_dir):
        raise FileNotFoundError(f'--det-dir {det_dir!r} is not a folder')
    files = sorted(glob.glob(osp.join(det_dir, 'Task1_*.txt')))
    if not files:
        raise FileNotFoundError(
            f'--det-dir {det_dir!r} holds no Task1_{{class}}.txt file (give the folder '
            'that DOTAMetric(format_only=True, outfile_prefix=...) wrote)'
        )
    return [osp.basename(f)[len('Task1_') : -len('.txt')] for f in files]


def default_classes(det_dir: str) -> tuple[list[str], str]:
    """Classes when neither ``--classes`` nor ``--dataset-version`` is given.

    Returns:
        tuple: (classes, where they come from, for the log): the classes of the first DOTA
        version (1.0, 1.5, 2.0) that has every class of the Task1 files, else the Task1
        files' own classes.
    """
    found = task1_classes(det_dir)
    for version in ('1.0', '1.5', '2.0'):
        if set(found) <= set(DATASET_CLASSES[version]):
            return list(DATASET_CLASSES[version]), f'DOTA-v{version}'
    return found, f'the Task1 files of {det_dir}'


def merge_patch_labels(gts: dict[str, dict], tol: float = SAME_OBJECT_TOL) -> dict[str, dict]:
    """Patch labels (``load_label_dir`` of ``img_split.py``'s annfiles) -> image labels.

    Each patch ``{image}__{size}__{x}___{y}``'s polygons are moved by ``(x, y)`` onto its
    image. An object that lies in several overlapping patches is one object: of the copies
    with the same class and every corner within ``tol`` pixels, the first is kept, with the
    smallest difficulty of the copies (``img_split`` marks the copy cut by a window
    difficulty 2; the whole copy keeps the original difficulty).

    Args:
        gts (dict): patch name -> ``polygons`` (n, 8), ``labels`` (n,), ``difficulties`` (n,).
        tol (float): largest corner difference, in pixels, between copies of one object.

    Returns:
        dict: image name -> the same three arrays in image coordinates.

    Raises:
        ValueError: a name is not a patch name.
    """
    per_image: dict[str, list] = {}
    for name in sorted(gts):
        image, x, y = parse_patch_name(name)
        gt = gts[name]
        polys = gt['polygons'] + np.array([x, y] * 4, np.float64)
        per_image.setdefault(image, []).append((polys, gt['labels'], gt['difficulties']))
    out = {}
    for image, parts in per_image.items():
        polys = np.concatenate([p[0] for p in parts]).reshape(-1, 8)
        labels = np.concatenate([p[1] for p in parts]).astype(np.int64)
        diffs = np.concatenate([p[2] for p in parts]).astype(np.int64)
        keep: list[int] = []
        for i in range(len(polys)):
            kept = np.asarray(keep, np.int64)
            same = (
                kept[
                    (labels[kept] == labels[i])
                    & (np.abs(polys[kept] - polys[i]).max(axis=1) <= tol)
                ]
                if len(kept)
                else kept
            )
            if len(same):
                diffs[same[0]] = min(diffs[same[0]], diffs[i])
            else:
                keep.append(i)
        out[image] = dict(polygons=polys[keep], labels=labels[keep], difficulties=diffs[keep])
    return out


def _is_patch_name(name: str) -> bool:
    try:
        parse_patch_name(name)
    except ValueError:
        return False
    return True


def _to_rbox(polys: np.ndarray) -> np.ndarray:
    import torch

    from ai4rs.structures.bbox import qbox2rbox

    polys = np.asarray(polys, np.float64).reshape(-1, 8)
    if not len(polys):
        return np.zeros((0, 5))
    return qbox2rbox(torch.from_numpy(polys)).numpy().astype(np.float64).reshape(-1, 5)


def evaluate_task1(
    det_dir: str,
    ann_dir: str,
    classes: Sequence[str] = DATASET_CLASSES['1.0'],
    mode: str = 'devkit',
    iou_thr: float = 0.5,
    use_07_metric: bool = True,
    diff_thr: int | None = None,
    logger=None,
) -> dict:
    """Evaluate the Task1 files of ``det_dir`` against the label files of ``ann_dir``.

    Args:
        det_dir (str): folder of ``Task1_{class}.txt`` files (a missing file = no detection).
        ann_dir (str): folder of DOTA label files ``{image}.txt``.
        classes (list[str]): class names.
        mode (str): 'devkit' or 'mmrotate'.
        iou_thr (float): IoU threshold.
        use_07_metric (bool): 11-point AP (True) or area AP.
        diff_thr (int, optional): ground truths with difficulty > diff_thr are ignored;
            defaults to 0 for 'devkit' and 100 for 'mmrotate'.
        logger: mmengine ``print_log`` target of the table (None: stdout).

    Returns:
        dict: ``mAP`` (float) and ``AP`` (class -> float), in [0, 1].
    """
    if mode not in DEFAULT_DIFF_THR:
        raise ValueError(f"mode must be 'devkit' or 'mmrotate', got {mode!r}")
    if diff_thr is None:
        diff_thr = DEFAULT_DIFF_THR[mode]
    classes = list(classes)
    gts = load_label_dir(ann_dir, classes)
    dets, missing, first_seen = load_task1_dir(det_dir, classes)
    if all(_is_patch_name(n) for n in gts) and not any(n in gts for n in first_seen):
        # patch labels and whole-image detections (DOTAMetric(merge_patches=True))
        num_patches = len(gts)
        gts = merge_patch_labels(gts)
        print(
            f'the {num_patches} label files of {ann_dir} are patches of img_split.py: '
            f'evaluating on their {len(gts)} images (objects held by several patches counted once)',
            file=sys.stderr,
        )
    if missing:
        print(
            f'warning: no Task1 file in {det_dir} for {len(missing)} class(es), counted as '
            f'without detections: {missing}',
            file=sys.stderr,
        )
    for name, (path, lineno) in first_seen.items():
        if name not in gts:
            raise ValueError(
                f'{path}, line {lineno}: image {name!r} has no label file in {ann_dir}'
            )
    box_type = 'qbox' if mode == 'devkit' else 'rbox'
    empty = np.zeros((0, 9))
    det_results, annotations = [], []
    for name, gt in gts.items():
        per_cls = dets.get(name, [empty] * len(classes))
        if box_type == 'rbox':
            per_cls = [np.concatenate([_to_rbox(d[:, :8]), d[:, 8:]], axis=1) for d in per_cls]
        det_results.append(per_cls)
        boxes = gt['polygons'] if box_type == 'qbox' else _to_rbox(gt['polygons'])
        ignore = gt['difficulties'] > diff_thr
        annotations.append(
            dict(
                bboxes=boxes[~ignore],
                labels=gt['labels'][~ignore],
                bboxes_ignore=boxes[ignore],
                labels_ignore=gt['labels'][ignore],
            )
        )
    matches = match_detections(det_results, annotations, box_type, mode, num_classes=len(classes))
    mean_ap, per_class = eval_matches(matches, iou_thr, use_07_metric)
    print_map_summary(mean_ap, per_class, classes, logger=logger)
    return dict(mAP=float(mean_ap), AP={c: float(r['ap']) for c, r in zip(classes, per_class)})


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Evaluate DOTA Task1 result files against DOTA label files'
    )
    parser.add_argument('--det-dir', required=True, help='folder of Task1_{class}.txt files')
    parser.add_argument('--ann-dir', required=True, help='folder of DOTA label .txt files')
    parser.add_argument(
        '--mode',
        choices=['devkit', 'mmrotate'],
        default='devkit',
        help='matching semantics (default: devkit)',
    )
    parser.add_argument('--iou-thr', type=float, default=0.5, help='IoU threshold')
    parser.add_argument(
        '--eval-mode',
        choices=['11points', 'area'],
        default='11points',
        help='AP computation (default: 11points, VOC07)',
    )
    parser.add_argument(
        '--diff-thr',
        type=int,
        default=None,
        help='ignore objects whose difficulty exceeds it (default: 0 for devkit, 100 for mmrotate)',
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        '--dataset-version',
        choices=sorted(DATASET_CLASSES),
        default=None,
        help='DOTA version whose classes to use (default: the first version with every '
        'class of the Task1 files, else the classes of the Task1 files)',
    )
    group.add_argument('--classes', nargs='+', default=None, help='explicit class names')
    parser.add_argument(
        '--out-json', default=None, help='write {"mAP": float, "AP": {class: float}} to this file'
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if not 0 < args.iou_thr <= 1:
        raise SystemExit(f'--iou-thr must be in (0, 1], got {args.iou_thr}')
    try:
        if args.classes:
            classes = args.classes
        elif args.dataset_version:
            classes = DATASET_CLASSES[args.dataset_version]
        else:
            classes, source = default_classes(args.det_dir)
            print(f'classes ({source}): {", ".join(classes)}', file=sys.stderr)
        result = evaluate_task1(
            args.det_dir,
            args.ann_dir,
            classes,
            args.mode,
            args.iou_thr,
            args.eval_mode == '11points',
            args.diff_thr,
        )
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f'error: {e}') from None
    print(f'mAP: {result["mAP"]:.4f}')
    if args.out_json:
        with open(args.out_json, 'w', encoding='utf-8') as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == '__main__':
    main()
