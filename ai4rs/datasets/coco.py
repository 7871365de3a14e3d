"""mmdet 3.x's ``CocoDataset``: a COCO-format json as one data dict per image.

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
import logging
import os.path as osp
from typing import Any

from mmengine.dataset import BaseDataset
from mmengine.logging import print_log

from ai4rs.registry import DATASETS

from .coco_classes import COCO_CLASSES, COCO_PALETTE
from .coco_json import load_coco_json
from .file_checks import ImageDecodeError, check_image_files, handle_bad_image
from .refetch import SeededRefetchMixin
from .samplers.seeded_sampler import sample_rng

#: how many missing image paths an error message lists before "... and N more"
_MAX_LISTED = 10


@DATASETS.register_module()
class CocoDataset(SeededRefetchMixin, BaseDataset):
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
