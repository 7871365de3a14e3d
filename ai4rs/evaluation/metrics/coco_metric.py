"""CocoMetric: COCO box AP (mmdet 3.x ``CocoMetric`` for ``metric='bbox'``).

The numbers equal pycocotools' ``COCOeval`` on the same detections (see
``ai4rs.evaluation.functional.coco_eval`` for the backends).
"""

import json
import os
import os.path as osp
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger

from ai4rs.registry import METRICS

from ..functional.coco_eval import (
    COCO_METRIC_NAMES,
    build_coco,
    classwise_ap,
    classwise_table,
    default_iou_thrs,
    detections_to_coco,
    evaluate_bbox,
    format_coco_summary,
    load_results,
    resolve_backend,
)
from ..functional.pr_curve import PRCurve, coco_pr_curves

_ALLOWED_METRICS = ('bbox',)
_DEFAULT_ITEMS = ('mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l')


def _get(obj, key, default=None):
    """``obj[key]`` for dicts and mmengine data elements, ``default`` when absent."""
    if obj is None:
        return default
    if isinstance(obj, dict):
        return obj.get(key, default)
    return getattr(obj, key, default)


def _to_numpy(value) -> np.ndarray:
    """Tensor / array / list -> numpy array (no box-type interpretation)."""
    if hasattr(value, 'detach'):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _hbox_array(bboxes, img_id) -> np.ndarray:
    """(n, 4) xyxy float64 from a ``HorizontalBoxes`` object or an (n, 4) tensor/array.

    A box object is converted through its ``tensor`` only when it is a horizontal box type
    (``box_dim`` 4); rotated or quadrilateral boxes are an error, never guessed at.
    """
    box_dim = getattr(bboxes, 'box_dim', None)
    if box_dim is not None:
        if box_dim != 4:
            raise ValueError(
                f'CocoMetric: image {img_id!r}: predicted boxes are '
                f'{type(bboxes).__name__} (box_dim={box_dim}); COCO bbox '
                'evaluation needs HorizontalBoxes (x1, y1, x2, y2)'
            )
        bboxes = bboxes.tensor
    arr = _to_numpy(bboxes).astype(np.float64)
    if arr.size == 0:
        return arr.reshape(0, 4)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(
            f'CocoMetric: image {img_id!r}: predicted bboxes must be (n, 4) '
            f'(x1, y1, x2, y2), got shape {arr.shape}'
        )
    return arr


def _write_json(obj, path: str) -> None:
    """Write ``obj`` as json (``json.dumps`` runs the C encoder; ``json.dump`` does not)."""
    folder = osp.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    with open(path, 'w', encoding='utf-8') as f:
        f.write(json.dumps(obj))


@METRICS.register_module()
class CocoMetric(BaseMetric):
    """COCO evaluation of horizontal boxes (mmdet 3.x ``CocoMetric``, ``metric='bbox'``).

    Returns ``{'coco/bbox_mAP': ..., 'coco/bbox_mAP_50': ..., 'coco/bbox_mAP_75': ...,
    'coco/bbox_mAP_s': ..., 'coco/bbox_mAP_m': ..., 'coco/bbox_mAP_l': ...}`` (fractions; the
    prefix is ``'coco'`` unless ``prefix`` is given) and logs pycocotools' 12-line summary.
    With ``classwise=True`` it also logs mmdet's per-category table and returns
    ``coco/{class}_precision`` for each class.

    Predictions arrive as data samples (dicts or ``DetDataSample``) holding ``img_id``,
    ``ori_shape`` (h, w) and ``pred_instances`` with ``bboxes`` (``HorizontalBoxes`` or an
    (n, 4) tensor, ``(x1, y1, x2, y2)`` in original-image pixels), ``scores`` (n,) and
    ``labels`` (n,) contiguous class indices (``dataset_meta['classes']`` order).

    Ground truth is ``ann_file`` (a COCO json) when given. Without it, the ground truth is
    built from each sample's ``instances`` (the dataset's per-image list: ``bbox`` xyxy,
    ``bbox_label``, ``ignore_flag`` -> ``iscrowd``) and written to ``{prefix}.gt.json``.

    Args:
        ann_file (str, optional): COCO annotation json.
        metric (str | list[str]): only ``'bbox'`` is supported.
        classwise (bool): log and return per-category AP. Defaults to False.
        proposal_nums (Sequence[int]): ``maxDets`` of COCOeval. Defaults to (100, 300, 1000).
        iou_thrs (float | Sequence[float], optional): IoU thresholds; 0.50:0.05:0.95 default.
        metric_items (Sequence[str], optional): which of mAP, mAP_50, mAP_75, mAP_s, mAP_m,
            mAP_l, AR@100, AR@300, AR@1000, AR_s@1000, AR_m@1000, AR_l@1000 to return;
            the six APs by default.
        format_only (bool): only write ``{outfile_prefix}.bbox.json`` (COCO results format),
            return no metric (a test set without labels). Needs ``outfile_prefix``.
        outfile_prefix (str, optional): prefix of the written json files; a temporary folder
            is used (and deleted) when None.
        backend_args (dict, optional): mmengine file backend arguments to read ``ann_file``.
        collect_device (str): 'cpu' or 'gpu', for collecting results across ranks.
        prefix (str, optional): metric name prefix; ``'coco'`` by default.
        sort_categories (bool): sort the categories of ``ann_file`` by id (as mmdet).
        use_mp_eval (bool): mmdet's multi-process pycocotools evaluation. Accepted for
            config compatibility; ai4rs evaluates in one process with the fast backend
            (a logged note when True).
        backend (str): COCOeval backend: ``'auto'`` (faster-coco-eval when installed, else
            pycocotools), ``'faster_coco_eval'`` or ``'pycocotools'``. Not an mmdet argument.

    After :meth:`compute_metrics`, ``pr_curves`` maps each IoU threshold to one
    :class:`~ai4rs.evaluation.functional.PRCurve` per category: COCOeval's precision at the
    101 recall points (area 'all', last ``proposal_nums``) and its mean, the category's AP
    at that threshold (``tools/analysis_tools/pr_curves.py`` draws them). Not an mmdet
    attribute.
    """

    default_prefix: str | None = 'coco'

    def __init__(
        self,
        ann_file: str | None = None,
        metric: str | list[str] = 'bbox',
        classwise: bool = False,
        proposal_nums: Sequence[int] = (100, 300, 1000),
        iou_thrs: float | Sequence[float] | None = None,
        metric_items: Sequence[str] | None = None,
        format_only: bool = False,
        outfile_prefix: str | None = None,
        backend_args: dict | None = None,
        collect_device: str = 'cpu',
        prefix: str | None = None,
        sort_categories: bool = False,
        use_mp_eval: bool = False,
        backend: str = 'auto',
    ) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        metrics = [metric] if isinstance(metric, str) else list(metric)
        for m in metrics:
            if m not in _ALLOWED_METRICS:
                raise KeyError(
                    f"CocoMetric: metric should be 'bbox' (the only COCO metric "
                    f'ai4rs evaluates), but got {m!r}'
                )
        self.metrics = metrics
        self.classwise = classwise
        self.use_mp_eval = use_mp_eval
        self.proposal_nums = [int(n) for n in proposal_nums]
        if len(self.proposal_nums) < 3:
            raise ValueError(f'proposal_nums needs 3 values, got {list(proposal_nums)}')
        if iou_thrs is None:
            iou_thrs = default_iou_thrs()
        elif isinstance(iou_thrs, (int, float)):
            iou_thrs = np.array([iou_thrs], dtype=np.float64)
        self.iou_thrs = np.asarray(iou_thrs, dtype=np.float64)
        if metric_items is not None:
            metric_items = [metric_items] if isinstance(metric_items, str) else list(metric_items)
            for item in metric_items:
                if item not in COCO_METRIC_NAMES:
                    raise KeyError(
                        f'CocoMetric: metric item {item!r} is not supported; '
                        f'choose from {list(COCO_METRIC_NAMES)}'
                    )
        self.metric_items = metric_items
        self.format_only = format_only
        if format_only and outfile_prefix is None:
            raise ValueError(
                'CocoMetric: outfile_prefix must be set when format_only=True, '
                'otherwise the results json would go to a temporary folder '
                'that is deleted'
            )
        self.outfile_prefix = outfile_prefix
        self.backend_args = backend_args
        self.backend = resolve_backend(backend)
        self.sort_categories = sort_categories
        self.ann_file = ann_file
        self._coco_api = None
        if ann_file is not None:
            if not osp.isfile(ann_file) and backend_args is None:
                raise FileNotFoundError(f'CocoMetric: ann_file not found: {ann_file!r}')
            # checked like the dataset's json (errors name the file and annotation id); a
            # test-set json without annotations is fine for format_only
            from ai4rs.datasets.coco_json import load_coco_json

            gt = load_coco_json(ann_file, backend_args, require_annotations=not format_only)
            self._coco_api = build_coco(gt, self.backend)
            if sort_categories:
                self._sort_categories(self._coco_api)
        self.cat_ids: list[int] | None = None
        self.img_ids: list | None = None
        self.pr_curves: dict[float, list[PRCurve]] = {}

    @staticmethod
    def _sort_categories(coco) -> None:
        """Order the categories of a COCO object by id (mmdet's ``sort_categories``)."""
        coco.cats = {i: coco.cats[i] for i in sorted(coco.cats)}
        coco.dataset['categories'] = sorted(coco.dataset['categories'], key=lambda c: c['id'])

    # ----------------------------------------------------------------- process
    def process(self, data_batch, data_samples: Sequence) -> None:
        """Store each sample's predictions (and, without ``ann_file``, its ground truth).

        Args:
            data_batch: the batch from the dataloader (unused).
            data_samples (Sequence[dict | DetDataSample]): see the class docstring.
        """
        for sample in data_samples:
            img_id = _get(sample, 'img_id')
            if img_id is None:
                raise KeyError('CocoMetric: a data sample has no img_id')
            if hasattr(img_id, 'item'):
                img_id = img_id.item()  # numpy / tensor scalar -> int (json-serialisable)
            pred = _get(sample, 'pred_instances')
            if pred is None:
                raise KeyError(f'CocoMetric: data sample of image {img_id!r} has no pred_instances')
            bboxes = _hbox_array(_get(pred, 'bboxes'), img_id)
            scores = _to_numpy(_get(pred, 'scores')).astype(np.float64).reshape(-1)
            labels = _to_numpy(_get(pred, 'labels')).astype(np.int64).reshape(-1)
            if not len(bboxes) == len(scores) == len(labels):
                raise ValueError(
                    f'CocoMetric: image {img_id!r}: {len(bboxes)} boxes, '
                    f'{len(scores)} scores and {len(labels)} labels'
                )
            result = dict(img_id=img_id, bboxes=bboxes, scores=scores, labels=labels)
            gt = None
            if self._coco_api is None:
                ori_shape = _get(sample, 'ori_shape')
                instances = _get(sample, 'instances')
                if ori_shape is None or instances is None:
                    raise KeyError(
                        f'CocoMetric without ann_file needs ori_shape and '
                        f'instances in each data sample (image {img_id!r}); '
                        "add 'instances' to PackDetInputs' meta_keys or set ann_file"
                    )
                gt = dict(
                    img_id=img_id,
                    width=int(ori_shape[1]),
                    height=int(ori_shape[0]),
                    anns=list(instances),
                )
            self.results.append((gt, result))

    # ----------------------------------------------------------------- compute
    def gt_to_coco_dict(self, gt_dicts: Sequence[dict]) -> dict:
        """A COCO json dict from the per-sample ground truth collected by :meth:`process`.

        Categories get ids 0..K-1 in ``dataset_meta['classes']`` order; ``bbox`` xyxy becomes
        ``[x, y, w, h]``, ``area`` = w * h, ``iscrowd`` = ``ignore_flag``; ``mask`` (polygons
        or RLE) is kept as ``segmentation``.
        """
        classes = self._classes()
        categories = [dict(id=i, name=str(name)) for i, name in enumerate(classes)]
        images, annotations = [], []
        for gt in gt_dicts:
            images.append(
                dict(id=gt['img_id'], width=gt['width'], height=gt['height'], file_name='')
            )
            for ann in gt['anns']:
                x1, y1, x2, y2 = (float(v) for v in ann['bbox'])
                w, h = x2 - x1, y2 - y1
                record = dict(
                    id=len(annotations) + 1,
                    image_id=gt['img_id'],
                    bbox=[x1, y1, w, h],
                    iscrowd=int(ann.get('ignore_flag', 0)),
                    category_id=int(ann['bbox_label']),
                    area=w * h,
                )
                if ann.get('mask') is not None:
                    record['segmentation'] = ann['mask']
                annotations.append(record)
        return dict(
            info=dict(description='ground truth built by ai4rs CocoMetric'),
            images=images,
            categories=categories,
            annotations=annotations,
        )

    def _classes(self) -> list[str]:
        meta = self.dataset_meta or {}
        classes = meta.get('classes')
        if classes is None:
            raise ValueError(
                "CocoMetric needs dataset_meta['classes'] (set by the Runner from "
                'the dataset, or assign metric.dataset_meta)'
            )
        return list(classes)

    def _category_ids(self, coco) -> list[int]:
        """Category id of each label: the ann_file's categories named like the classes."""
        name_to_id = {}
        for cat in coco.dataset['categories']:
            name_to_id.setdefault(cat['name'], cat['id'])
        classes = self._classes()
        missing = [c for c in classes if c not in name_to_id]
        if missing:
            raise ValueError(
                f'CocoMetric: classes {missing} of dataset_meta are not '
                f'categories of {self.ann_file!r}'
            )
        return [name_to_id[c] for c in classes]

    def results2json(
        self, results: Sequence[dict], outfile_prefix: str | None
    ) -> tuple[dict, list]:
        """COCO result dicts of ``results``, written to ``{outfile_prefix}.bbox.json``.

        Args:
            results: the per-image predictions collected by :meth:`process`.
            outfile_prefix (str, optional): None: nothing is written.

        Returns:
            tuple: ``{'bbox': path}`` (empty when nothing is written) and the list of COCO
            result dicts.
        """
        detections = detections_to_coco(
            [r['img_id'] for r in results],
            [r['bboxes'] for r in results],
            [r['scores'] for r in results],
            [r['labels'] for r in results],
            self.cat_ids,
        )
        if outfile_prefix is None:
            return {}, detections
        path = f'{outfile_prefix}.bbox.json'
        _write_json(detections, path)
        return dict(bbox=path), detections

    def prepare_coco(self, results: list, prefix: str | None = None):
        """The ground truth ``COCO`` object, image ids and COCO detections of ``results``.

        Without ``ann_file`` the ground truth is built from the samples (and written to
        ``{prefix}.gt.json`` when ``prefix`` is set); sets ``cat_ids``.

        Args:
            results (list): the ``(gt, prediction)`` pairs collected by :meth:`process`.
            prefix (str, optional): where :meth:`results2json` writes the detections.

        Returns:
            tuple: ``(coco, img_ids, result_files, detections)``.

        Raises:
            ValueError: predictions for image ids the ground truth does not have.
        """
        gts, preds = zip(*results) if results else ((), ())
        coco = self._coco_api
        if coco is None:
            MMLogger.get_current_instance().info(
                'CocoMetric: converting the ground truth to COCO format...'
            )
            gt_dict = self.gt_to_coco_dict(gts)
            if prefix is not None:
                _write_json(gt_dict, f'{prefix}.gt.json')
            coco = build_coco(gt_dict, self.backend)
            self.cat_ids = list(range(len(self._classes())))
        elif self.cat_ids is None:
            self.cat_ids = self._category_ids(coco)
        img_ids = self.img_ids if self.img_ids is not None else list(coco.getImgIds())
        unknown = sorted({p['img_id'] for p in preds} - set(coco.imgs), key=str)
        if unknown:
            raise ValueError(
                f'CocoMetric: predictions for {len(unknown)} image ids that are '
                f'not images of {self.ann_file or "the ground truth"}: '
                f'{unknown[:10]}'
            )
        result_files, detections = self.results2json(preds, prefix)
        return coco, img_ids, result_files, detections

    def compute_metrics(self, results: list) -> dict:
        """Evaluate the collected results (or only write them with ``format_only``).

        Returns:
            dict: ``bbox_{item}`` for each metric item (and ``{class}_precision`` when
            ``classwise``); empty with ``format_only``.
        """
        logger: MMLogger = MMLogger.get_current_instance()
        # json files are written only where the user asked for them (outfile_prefix); mmdet
        # writes them to a temporary folder otherwise, which changes nothing but the time
        coco, img_ids, result_files, detections = self.prepare_coco(results, self.outfile_prefix)
        eval_results: 'OrderedDict[str, float]' = OrderedDict()
        if self.format_only:
            logger.info(f'results are saved in {result_files["bbox"]}')
            return eval_results
        if self.use_mp_eval:
            logger.info(
                'CocoMetric: use_mp_eval is ignored; ai4rs evaluates in one '
                f'process with the {self.backend!r} backend'
            )
        for metric in self.metrics:
            logger.info(f'Evaluating {metric} ({self.backend})...')
            if not detections:
                logger.error('The testing results of the whole dataset is empty.')
                break
            coco_dt = load_results(coco, detections)
            res = evaluate_bbox(
                coco,
                coco_dt,
                cat_ids=self.cat_ids,
                img_ids=img_ids,
                max_dets=self.proposal_nums,
                iou_thrs=self.iou_thrs,
            )
            logger.info('\n' + format_coco_summary(res.stats, self.iou_thrs, self.proposal_nums))
            names = [coco.loadCats(c)[0]['name'] for c in self.cat_ids]
            self.pr_curves = {
                float(t): coco_pr_curves(res.precision, res.iou_thrs, names, t)
                for t in res.iou_thrs
            }
            if self.classwise:
                per_class = classwise_ap(res.precision, self.iou_thrs)
                logger.info('\n' + classwise_table(names, per_class))
                for name, vals in zip(names, per_class):
                    eval_results[f'{name}_precision'] = float(vals[0])
            for item in self.metric_items or _DEFAULT_ITEMS:
                eval_results[f'{metric}_{item}'] = float(res.stats[COCO_METRIC_NAMES[item]])
            ap = res.stats[:6]
            logger.info(f'{metric}_mAP_copypaste: ' + ' '.join(f'{v:.3f}' for v in ap))
        return eval_results
