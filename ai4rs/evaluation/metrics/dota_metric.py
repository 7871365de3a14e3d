"""DOTAMetric: mAP of oriented detections on DOTA, patch merging and the Task1 submission."""

import os.path as osp
import tempfile
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.fileio import dump
from mmengine.logging import MMLogger

from ai4rs.registry import METRICS
from ai4rs.structures.bbox import BaseBoxes, boxes_from_tensor

from ..functional.dota_results import check_outfile_prefix, merge_patch_results, write_submission
from ..functional.mean_ap import BOX_DIMS, MODES, eval_matches, match_detections, print_map_summary


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
            format_only).
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
        matches = match_detections(
            det_results, annotations, box_type, self.mode, num_classes=num_classes
        )
        values = []
        for thr in self.iou_thrs:
            logger.info(f'\n{"-" * 15}iou_thr: {thr} ({self.mode} mode){"-" * 15}')
            mean_ap, per_class = eval_matches(matches, thr, self.use_07_metric, self.scale_ranges)
            print_map_summary(mean_ap, per_class, classes, self.scale_ranges, logger=logger)
            name = f'AP{int(round(thr * 100)):02d}'
            if self.scale_ranges is None:
                eval_results[name] = float(mean_ap)
                values.append(float(mean_ap))
            else:
                for (lo, hi), ap in zip(self.scale_ranges, mean_ap):
                    eval_results[f'{name}_{lo}-{hi}'] = float(ap)
                    values.append(float(ap))
        eval_results['mAP'] = float(np.mean(values))
        eval_results.move_to_end('mAP', last=False)
        return eval_results

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
