"""COCO-format detection datasets: mmdet 3.x ``CocoDataset`` and mmyolo's ``YOLOv5CocoDataset``.

One data dict per image (mmdet 3.x layout)::

    dict(img_path=str, img_id=int, seg_map_path=str | None, height=int, width=int,
         instances=[dict(bbox=[x1, y1, x2, y2], bbox_label=int, ignore_flag=0 | 1,
                         mask=polygons list[list[float]] | RLE dict), ...])

``bbox`` is the json's ``[x, y, w, h]`` as corners in pixels; ``mask`` is the json's
``segmentation`` unchanged (present only when the annotation has one); ``iscrowd`` objects get
``ignore_flag=1``. Category ids map to contiguous labels in ``metainfo['classes']`` order,
matched by category name.
"""

import contextlib
import io
import json
import logging
import math
import os.path as osp
from typing import Any

import numpy as np
from mmengine.dataset import BaseDataset
from mmengine.fileio import get_local_path
from mmengine.logging import print_log

from ai4rs.registry import DATASETS, TASK_UTILS

from .file_checks import ImageDecodeError, check_image_files, handle_bad_image
from .samplers.seeded_sampler import sample_rng

COCO_CLASSES = (
    'person',
    'bicycle',
    'car',
    'motorcycle',
    'airplane',
    'bus',
    'train',
    'truck',
    'boat',
    'traffic light',
    'fire hydrant',
    'stop sign',
    'parking meter',
    'bench',
    'bird',
    'cat',
    'dog',
    'horse',
    'sheep',
    'cow',
    'elephant',
    'bear',
    'zebra',
    'giraffe',
    'backpack',
    'umbrella',
    'handbag',
    'tie',
    'suitcase',
    'frisbee',
    'skis',
    'snowboard',
    'sports ball',
    'kite',
    'baseball bat',
    'baseball glove',
    'skateboard',
    'surfboard',
    'tennis racket',
    'bottle',
    'wine glass',
    'cup',
    'fork',
    'knife',
    'spoon',
    'bowl',
    'banana',
    'apple',
    'sandwich',
    'orange',
    'broccoli',
    'carrot',
    'hot dog',
    'pizza',
    'donut',
    'cake',
    'chair',
    'couch',
    'potted plant',
    'bed',
    'dining table',
    'toilet',
    'tv',
    'laptop',
    'mouse',
    'remote',
    'keyboard',
    'cell phone',
    'microwave',
    'oven',
    'toaster',
    'sink',
    'refrigerator',
    'book',
    'clock',
    'vase',
    'scissors',
    'teddy bear',
    'hair drier',
    'toothbrush',
)
COCO_PALETTE = [
    (220, 20, 60),
    (119, 11, 32),
    (0, 0, 142),
    (0, 0, 230),
    (106, 0, 228),
    (0, 60, 100),
    (0, 80, 100),
    (0, 0, 70),
    (0, 0, 192),
    (250, 170, 30),
    (100, 170, 30),
    (220, 220, 0),
    (175, 116, 175),
    (250, 0, 30),
    (165, 42, 42),
    (255, 77, 255),
    (0, 226, 252),
    (182, 182, 255),
    (0, 82, 0),
    (120, 166, 157),
    (110, 76, 0),
    (174, 57, 255),
    (199, 100, 0),
    (72, 0, 118),
    (255, 179, 240),
    (0, 125, 92),
    (209, 0, 151),
    (188, 208, 182),
    (0, 220, 176),
    (255, 99, 164),
    (92, 0, 73),
    (133, 129, 255),
    (78, 180, 255),
    (0, 228, 0),
    (174, 255, 243),
    (45, 89, 255),
    (134, 134, 103),
    (145, 148, 174),
    (255, 208, 186),
    (197, 226, 255),
    (171, 134, 1),
    (109, 63, 54),
    (207, 138, 255),
    (151, 0, 95),
    (9, 80, 61),
    (84, 105, 51),
    (74, 65, 105),
    (166, 196, 102),
    (208, 195, 210),
    (255, 109, 65),
    (0, 143, 149),
    (179, 0, 194),
    (209, 99, 106),
    (5, 121, 0),
    (227, 255, 205),
    (147, 186, 208),
    (153, 69, 1),
    (3, 95, 161),
    (163, 255, 0),
    (119, 0, 170),
    (0, 182, 199),
    (0, 165, 120),
    (183, 130, 88),
    (95, 32, 0),
    (130, 114, 135),
    (110, 129, 133),
    (166, 74, 118),
    (219, 142, 185),
    (79, 210, 114),
    (178, 90, 62),
    (65, 70, 15),
    (127, 167, 115),
    (59, 105, 106),
    (142, 108, 45),
    (196, 172, 0),
    (95, 54, 80),
    (128, 76, 255),
    (201, 57, 1),
    (246, 0, 122),
    (191, 162, 208),
]

#: how many missing image paths an error message lists before "... and N more"
_MAX_LISTED = 10


def load_coco_json(
    path: str, backend_args: dict | None = None, require_annotations: bool = True
) -> dict:
    """Read and check a COCO json, with errors that name the file.

    Checks: the file exists and is a json object with ``images`` and ``categories`` lists
    (and ``annotations``, unless ``require_annotations`` is False: test-set jsons have
    none); every image has ``id``/``file_name``/``width``/``height``; category ids and
    annotation ids are unique; each annotation names a known image and category and has a
    4-number finite ``bbox``.

    Returns:
        dict: the json dict (``annotations`` added as ``[]`` when absent and allowed).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: anything else above (file, and annotation id where one is at fault).
    """
    if backend_args is None and not osp.isfile(path):
        raise FileNotFoundError(f'COCO annotation file not found: {path!r}')
    with get_local_path(path, backend_args=backend_args) as local_path:
        try:
            with open(local_path, encoding='utf-8') as f:
                data = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f'{path}: not a valid json file ({e})') from None
    if not isinstance(data, dict):
        raise ValueError(
            f'{path}: a COCO annotation file holds a json object with images, '
            f'annotations and categories; got a {type(data).__name__}'
        )
    required = ['images', 'categories'] + (['annotations'] if require_annotations else [])
    missing = [k for k in required if not isinstance(data.get(k), list)]
    if missing:
        raise ValueError(
            f'{path}: not a COCO detection annotation file: no {missing} list '
            f'(keys present: {sorted(data)})'
        )
    data.setdefault('annotations', [])
    if not isinstance(data['annotations'], list):
        raise ValueError(f'{path}: "annotations" must be a list')
    img_ids = set()
    for img in data['images']:
        absent = [k for k in ('id', 'file_name', 'width', 'height') if k not in img]
        if absent:
            raise ValueError(f'{path}: image record {img.get("id", img)!r} has no {absent}')
        img_ids.add(img['id'])
    cat_ids = [c.get('id') for c in data['categories']]
    if None in cat_ids or len(set(cat_ids)) != len(cat_ids):
        raise ValueError(f'{path}: category ids must be present and unique, got {cat_ids}')
    cat_ids = set(cat_ids)
    ann_ids = set()
    for ann in data['annotations']:
        ann_id = ann.get('id')
        if ann_id is None:
            raise ValueError(f'{path}: an annotation has no id: {ann}')
        if ann_id in ann_ids:
            raise ValueError(f'{path}: annotation id {ann_id} is not unique')
        ann_ids.add(ann_id)
        if ann.get('image_id') not in img_ids:
            raise ValueError(
                f'{path}: annotation {ann_id} names image_id '
                f'{ann.get("image_id")!r}, which is not in "images"'
            )
        if ann.get('category_id') not in cat_ids:
            raise ValueError(
                f'{path}: annotation {ann_id} names category_id '
                f'{ann.get("category_id")!r}, which is not in "categories" '
                f'(ids {sorted(cat_ids)})'
            )
        bbox = ann.get('bbox')
        if (
            not isinstance(bbox, (list, tuple))
            or len(bbox) != 4
            or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in bbox)
        ):
            raise ValueError(
                f'{path}: annotation {ann_id}: bbox must be 4 finite numbers '
                f'[x, y, w, h], got {bbox!r}'
            )
    return data


@DATASETS.register_module()
class CocoDataset(BaseDataset):
    """COCO detection dataset (mmdet 3.x ``CocoDataset`` on mmengine's ``BaseDataset``).

    The json is read with :func:`load_coco_json` (checked, errors name the file and the
    annotation id) and indexed with pycocotools' ``COCO`` (not kept after loading, as mmdet;
    ``cat_ids``, ``cat2label`` and ``cat_img_map`` are). Each image becomes
    one data dict as described in the module docstring.

    Annotations are skipped as mmdet skips them: ``ignore=True``; a box that does not
    overlap the image (zero intersection); ``area <= 0``, ``w < 1`` or ``h < 1``; a category
    that is not one of ``metainfo['classes']``. The number of skipped degenerate boxes is
    logged once per file.

    Args:
        seg_map_suffix (str): suffix of semantic maps under ``data_prefix['seg']``.
        backend_args (dict, optional): mmengine file backend arguments.
        return_classes (bool): add ``text`` (the class names) and ``custom_entities=True`` to
            each data dict (mmdet's grounding option). Defaults to False.
        caption_prompt (dict, optional): stored as ``caption_prompt`` with ``return_classes``.
        check_img_files (bool): at build time, check (by a stat) that each image of the
            filtered data list exists; all missing files are reported in one error. Skipped
            for remote storage (``backend_args`` set). Defaults to True.
        skip_bad_images (bool): in training, an image that exists but cannot be decoded is
            logged and another sample is drawn instead of stopping the run (test mode always
            raises, naming the file). Defaults to False.
        **kwargs: mmengine ``BaseDataset`` arguments (``ann_file``, ``data_root``,
            ``data_prefix=dict(img=...)``, ``filter_cfg``, ``metainfo``, ``test_mode``,
            ``pipeline``, ``lazy_init``...). ``filter_cfg`` keys (training only):
            ``filter_empty_gt`` drops images with no annotation of a class in
            ``metainfo['classes']`` (any annotation of the json counts, crowd included, as
            mmdet); ``min_size`` drops images whose shorter side (json width/height) is below.

    Raises:
        FileNotFoundError: ``ann_file`` or image files are missing.
        ValueError: a malformed json (see :func:`load_coco_json`), or a class of
            ``metainfo['classes']`` that is no category name of the json.
    """

    METAINFO = dict(classes=COCO_CLASSES, palette=COCO_PALETTE)

    def __init__(
        self,
        *args,
        seg_map_suffix: str = '.png',
        backend_args: dict | None = None,
        return_classes: bool = False,
        caption_prompt: dict | None = None,
        check_img_files: bool = True,
        skip_bad_images: bool = False,
        **kwargs,
    ) -> None:
        self.seg_map_suffix = seg_map_suffix
        self.backend_args = backend_args
        self.return_classes = return_classes
        self.caption_prompt = caption_prompt
        self.check_img_files = check_img_files
        self.skip_bad_images = skip_bad_images
        super().__init__(*args, **kwargs)

    # ------------------------------------------------------------------ loading
    def load_data_list(self) -> list[dict]:
        """Read ``ann_file`` into one data dict per image (json image order)."""
        from pycocotools.coco import COCO

        data = load_coco_json(
            self.ann_file, self.backend_args, require_annotations=not self.test_mode
        )
        coco = COCO()
        coco.dataset = data
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
            coco.createIndex()
        self.cat_ids = self._class_category_ids(data['categories'])
        self.cat2label = {cat_id: i for i, cat_id in enumerate(self.cat_ids)}
        self.cat_img_map = {c: list(v) for c, v in coco.catToImgs.items()}

        data_list = []
        skipped: list = []
        for img_id in coco.getImgIds():
            raw_img_info = dict(coco.imgs[img_id], img_id=img_id)
            raw_ann_info = coco.imgToAnns.get(img_id, [])
            data_list.append(
                self.parse_data_info(
                    dict(raw_img_info=raw_img_info, raw_ann_info=raw_ann_info), skipped
                )
            )
        del coco  # as mmdet: the index is not kept (memory in every dataloader worker)
        if skipped:
            shown = ', '.join(str(i) for i in skipped[:_MAX_LISTED])
            more = f' and {len(skipped) - _MAX_LISTED} more' if len(skipped) > _MAX_LISTED else ''
            print_log(
                f'{self.ann_file}: skipped {len(skipped)} annotations with a degenerate '
                f'box (width or height < 1, area <= 0, or outside the image), as mmdet '
                f'does; annotation ids {shown}{more}',
                logger='current',
                level=logging.WARNING,
            )
        return data_list

    def _class_category_ids(self, categories: list[dict]) -> list[int]:
        """The json category id of each class of ``metainfo['classes']`` (matched by name)."""
        name_to_id: dict[str, Any] = {}
        for cat in categories:
            name_to_id.setdefault(cat.get('name'), cat['id'])
        classes = list(self.metainfo['classes'])
        missing = [c for c in classes if c not in name_to_id]
        if missing:
            raise ValueError(
                f'{self.ann_file}: classes {missing} of {type(self).__name__} '
                f'metainfo are not category names of the json (its categories: '
                f'{list(name_to_id)})'
            )
        return [name_to_id[c] for c in classes]

    def parse_data_info(self, raw_data_info: dict, skipped: list | None = None) -> dict:
        """One image's data dict from its json image record and annotations.

        Args:
            raw_data_info (dict): ``raw_img_info`` (the json image record plus ``img_id``)
                and ``raw_ann_info`` (its annotations, json order).
            skipped (list, optional): receives the ids of annotations skipped for a
                degenerate box.
        """
        img_info = raw_data_info['raw_img_info']
        ann_info = raw_data_info['raw_ann_info']
        img_prefix = self.data_prefix.get('img', self.data_root or '')
        data_info = dict(
            img_path=osp.join(img_prefix, img_info['file_name']), img_id=img_info['img_id']
        )
        seg_prefix = self.data_prefix.get('seg')
        data_info['seg_map_path'] = (
            osp.join(seg_prefix, img_info['file_name'].rsplit('.', 1)[0] + self.seg_map_suffix)
            if seg_prefix
            else None
        )
        data_info['height'] = img_info['height']
        data_info['width'] = img_info['width']
        if self.return_classes:
            data_info['text'] = self.metainfo['classes']
            data_info['caption_prompt'] = self.caption_prompt
            data_info['custom_entities'] = True
        instances = []
        for ann in ann_info:
            if ann.get('ignore', False):
                continue
            x1, y1, w, h = ann['bbox']
            inter_w = max(0, min(x1 + w, img_info['width']) - max(x1, 0))
            inter_h = max(0, min(y1 + h, img_info['height']) - max(y1, 0))
            if inter_w * inter_h == 0 or ann.get('area', w * h) <= 0 or w < 1 or h < 1:
                if skipped is not None:
                    skipped.append(ann['id'])
                continue
            if ann['category_id'] not in self.cat2label:
                continue
            instance = dict(
                bbox=[x1, y1, x1 + w, y1 + h],
                bbox_label=self.cat2label[ann['category_id']],
                ignore_flag=int(bool(ann.get('iscrowd', False))),
            )
            if ann.get('segmentation', None):
                instance['mask'] = ann['segmentation']
            instances.append(instance)
        data_info['instances'] = instances
        return data_info

    # ---------------------------------------------------------------- filtering
    def filter_data(self) -> list[dict]:
        """Apply ``filter_cfg`` (``filter_empty_gt``, ``min_size``); no-op in test mode."""
        if self.test_mode or not self.filter_cfg:
            return self.data_list
        filter_empty_gt = self.filter_cfg.get('filter_empty_gt', False)
        min_size = self.filter_cfg.get('min_size', 0) or 0
        ids_in_cat = set()
        for cat_id in self.cat_ids:
            ids_in_cat |= set(self.cat_img_map.get(cat_id, ()))
        valid = []
        for data_info in self.data_list:
            if filter_empty_gt and data_info['img_id'] not in ids_in_cat:
                continue
            if min(data_info['width'], data_info['height']) >= min_size:
                valid.append(data_info)
        return valid

    def full_init(self) -> None:
        """Load, filter, subset, check the image files, serialize (mmengine's order)."""
        if self._fully_initialized:
            return
        self.data_list = self.load_data_list()
        self.data_list = self.filter_data()
        if self._indices is not None:
            self.data_list = self._get_unserialized_subset(self._indices)
        if self.check_img_files and self.backend_args is None:
            check_image_files(
                [d['img_path'] for d in self.data_list], f'{type(self).__name__} ({self.ann_file})'
            )
        if self.serialize_data:
            self.data_bytes, self.data_address = self._serialize_data()
        self._fully_initialized = True

    def prepare_data(self, idx: int) -> Any:
        """The pipeline's output for sample ``idx``; an undecodable image is named (or skipped).

        With ai4rs' ``DefaultSampler`` the pipeline runs under the sample's own seed
        (:func:`ai4rs.datasets.samplers.sample_rng`), so a resumed run repeats the
        uninterrupted run's augmentations.
        """
        try:
            with sample_rng(idx):
                return self._run_pipeline(idx)
        except ImageDecodeError as e:
            return handle_bad_image(e, type(self).__name__, self.skip_bad_images, self.test_mode)

    def _run_pipeline(self, idx: int) -> Any:
        return super().prepare_data(idx)

    def get_cat_ids(self, idx: int) -> list[int]:
        """Labels of the instances of sample ``idx`` (one per instance)."""
        return [inst['bbox_label'] for inst in self.get_data_info(idx)['instances']]


@TASK_UTILS.register_module()
class BatchShapePolicy:
    """mmyolo's ``BatchShapePolicy``: per-batch padded input shapes for batched testing.

    Images are sorted by aspect ratio h / w; consecutive groups of ``batch_size`` share one
    ``batch_shape`` (h, w): ``ceil(shape * img_size / size_divisor + extra_pad_ratio) *
    size_divisor`` with shape ``[max_ratio, 1]`` when all ratios < 1, ``[1, 1 / min_ratio]``
    when all > 1, else ``[1, 1]``. Each data dict gets ``batch_shape`` (np.ndarray (2,) int64).

    Args:
        batch_size (int): test batch size per GPU. Defaults to 32.
        img_size (int): network input size. Defaults to 640.
        size_divisor (int): shapes are multiples of it. Defaults to 32.
        extra_pad_ratio (float): extra padding in units of ``size_divisor``. Defaults to 0.5.
    """

    def __init__(
        self,
        batch_size: int = 32,
        img_size: int = 640,
        size_divisor: int = 32,
        extra_pad_ratio: float = 0.5,
    ) -> None:
        self.batch_size = batch_size
        self.img_size = img_size
        self.size_divisor = size_divisor
        self.extra_pad_ratio = extra_pad_ratio

    def __call__(self, data_list: list[dict]) -> list[dict]:
        """Return ``data_list`` sorted by aspect ratio, each dict with its ``batch_shape``."""
        if not data_list:
            return data_list
        wh = np.array([(d['width'], d['height']) for d in data_list], dtype=np.float64)
        ratios = wh[:, 1] / wh[:, 0]
        order = np.argsort(ratios)
        data_list = [data_list[i] for i in order]
        ratios = ratios[order]
        batch_index = np.arange(len(data_list)) // self.batch_size
        num_batches = int(batch_index[-1]) + 1
        shapes = np.ones((num_batches, 2), dtype=np.float64)
        for b in range(num_batches):
            r = ratios[batch_index == b]
            if r.max() < 1:
                shapes[b] = (r.max(), 1)
            elif r.min() > 1:
                shapes[b] = (1, 1 / r.min())
        batch_shapes = (
            np.ceil(shapes * self.img_size / self.size_divisor + self.extra_pad_ratio).astype(
                np.int64
            )
            * self.size_divisor
        )
        for i, data_info in enumerate(data_list):
            data_info['batch_shape'] = batch_shapes[batch_index[i]]
        return data_list


@DATASETS.register_module()
class YOLOv5CocoDataset(CocoDataset):
    """mmyolo's ``YOLOv5CocoDataset``: ``CocoDataset`` with ``batch_shapes_cfg``.

    ``batch_shapes_cfg`` (a ``BatchShapePolicy`` config, testing only) is applied to the
    loaded list before filtering. In training mode (``test_mode=False``) each sample passed
    to the pipeline carries ``dataset`` (this dataset), which the mixing transforms
    (Mosaic, MixUp) draw other images from.

    Args:
        batch_shapes_cfg (dict, optional): e.g. ``dict(type='BatchShapePolicy',
            batch_size=1, img_size=640, size_divisor=32, extra_pad_ratio=0.5)``.
        *args, **kwargs: :class:`CocoDataset` arguments.
    """

    def __init__(self, *args, batch_shapes_cfg: dict | None = None, **kwargs) -> None:
        self.batch_shapes_cfg = batch_shapes_cfg
        super().__init__(*args, **kwargs)

    def load_data_list(self) -> list[dict]:
        data_list = super().load_data_list()
        if self.batch_shapes_cfg:
            data_list = TASK_UTILS.build(self.batch_shapes_cfg)(data_list)
        return data_list

    def _run_pipeline(self, idx: int) -> Any:
        if self.test_mode is False:  # the mixing transforms draw more images from the dataset
            data_info = self.get_data_info(idx)
            data_info['dataset'] = self
            return self.pipeline(data_info)
        return super()._run_pipeline(idx)


__all__ = [
    'CocoDataset',
    'YOLOv5CocoDataset',
    'BatchShapePolicy',
    'COCO_CLASSES',
    'COCO_PALETTE',
    'load_coco_json',
]
