"""Offline analysis: a config's test dataset and the predictions ``tools/test.py --out`` saved.

The analysis tools (``eval_metric.py``, ``confusion_matrix.py``, PR curves, ...) all start the
same way: read the config, build its test dataset as the Runner would (``test_dataloader.dataset``),
read the results pickle, and pair each prediction with its image's annotation. This module does
that once::

    from ai4rs.evaluation.offline import load_offline_results

    res = load_offline_results('configs/.../my_config.py', 'results.pkl')
    res.classes                  # tuple of class names (the dataset's metainfo)
    for sample in res.samples:   # one dict per image, in the pickle's order
        sample['pred_instances']     # dict: bboxes (n, 4|5) Tensor, scores (n,), labels (n,)
        sample['gt_instances']       # dict: bboxes (box object), labels (m,) int64 Tensor
        sample['ignored_instances']  # the same for ignored ground truth (difficult, crowd)
        sample['instances']          # the dataset's raw annotation (list of dicts)

Ground truth boxes are typed: they are made by the annotation transforms of the config's own
pipelines (``LoadAnnotations(box_type=...)`` then ``ConvertBoxType``, as in the test run), so
rotated datasets give :class:`~ai4rs.structures.bbox.RotatedBoxes` and COCO gives
:class:`~ai4rs.structures.bbox.HorizontalBoxes`. The pipeline is the test dataset's; when it
loads no annotation (a test-server recipe), the val and then the train dataloader's is used.

The pickle format is :class:`~ai4rs.evaluation.metrics.dump_det_results.DumpDetResults`'s: a
list with one dict per image (``img_path``, ``img_id``, ``ori_shape``, ``pred_instances``).
The pickle is read by :class:`ResultsUnpickler`, which builds only tensors, numpy arrays and
plain Python values: a pickle that names any other function or class is refused unread, so
opening a results file cannot run code (as checkpoints are loaded with ``weights_only``).
"""

import codecs
import collections
import io
import os.path as osp
import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from mmengine.config import Config

from ai4rs.registry import DATASETS, TRANSFORMS
from ai4rs.structures.bbox import BaseBoxes

#: the transforms that turn a dataset's ``instances`` into typed ground truth boxes
ANNOTATION_TRANSFORMS = ('LoadAnnotations', 'ConvertBoxType')
PRED_KEYS = ('bboxes', 'scores', 'labels')


class OfflineResultsError(ValueError):
    """A results pickle or config that cannot be analysed; the message names the file."""


@dataclass
class OfflineResults:
    """A config's test dataset paired with saved predictions.

    Attributes:
        cfg (Config): the config (with ``--cfg-options`` merged).
        dataset: the built test dataset (``cfg.test_dataloader.dataset``).
        classes (tuple[str]): class names, ``dataset.metainfo['classes']``.
        samples (list[dict]): one per image, in the pickle's order: the pickle's dict with
            ``pred_instances`` as a dict of CPU tensors (``bboxes`` (n, box_dim) float,
            ``scores`` (n,) float, ``labels`` (n,) int64), plus ``instances`` (the dataset's
            annotation), ``gt_instances`` and ``ignored_instances`` (dicts: ``bboxes`` box
            object of :attr:`gt_box_type`, ``labels`` (m,) int64 Tensor).
        gt_box_type (str): 'hbox', 'rbox' or 'qbox': the type of the ground truth boxes.
        results_file (str): the pickle's path.
    """

    cfg: Config
    dataset: object
    classes: tuple
    samples: list = field(default_factory=list)
    gt_box_type: str = 'hbox'
    results_file: str = ''

    @property
    def dataset_meta(self) -> dict:
        """The dataset's metainfo, what the Runner gives a metric as ``dataset_meta``."""
        return self.dataset.metainfo


def _storage_from_bytes(data: bytes):
    """``torch.storage._load_from_bytes`` (how a pickled tensor stores its data), read with
    ``weights_only=True``: the bytes may hold a storage, nothing that runs code."""
    return torch.load(io.BytesIO(data), weights_only=True)


def _numpy_global(module: str, name: str):
    """The numpy functions and classes a pickled array or scalar names, else None."""
    if module in ('numpy.core.multiarray', 'numpy._core.multiarray') and name in (
        '_reconstruct',
        'scalar',
    ):
        multiarray = getattr(np, '_core', None) or np.core  # numpy 2 / numpy 1
        return getattr(multiarray.multiarray, name)
    if module == 'numpy' and name in ('ndarray', 'dtype'):
        return getattr(np, name)
    if module == 'numpy.dtypes' and name.endswith('DType'):  # numpy 2's dtype classes
        return getattr(np.dtypes, name, None)
    return None


class ResultsUnpickler(pickle.Unpickler):
    """A ``pickle.Unpickler`` that builds tensors, numpy arrays and plain Python values only.

    Any other global a pickle names (a function it would call, a class it would build) is
    refused with :class:`OfflineResultsError` before anything runs.
    """

    SAFE = {
        ('collections', 'OrderedDict'): collections.OrderedDict,
        ('_codecs', 'encode'): codecs.encode,
        ('torch._utils', '_rebuild_tensor_v2'): torch._utils._rebuild_tensor_v2,
        ('torch.storage', '_load_from_bytes'): _storage_from_bytes,
        ('torch', 'Size'): torch.Size,
    }

    def find_class(self, module: str, name: str):
        found = self.SAFE.get((module, name))
        if (
            found is None
            and module == 'torch'
            and isinstance(getattr(torch, name, None), torch.dtype)
        ):
            found = getattr(torch, name)
        if found is None and module.startswith('numpy'):
            found = _numpy_global(module, name)
        if found is None:
            raise OfflineResultsError(
                f'refused to load {module}.{name}: a results pickle holds only tensors, '
                'numpy arrays and plain Python values (tools/test.py --out)'
            )
        return found


def load_results_pkl(path: str) -> list[dict]:
    """Read and check a ``tools/test.py --out`` pickle.

    Returns:
        list[dict]: one dict per image; ``pred_instances`` is a dict whose ``bboxes`` (n, d),
        ``scores`` (n,) and ``labels`` (n,) are CPU tensors.

    Raises:
        FileNotFoundError: no such file.
        OfflineResultsError: not a pickle, or not a list of per-image detection results
            (the message names the file, the sample and what is wrong).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'results file not found: {path}')
    try:
        with open(path, 'rb') as f:
            data = ResultsUnpickler(f).load()
    except OfflineResultsError as e:
        raise OfflineResultsError(f'{path}: {e}') from None
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError) as e:
        raise OfflineResultsError(f'{path}: not a readable results pickle ({e})') from None
    if not isinstance(data, (list, tuple)) or not data:
        raise OfflineResultsError(
            f'{path}: expected a non-empty list of per-image results (tools/test.py --out), '
            f'got {type(data).__name__}' + (' of length 0' if isinstance(data, list) else '')
        )
    samples = []
    for i, sample in enumerate(data):
        if not isinstance(sample, dict) or not isinstance(sample.get('pred_instances'), dict):
            raise OfflineResultsError(
                f'{path}: sample {i} is not a detection result (a dict with pred_instances, '
                'as tools/test.py --out writes); got '
                + (f'keys {sorted(sample)}' if isinstance(sample, dict) else type(sample).__name__)
            )
        pred = dict(sample['pred_instances'])
        missing = [k for k in PRED_KEYS if k not in pred]
        if missing:
            raise OfflineResultsError(
                f'{path}: sample {i} ({sample.get("img_path")}): pred_instances has no {missing} '
                '(a detection result has bboxes, scores and labels)'
            )
        bboxes = torch.as_tensor(getattr(pred['bboxes'], 'tensor', pred['bboxes']))
        scores = torch.as_tensor(pred['scores']).reshape(-1)
        labels = torch.as_tensor(pred['labels']).reshape(-1).long()
        if bboxes.ndim != 2 or not (len(bboxes) == len(scores) == len(labels)):
            raise OfflineResultsError(
                f'{path}: sample {i} ({sample.get("img_path")}): bboxes {tuple(bboxes.shape)}, '
                f'scores {tuple(scores.shape)}, labels {tuple(labels.shape)} do not describe '
                'the same n detections'
            )
        pred.update(bboxes=bboxes.cpu(), scores=scores.cpu(), labels=labels.cpu())
        samples.append(dict(sample, pred_instances=pred))
    return samples


def _pipeline_of(dataset_cfg) -> list:
    """The pipeline of a dataset config, looking inside wrappers (``dataset=dict(...)``)."""
    while dataset_cfg is not None:
        if dataset_cfg.get('pipeline'):
            return list(dataset_cfg['pipeline'])
        dataset_cfg = dataset_cfg.get('dataset')
    return []


def _short_type(transform_cfg) -> str:
    t = transform_cfg.get('type', '')
    return t.split('.')[-1] if isinstance(t, str) else getattr(t, '__name__', '')


def annotation_transforms(cfg: Config) -> list:
    """The ``LoadAnnotations`` / ``ConvertBoxType`` configs of the first of the test, val and
    train dataloaders whose pipeline loads annotations, in pipeline order.

    Raises:
        OfflineResultsError: no pipeline loads annotations.
    """
    for split in ('test', 'val', 'train'):
        loader = cfg.get(f'{split}_dataloader')
        if not loader:
            continue
        steps = [t for t in _pipeline_of(loader.get('dataset')) if isinstance(t, dict)]
        steps = [t for t in steps if _short_type(t) in ANNOTATION_TRANSFORMS]
        if any(_short_type(t) == 'LoadAnnotations' for t in steps):
            return steps
    raise OfflineResultsError(
        f'{cfg.filename}: no dataloader pipeline has a LoadAnnotations step, so the box type '
        'of the ground truth is unknown'
    )


def build_annotation_pipeline(cfg: Config):
    """The annotation transforms of :func:`annotation_transforms`, built (masks off)."""
    built = []
    for t in annotation_transforms(cfg):
        t = dict(t, type=_short_type(t))
        if t['type'] == 'LoadAnnotations':
            t.update(with_bbox=True, with_label=True, with_mask=False, with_seg=False)
            t.pop('mask2bbox', None)
            t.pop('poly2mask', None)
        built.append(TRANSFORMS.build(t))
    return built


def ground_truth(data_info: dict, transforms: Sequence) -> tuple[dict, dict]:
    """``gt_instances`` and ``ignored_instances`` of one image, from its dataset annotation.

    Args:
        data_info (dict): ``dataset.get_data_info(i)`` (``instances``: ``bbox``, ``bbox_label``,
            ``ignore_flag``).
        transforms: the built annotation transforms (:func:`build_annotation_pipeline`).

    Returns:
        tuple[dict, dict]: each ``bboxes`` (box object), ``labels`` (m,) int64 Tensor.
    """
    results = dict(
        instances=list(data_info.get('instances', [])),
        img_path=data_info.get('img_path'),
        img_id=data_info.get('img_id'),
    )
    for t in transforms:
        results = t(results)
    boxes = results['gt_bboxes']
    if not isinstance(boxes, BaseBoxes):
        raise OfflineResultsError(
            'LoadAnnotations(box_type=None) gives untyped boxes; the analysis tools need the '
            "box type (set box_type='hbox', 'rbox' or 'qbox')"
        )
    labels = torch.as_tensor(results['gt_bboxes_labels'], dtype=torch.int64).reshape(-1)
    ignore = torch.as_tensor(np.asarray(results['gt_ignore_flags'], bool)).reshape(-1)
    return (
        dict(bboxes=boxes[~ignore], labels=labels[~ignore]),
        dict(bboxes=boxes[ignore], labels=labels[ignore]),
    )


def build_test_dataset(cfg: Config):
    """``cfg.test_dataloader.dataset`` built through the DATASETS registry (fully initialised).

    Raises:
        OfflineResultsError: the config has no test dataloader.
    """
    loader = cfg.get('test_dataloader')
    if not loader or not loader.get('dataset'):
        raise OfflineResultsError(f'{cfg.filename}: the config has no test_dataloader.dataset')
    dataset = DATASETS.build(loader['dataset'])
    if hasattr(dataset, 'full_init'):
        dataset.full_init()
    return dataset


def _check_labels(where: str, labels: torch.Tensor, num_classes: int, what: str) -> None:
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise OfflineResultsError(
            f'{where}: {what} label {int(labels.max())} is not a class of the config '
            f'({num_classes} classes): were the results made with this config?'
        )


def load_offline_results(cfg: Config | str, results_file: str, cfg_options=None) -> OfflineResults:
    """Load a config's test dataset and pair it with a ``tools/test.py --out`` pickle.

    Args:
        cfg (Config | str): the config, or its path (then ``cfg_options`` are merged and every
            ai4rs module is registered, as the tools do).
        results_file (str): the pickle of ``tools/test.py --out``.
        cfg_options (dict, optional): overrides, with a config path only.

    Returns:
        OfflineResults: see its docstring; ``samples`` follow the pickle's order.

    Raises:
        FileNotFoundError: the config or pickle is missing.
        OfflineResultsError: the pickle is not detection results, the dataset has no classes,
            an image of the pickle is not in the test dataset, the two hold a different
            number of images, or a label is not a class of the config.
    """
    if isinstance(cfg, str):
        from mmengine.registry import init_default_scope

        from ai4rs.utils.config import load_config
        from ai4rs.utils.setup_env import register_all_modules

        cfg = load_config(cfg, cfg_options)
        register_all_modules(init_default_scope=False)
        init_default_scope(cfg.get('default_scope', 'ai4rs'))
    samples = load_results_pkl(results_file)
    dataset = build_test_dataset(cfg)
    classes = tuple(dataset.metainfo.get('classes') or ())
    if not classes:
        raise OfflineResultsError(
            f'{cfg.filename}: the test dataset has no metainfo classes to name the labels'
        )
    if len(samples) != len(dataset):
        raise OfflineResultsError(
            f'{results_file} holds {len(samples)} images, the test dataset of {cfg.filename} '
            f'{len(dataset)}: were the results made with this config and data?'
        )
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    by_path = {osp.normpath(str(info.get('img_path'))): info for info in infos}
    transforms = build_annotation_pipeline(cfg)
    paired = []
    gt_box_type = None
    for i, sample in enumerate(samples):
        key = osp.normpath(str(sample.get('img_path')))
        info = by_path.get(key)
        if info is None:
            raise OfflineResultsError(
                f'{results_file}: sample {i}: image {sample.get("img_path")!r} is not an image '
                f'of the test dataset of {cfg.filename} (e.g. {infos[0].get("img_path")!r})'
            )
        gt, ignored = ground_truth(info, transforms)
        where = f'{results_file}, sample {i} ({sample.get("img_path")})'
        _check_labels(where, sample['pred_instances']['labels'], len(classes), 'predicted')
        _check_labels(where, gt['labels'], len(classes), 'ground truth')
        gt_box_type = _box_type_name(gt['bboxes'])
        paired.append(
            dict(
                sample,
                instances=info.get('instances', []),
                gt_instances=gt,
                ignored_instances=ignored,
            )
        )
    return OfflineResults(
        cfg=cfg,
        dataset=dataset,
        classes=classes,
        samples=paired,
        gt_box_type=gt_box_type,
        results_file=results_file,
    )


def _box_type_name(boxes: BaseBoxes) -> str:
    from ai4rs.structures.bbox import HorizontalBoxes, QuadriBoxes, RotatedBoxes

    for name, cls in (('hbox', HorizontalBoxes), ('rbox', RotatedBoxes), ('qbox', QuadriBoxes)):
        if isinstance(boxes, cls):
            return name
    raise OfflineResultsError(f'unsupported ground truth box type {type(boxes).__name__}')


def build_test_evaluator(cfg: Config):
    """The config's ``test_evaluator`` built as the Runner builds it (an mmengine ``Evaluator``).

    Raises:
        OfflineResultsError: the config has no ``test_evaluator``.
    """
    from mmengine.evaluator import Evaluator

    from ai4rs.registry import EVALUATOR

    evaluator = cfg.get('test_evaluator')
    if not evaluator:
        raise OfflineResultsError(f'{cfg.filename}: the config has no test_evaluator')
    if isinstance(evaluator, dict) and 'metrics' in evaluator:
        return EVALUATOR.build(dict(evaluator, type=evaluator.get('type', 'Evaluator')))
    return Evaluator(evaluator)


def evaluate_offline(results: OfflineResults) -> dict:
    """Run the config's ``test_evaluator`` on saved predictions, no model involved.

    Each metric gets ``dataset_meta`` from the test dataset and each sample as in a test
    run: the pickle's meta and ``pred_instances`` with the image's ``gt_instances``,
    ``ignored_instances`` and ``instances`` (:func:`load_offline_results`). The metrics log
    their tables through the current ``MMLogger`` as in ``tools/test.py``.

    Returns:
        dict: metric name (with prefix, e.g. ``'dota/AP50'``, ``'coco/bbox_mAP'``) -> value.
    """
    evaluator = build_test_evaluator(results.cfg)
    evaluator.dataset_meta = results.dataset_meta
    return evaluator.offline_evaluate(results.samples, chunk_size=1)


def format_metrics(metrics: dict) -> str:
    """``'dota/mAP: 0.5123  dota/AP50: 0.7000'``: the metrics as the test log line shows them
    (floats with 4 decimals, two spaces between entries)."""
    parts = []
    for name, value in metrics.items():
        if isinstance(value, float):
            value = f'{value:.4f}'
        parts.append(f'{name}: {value}')
    return '  '.join(parts)
