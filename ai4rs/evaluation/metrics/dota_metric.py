"""DOTAMetric: mAP of oriented detections on DOTA, patch merging and the Task1 submission."""

import os.path as osp
import tempfile
from collections import OrderedDict
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.fileio import dump
from mmengine.logging import MMLogger

from ai4rs.registry import METRICS
from ai4rs.structures.bbox import BaseBoxes, boxes_from_tensor

from ..functional.dota_results import check_outfile_prefix, merge_patch_results, write_submission
from ..functional.mean_ap import (
    BOX_DIMS,
    MODES,
    eval_matches,
    match_detections,
    mean_ap_of_classes,
    print_map_summary,
)
from ..functional.pr_curve import PRCurve, dota_pr_curves


def _get(obj, key, default=None):
    """``obj[key]`` for dicts and mmengine data elements, ``default`` when absent."""
    if obj is None:
        return default
    if isinstance(obj, dict):
        return obj.get(key, default)
    return getattr(obj, key, default)


def _to_numpy(value) -> np.ndarray:
    """Tensor / array -> numpy array."""
    if hasattr(value, 'detach'):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _typed_boxes(value, raw_type: str, what: str) -> BaseBoxes:
    """Box object in float64 on the CPU; raw tensors / arrays are read as ``raw_type``.

    Box objects keep their own type. Raw data has lost it (e.g. ``DetDataPreprocessor``'s
    ``boxtype2tensor``), so it is read as ``raw_type`` (the metric's ``predict_box_type``,
    as mmrotate does, whose test pipelines convert the ground truth to it) and must have
    that type's number of columns.
    """
    if isinstance(value, BaseBoxes):
        return type(value)(value.tensor.detach().cpu().double(), clone=False)
    boxes = _to_numpy(value).astype(np.float64)
    dim = BOX_DIMS[raw_type]
    if boxes.size and (boxes.ndim != 2 or boxes.shape[1] != dim):
        raise ValueError(
            f'DOTAMetric: {what} is a raw array of shape {boxes.shape}, read as '
            f'predict_box_type={raw_type!r}, which expects (n, {dim}) boxes; pass '
            f'box objects (DetDataPreprocessor(boxtype2tensor=False)) or convert '
            f'them with ConvertBoxType'
        )
    return boxes_from_tensor(torch.from_numpy(boxes.reshape(-1, dim)), raw_type)


def check_class_groups(class_groups) -> dict[str, tuple[str, ...]]:
    """Check the structure of ``DOTAMetric(class_groups=...)``, the class names aside.

    Args:
        class_groups (Mapping[str, Sequence[str]]): group name -> class names.

    Returns:
        dict[str, tuple[str, ...]]: the groups in their order.

    Raises:
        TypeError: not a mapping, a group name that is not a string, or a group that is
            not a sequence of strings (a bare string included).
        ValueError: an empty group name or group, or a class listed twice (in one group
            or in two).
    """
    if not isinstance(class_groups, Mapping):
        raise TypeError(
            'DOTAMetric: class_groups must be a dict of group name -> class names, '
            f'got {type(class_groups).__name__}: {class_groups!r}'
        )
    if not class_groups:
        raise ValueError('DOTAMetric: class_groups is empty; leave it None for no groups')
    groups: dict[str, tuple[str, ...]] = {}
    owner: dict[str, str] = {}
    for name, names in class_groups.items():
        if not isinstance(name, str) or not name:
            raise TypeError(
                f'DOTAMetric: class_groups keys must be non-empty strings, got {name!r}'
            )
        if isinstance(names, str) or not isinstance(names, Sequence):
            raise TypeError(
                f'DOTAMetric: class_groups[{name!r}] must be a list of class names, got {names!r}'
            )
        if not names:
            raise ValueError(f'DOTAMetric: class_groups[{name!r}] is empty')
        for cls in names:
            if not isinstance(cls, str):
                raise TypeError(
                    f'DOTAMetric: class_groups[{name!r}] holds {cls!r}, not a class name'
                )
            if cls in owner:
                where = 'twice' if owner[cls] == name else f'also in group {owner[cls]!r}'
                raise ValueError(
                    f'DOTAMetric: class {cls!r} of class_groups[{name!r}] is listed {where}; '
                    'a class belongs to at most one group'
                )
            owner[cls] = name
        groups[name] = tuple(names)
    return groups


def class_group_indices(
    class_groups: Mapping[str, Sequence[str]], classes: Sequence[str]
) -> dict[str, list[int]]:
    """Group name -> indices of its classes in ``classes`` (the dataset's class names).

    Raises:
        ValueError: a class name that ``classes`` does not have (naming it and the classes).
    """
    index = {str(c): i for i, c in enumerate(classes)}
    out = {}
    for name, names in class_groups.items():
        unknown = [c for c in names if c not in index]
        if unknown:
            raise ValueError(
                f'DOTAMetric: class_groups[{name!r}] names {unknown} that the dataset does '
                f'not have; its classes are {list(classes)}'
            )
        out[name] = [index[c] for c in names]
    return out


def _as_numpy_boxes(boxes: BaseBoxes, box_type: str) -> np.ndarray:
    """Box object -> (n, box_dim) float64 array of ``box_type``."""
    return (
        boxes.convert_to(box_type).tensor.numpy().astype(np.float64).reshape(-1, BOX_DIMS[box_type])
    )


@METRICS.register_module()
class DOTAMetric(BaseMetric):
    """DOTA evaluation metric (mmrotate's ``DOTAMetric``, plus the devkit's semantics).

    Without ``merge_patches`` or ``format_only`` it returns ``{'dota/AP50': ...,
    'dota/mAP': ...}``: one ``APxx`` per IoU threshold and ``mAP`` their mean (with
    ``iou_thrs=[0.5, 0.55, ..., 0.95]`` this is the "COCO style" AP50 / AP75 / mAP), and it
    logs a per-class table for each threshold.

    ``merge_patches=True`` maps the detections of split patches (``{image}__{window}__{x}___{y}``)
    back onto their full images, merges them per image and class with rotated NMS at
    ``iou_thr`` and writes the submission (``outfile_prefix/Task1_{class}.txt`` for every class
    and ``outfile_prefix/{basename}.zip``); ``format_only=True`` writes the same files from the
    unmerged detections (image name = ``img_id``) and ``{outfile_prefix}.bbox.json``. Both
    return no metric, as upstream.

    Args:
        iou_thrs (float | list[float]): IoU threshold(s). Defaults to 0.5.
        scale_ranges (list[tuple], optional): ``(min, max)`` box side ranges evaluated
            separately (keys ``APxx_{min}-{max}``). Defaults to None.
        metric (str | list[str]): only 'mAP'.
        predict_box_type (str): box type of the predictions, 'rbox' or 'qbox'.
        format_only (bool): only write the result files. Needs ``outfile_prefix``.
        outfile_prefix (str, optional): folder of the Task1 files; it must not exist yet.
            Without it, merged results go to a temporary folder.
        merge_patches (bool): merge patch results into full images (see above).
        iou_thr (float): IoU threshold of the merging NMS. Defaults to 0.1.
        eval_mode (str): '11points' (VOC07, default) or 'area'.
        collect_device (str): 'cpu' or 'gpu', for collecting results across ranks.
        prefix (str, optional): metric name prefix. Defaults to 'dota'.
        mode (str): 'mmrotate' (default): rbox IoU, IoU >= thr, mean over classes with
            ground truth; 'devkit': the official DOTA devkit, exact polygon IoU, IoU > thr,
            mean over all classes. In both, ignored ground truths (``ignored_instances``,
            from ``DOTADataset(diff_thr=...)``) are neither TP nor FP; the devkit ignores
            difficult objects, which ``diff_thr=0`` reproduces on full-image labels.
        class_groups (dict[str, Sequence[str]], optional): group name -> class names, e.g.
            ``dict(base=[...], novel=[...])`` for open-vocabulary evaluation. Each key
            ``APxx`` (``APxx_{min}-{max}``) gets an ``APxx_{group}``
            (``APxx_{min}-{max}_{group}``) next to it: the mean of the per-class APs of the
            group's classes, taken from the same per-class evaluation with the rule of the
            overall mean (``'mmrotate'``: a class without ground truth is left out of the
            mean; ``'devkit'``: it counts with AP 0; a group without any ground truth gets
            0.0 and a warning). ``mAP_{group}`` is the mean of the group's ``APxx`` values
            as ``mAP`` is of theirs, and the summary tables get ``mAP_{group}`` rows. A class
            belongs to at most one group; classes of no group count only in ``mAP``. The
            names are checked against ``dataset_meta['classes']`` when it is set. Not
            allowed with ``format_only`` or ``merge_patches`` (they compute no metric).
            Defaults to None.

    After :meth:`compute_metrics` (without ``scale_ranges``), ``pr_curves`` maps each IoU
    threshold to one :class:`~ai4rs.evaluation.functional.PRCurve` per class: the recall /
    precision arrays the class's AP was computed from, and that AP
    (``tools/analysis_tools/pr_curves.py`` draws them). Not an mmrotate attribute.

    Ground truth is read from each sample's ``gt_instances`` / ``ignored_instances``
    (``bboxes`` as a box object or Tensor, ``labels``), or else from ``instances`` (the
    dataset's annotation: ``bbox`` polygon, ``bbox_label``, ``ignore_flag``).
    """

    default_prefix: str | None = 'dota'

    def __init__(
        self,
        iou_thrs: float | list[float] = 0.5,
        scale_ranges: list[tuple] | None = None,
        metric: str | list[str] = 'mAP',
        predict_box_type: str = 'rbox',
        format_only: bool = False,
        outfile_prefix: str | None = None,
        merge_patches: bool = False,
        iou_thr: float = 0.1,
        eval_mode: str = '11points',
        collect_device: str = 'cpu',
        prefix: str | None = None,
        mode: str = 'mmrotate',
        class_groups: dict[str, Sequence[str]] | None = None,
    ) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        iou_thrs = [iou_thrs] if isinstance(iou_thrs, (int, float)) else list(iou_thrs)
        if not iou_thrs or not all(0 < float(t) <= 1 for t in iou_thrs):
            raise ValueError(f'iou_thrs must be IoU thresholds in (0, 1], got {iou_thrs!r}')
        self.iou_thrs = [float(t) for t in iou_thrs]
        self.scale_ranges = scale_ranges
        if not isinstance(metric, str):
            if len(metric) != 1:
                raise KeyError(f"metric must be 'mAP' or ['mAP'], got {metric!r}")
            metric = metric[0]
        if metric != 'mAP':
            raise KeyError(f"metric should be 'mAP', but got {metric!r}")
        self.metric = metric
        if predict_box_type not in BOX_DIMS:
            raise ValueError(f"predict_box_type must be 'rbox' or 'qbox', got {predict_box_type!r}")
        self.predict_box_type = predict_box_type
        if eval_mode not in ('11points', 'area'):
            raise ValueError(f"eval_mode must be '11points' or 'area', got {eval_mode!r}")
        self.eval_mode = eval_mode
        self.use_07_metric = eval_mode == '11points'
        if mode not in MODES:
            raise ValueError(f"mode must be 'mmrotate' or 'devkit', got {mode!r}")
        self.mode = mode
        self.format_only = format_only
        if format_only and outfile_prefix is None:
            raise ValueError(
                'outfile_prefix must be set when format_only=True, otherwise the '
                'result files would go to a temporary folder that is deleted'
            )
        if outfile_prefix is not None:
            check_outfile_prefix(outfile_prefix)
        self.outfile_prefix = outfile_prefix
        self.merge_patches = merge_patches
        self.iou_thr = iou_thr
        if class_groups is not None:
            class_groups = check_class_groups(class_groups)
            if format_only or merge_patches:
                raise ValueError(
                    'DOTAMetric: class_groups needs a computed mAP, but format_only / '
                    'merge_patches only write result files; drop class_groups there'
                )
        self.class_groups = class_groups
        self.pr_curves: dict[float, list[PRCurve]] = {}

    @property
    def dataset_meta(self) -> dict | None:
        """The dataset's meta information; setting it checks ``class_groups``' names."""
        return self._dataset_meta

    @dataset_meta.setter
    def dataset_meta(self, dataset_meta: dict | None) -> None:
        self._class_group_indices(dataset_meta)
        self._dataset_meta = dataset_meta

    def _class_group_indices(self, dataset_meta: dict | None) -> dict[str, list[int]] | None:
        """Class indices of each group of ``class_groups`` in ``dataset_meta``'s classes;
        None without groups or without class names in the meta."""
        if getattr(self, 'class_groups', None) is None or not dataset_meta:
            return None
        classes = dataset_meta.get('classes', dataset_meta.get('CLASSES'))
        if classes is None:
            return None
        return class_group_indices(self.class_groups, classes)

    # ----------------------------------------------------------------- process
    def _eval_box_type(self) -> str:
        """Box type the matching works on: qboxes (polygons) in devkit mode."""
        return 'qbox' if self.mode == 'devkit' else self.predict_box_type

    def _ground_truth(self, sample) -> dict | None:
        """The sample's annotation as numpy arrays of the evaluation box type, None if it has
        none. Box objects are converted with ``convert_to``; see :func:`_typed_boxes` for raw
        tensors. The dataset's ``instances`` hold DOTA polygons (qboxes)."""
        box_type = self._eval_box_type()
        gt = _get(sample, 'gt_instances')
        if gt is not None and _get(gt, 'bboxes') is not None:
            ign = _get(sample, 'ignored_instances')
            parts = [(_get(gt, 'bboxes'), _get(gt, 'labels'), 'gt_instances.bboxes')]
            if _get(ign, 'bboxes') is not None:
                parts.append((_get(ign, 'bboxes'), _get(ign, 'labels'), 'ignored_instances.bboxes'))
            boxes = [
                _as_numpy_boxes(_typed_boxes(b, self.predict_box_type, what), box_type)
                for b, _, what in parts
            ]
            labels = [_to_numpy(lab).astype(np.int64).ravel() for _, lab, _ in parts]
            if len(parts) == 1:
                boxes.append(np.zeros((0, BOX_DIMS[box_type])))
                labels.append(np.zeros(0, np.int64))
            return dict(
                bboxes=boxes[0], labels=labels[0], bboxes_ignore=boxes[1], labels_ignore=labels[1]
            )
        instances = _get(sample, 'instances')
        if instances is None:
            return None
        polygons = np.asarray([inst['bbox'] for inst in instances], np.float64)
        if polygons.size and (polygons.ndim != 2 or polygons.shape[1] != 8):
            raise ValueError(
                "DOTAMetric: instances' bbox must be DOTA polygons (8 numbers), "
                f'got shape {polygons.shape}'
            )
        boxes = _as_numpy_boxes(
            boxes_from_tensor(torch.from_numpy(polygons.reshape(-1, 8)), 'qbox'), box_type
        )
        labels = np.asarray([inst['bbox_label'] for inst in instances], np.int64).reshape(-1)
        ignore = np.asarray([bool(inst.get('ignore_flag', 0)) for inst in instances], bool).reshape(
            -1
        )
        return dict(
            bboxes=boxes[~ignore],
            labels=labels[~ignore],
            bboxes_ignore=boxes[ignore],
            labels_ignore=labels[ignore],
        )

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Store the predictions (and ground truth) of a batch as numpy arrays.

        Args:
            data_batch: the batch from the dataloader (unused).
            data_samples (list[dict]): samples with ``pred_instances`` (``bboxes`` as a box
                object, converted to ``predict_box_type``, or a raw (n, 5|8) Tensor of
                ``predict_box_type``), ``scores``, ``labels``), ``img_id``, and ground
                truth as described in the class docstring.
        """
        for sample in data_samples:
            if hasattr(sample, 'to_dict') and not isinstance(sample, dict):
                sample = sample.to_dict()
            pred = _get(sample, 'pred_instances')
            if pred is None:
                raise KeyError('DOTAMetric: a data sample has no pred_instances')
            bboxes = _as_numpy_boxes(
                _typed_boxes(_get(pred, 'bboxes'), self.predict_box_type, 'pred_instances.bboxes'),
                self.predict_box_type,
            )
            img_id = _get(sample, 'img_id')
            if img_id is None:
                img_path = _get(sample, 'img_path')
                # self.results already holds this batch's earlier samples
                img_id = (
                    osp.splitext(osp.basename(img_path))[0] if img_path else str(len(self.results))
                )
            self.results.append(
                dict(
                    img_id=str(img_id),
                    bboxes=bboxes,
                    scores=_to_numpy(_get(pred, 'scores')).astype(np.float64).reshape(-1),
                    labels=_to_numpy(_get(pred, 'labels')).astype(np.int64).reshape(-1),
                    gt=self._ground_truth(sample),
                )
            )

    # ----------------------------------------------------------------- compute
    def _classes(self) -> Sequence[str]:
        meta = self.dataset_meta or {}
        classes = meta.get('classes', meta.get('CLASSES'))
        if classes is None:
            raise ValueError(
                "DOTAMetric needs dataset_meta['classes'] (set by the Runner "
                'from the dataset, or assign metric.dataset_meta)'
            )
        return list(classes)

    def compute_metrics(self, results: list) -> dict:
        """Write result files and/or compute the mAP of the collected results.

        Returns:
            dict: ``APxx`` per IoU threshold and ``mAP`` (empty for merge_patches /
            format_only), and with ``class_groups`` ``APxx_{group}`` and ``mAP_{group}``.
        """
        logger: MMLogger = MMLogger.get_current_instance()
        classes = self._classes()
        num_classes = len(classes)
        eval_results: 'OrderedDict[str, float]' = OrderedDict()

        if self.merge_patches or self.format_only:
            tmp_dir = None
            prefix = self.outfile_prefix
            if prefix is None:
                tmp_dir = tempfile.TemporaryDirectory()
                prefix = osp.join(tmp_dir.name, 'results')
            if self.merge_patches:
                image_dets = merge_patch_results(
                    results, num_classes, self.iou_thr, self.predict_box_type
                )
            else:
                image_dets = OrderedDict()
                for res in results:
                    dets = np.concatenate([res['bboxes'], res['scores'][:, None]], axis=1)
                    image_dets[res['img_id']] = [
                        dets[res['labels'] == c] for c in range(num_classes)
                    ]
                self._dump_json(results, prefix)
            zip_path = write_submission(prefix, classes, image_dets, self.predict_box_type)
            logger.info(
                f'The submission files are saved at {zip_path}'
                + (
                    ' (a temporary folder: set outfile_prefix to keep them)'
                    if tmp_dir is not None
                    else ''
                )
            )
            if tmp_dir is not None:
                tmp_dir.cleanup()
            return eval_results

        if self.outfile_prefix is not None:
            self._dump_json(results, self.outfile_prefix)
        matches = self.match_results(results, num_classes)
        groups = self._class_group_indices(dict(classes=classes)) or {}
        self._warn_groups_without_ground_truth(matches, groups, logger)
        values = []
        group_values: dict[str, list[float]] = {g: [] for g in groups}
        self.pr_curves = {}
        for thr in self.iou_thrs:
            logger.info(f'\n{"-" * 15}iou_thr: {thr} ({self.mode} mode){"-" * 15}')
            mean_ap, per_class = eval_matches(matches, thr, self.use_07_metric, self.scale_ranges)
            if self.scale_ranges is None:
                self.pr_curves[thr] = dota_pr_curves(per_class, classes, self.use_07_metric)
            group_aps = {
                g: mean_ap_of_classes(per_class, self.mode, idx) for g, idx in groups.items()
            }
            print_map_summary(
                mean_ap, per_class, classes, self.scale_ranges, logger=logger, group_aps=group_aps
            )
            name = f'AP{int(round(thr * 100)):02d}'
            if self.scale_ranges is None:
                keys, aps = [name], [mean_ap]
                group_aps = {g: [ap] for g, ap in group_aps.items()}
            else:
                keys = [f'{name}_{lo}-{hi}' for lo, hi in self.scale_ranges]
                aps = list(mean_ap)
            for s, (key, ap) in enumerate(zip(keys, aps)):
                eval_results[key] = float(ap)
                values.append(float(ap))
                for g, g_aps in group_aps.items():
                    eval_results[f'{key}_{g}'] = float(g_aps[s])
                    group_values[g].append(float(g_aps[s]))
        for g in reversed(list(groups)):
            eval_results[f'mAP_{g}'] = float(np.mean(group_values[g]))
            eval_results.move_to_end(f'mAP_{g}', last=False)
        eval_results['mAP'] = float(np.mean(values))
        eval_results.move_to_end('mAP', last=False)
        return eval_results

    def match_results(self, results: list, num_classes: int):
        """The :class:`~ai4rs.evaluation.functional.DetectionMatches` of collected results.

        Args:
            results (list[dict]): what :meth:`process` stored (one dict per image).
            num_classes (int): the number of classes.

        Raises:
            ValueError: a sample without ground truth (its ``img_id`` named).
        """
        box_type = self._eval_box_type()
        det_results, annotations = [], []
        for res in results:
            gt = res['gt']
            if gt is None:
                raise ValueError(
                    f'DOTAMetric: sample {res["img_id"]!r} has no ground truth '
                    '(gt_instances or instances); use format_only=True for a '
                    'test set'
                )
            boxes = _as_numpy_boxes(
                boxes_from_tensor(torch.from_numpy(res['bboxes']), self.predict_box_type), box_type
            )
            dets = np.concatenate([boxes, res['scores'][:, None]], axis=1)
            det_results.append([dets[res['labels'] == c] for c in range(num_classes)])
            annotations.append(gt)
        return match_detections(
            det_results, annotations, box_type, self.mode, num_classes=num_classes
        )

    def _warn_groups_without_ground_truth(self, matches, groups: dict, logger) -> None:
        """Warn about groups whose classes have no (non-ignored) ground truth: their mAP is 0."""
        valid = matches.gt_labels[~matches.gt_ignore]
        counts = np.bincount(valid, minlength=matches.num_classes)
        for g, idx in groups.items():
            if counts[idx].sum() == 0:
                logger.warning(
                    f'DOTAMetric: no class of group {g!r} has ground truth in the evaluated '
                    f'samples; mAP_{g} is 0.0'
                )

    @staticmethod
    def _dump_json(results: list, outfile_prefix: str) -> str:
        """Dump the (unmerged) detections to ``{outfile_prefix}.bbox.json`` (as upstream)."""
        items = []
        for res in results:
            for box, score, label in zip(res['bboxes'], res['scores'], res['labels']):
                items.append(
                    dict(
                        image_id=res['img_id'],
                        bbox=[float(v) for v in box],
                        score=float(score),
                        category_id=int(label),
                    )
                )
        path = f'{outfile_prefix}.bbox.json'
        dump(items, path)
        return path
