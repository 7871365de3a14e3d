"""DIOR-R: oriented boxes of the DIOR images, one VOC-style XML file per image.

The dataset folder (``data_root``) holds::

    ImageSets/Main/{train,val,test}.txt        # the official split: one image id a line
    JPEGImages-trainval/{img_id}.jpg           # data_prefix['img_path']
    JPEGImages-test/{img_id}.jpg
    Annotations/Oriented Bounding Boxes/{img_id}.xml   # ann_subdir (ann_type='obb')
    Annotations/Horizontal Bounding Boxes/{img_id}.xml # ann_type='hbb'

An XML file holds ``<size><width>``, ``<height>`` and one ``<object>`` per object with
``<name>`` (class name, any case), ``<difficult>`` (0 or 1) and either ``<robndbox>``
(the four corners ``x_left_top y_left_top x_right_top y_right_top x_right_bottom
y_right_bottom x_left_bottom y_left_bottom``, pixels) or ``<bndbox>`` (``xmin ymin xmax
ymax``). Each instance's ``bbox`` is the polygon of its 4 corners (8 floats), as in
:class:`~ai4rs.datasets.DOTADataset`, so the same pipelines (``LoadAnnotations(box_type=
'qbox')`` + ``ConvertBoxType``) and :class:`~ai4rs.evaluation.DOTAMetric` read it.

The helpers here (split file, XML file, numeric fields, the shared checks of a dataset
read through a split file) are also used by :class:`~ai4rs.datasets.HRSCDataset`.
"""

import logging
import math
import os.path as osp
import xml.etree.ElementTree as ET

import numpy as np
from mmengine.dataset import BaseDataset
from mmengine.logging import print_log

from ai4rs.registry import DATASETS

from .dota import _image_size, degenerate_polygons
from .file_checks import ImageDecodeError, check_image_files, handle_bad_image
from .refetch import SeededRefetchMixin
from .samplers.seeded_sampler import sample_rng

DIOR_CLASSES = (
    'airplane',
    'airport',
    'baseballfield',
    'basketballcourt',
    'bridge',
    'chimney',
    'expressway-service-area',
    'expressway-toll-station',
    'dam',
    'golffield',
    'groundtrackfield',
    'harbor',
    'overpass',
    'ship',
    'stadium',
    'storagetank',
    'tenniscourt',
    'trainstation',
    'vehicle',
    'windmill',
)
DIOR_PALETTE = [
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
]

#: the corner fields of ``<robndbox>``, in polygon order (x1 y1 ... x4 y4)
ROBNDBOX_FIELDS = (
    'x_left_top',
    'y_left_top',
    'x_right_top',
    'y_right_top',
    'x_right_bottom',
    'y_right_bottom',
    'x_left_bottom',
    'y_left_bottom',
)
#: the fields of ``<bndbox>`` that make the polygon (xmin, ymin), (xmax, ymin), (xmax, ymax),
#: (xmin, ymax)
BNDBOX_POLYGON_FIELDS = ('xmin', 'ymin', 'xmax', 'ymin', 'xmax', 'ymax', 'xmin', 'ymax')


def read_split_file(path: str, dataset_name: str) -> list[str]:
    """The image ids of a split file (``ImageSets/Main/train.txt``...): one a line.

    Blank lines and surrounding spaces are skipped; an id is the line's first token (a
    VOC-style ``{id} {flag}`` line gives ``{id}``).

    Raises:
        FileNotFoundError: ``path`` is not a file.
        ValueError: it lists no id, or an id twice (named with its line numbers).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{dataset_name}: ann_file must be a split file of image ids (one a line), '
            f'there is no file {path!r}'
        )
    ids, first_line = [], {}
    with open(path, encoding='utf-8-sig') as f:
        for lineno, line in enumerate(f, start=1):
            tokens = line.split()
            if not tokens:
                continue
            img_id = tokens[0]
            if img_id in first_line:
                raise ValueError(
                    f'{path}, line {lineno}: image id {img_id!r} is listed twice '
                    f'(first on line {first_line[img_id]})'
                )
            first_line[img_id] = lineno
            ids.append(img_id)
    if not ids:
        raise ValueError(f'{dataset_name}: the split file {path!r} lists no image id')
    return ids


def parse_xml_file(path: str) -> ET.Element:
    """The root element of an XML annotation file.

    Raises:
        ValueError: the file is not well-formed XML (file, line and column named).
    """
    try:
        return ET.parse(path).getroot()
    except ET.ParseError as e:
        line, col = e.position
        raise ValueError(f'{path}, line {line}, column {col}: malformed XML ({e.msg})') from None


def xml_number(elem: ET.Element, tag: str, where: str, kind=float) -> float:
    """The number in child ``tag`` of ``elem``: ``kind`` (float or int) of its text.

    Args:
        where (str): names the element in errors (file and object).

    Raises:
        ValueError: the child is missing or empty, or its text is not a finite number.
    """
    child = elem.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise ValueError(f'{where}: <{tag}> is missing or empty')
    text = child.text.strip()
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f'{where}: <{tag}> must be a number, got {text!r}') from None
    if not math.isfinite(value):
        raise ValueError(f'{where}: <{tag}> must be finite, got {text!r}')
    if kind is int:
        if value != int(value):
            raise ValueError(f'{where}: <{tag}> must be an integer, got {text!r}')
        return int(value)
    return value


def polygon_short_sides(polygons: np.ndarray) -> np.ndarray:
    """The shorter of the two side lengths ``|p1 p2|`` and ``|p2 p3|`` of (N, 8) polygons
    (the rotated box's short side for a rectangle's corners in order) -> (N,)."""
    pts = np.asarray(polygons, dtype=np.float64).reshape(-1, 4, 2)
    a = np.linalg.norm(pts[:, 1] - pts[:, 0], axis=-1)
    b = np.linalg.norm(pts[:, 2] - pts[:, 1], axis=-1)
    return np.minimum(a, b)


class SplitFileXMLDataset(SeededRefetchMixin, BaseDataset):
    """What DIOR-R and HRSC2016 share: image ids from a split file (``ann_file``), one XML
    per image parsed by :meth:`parse_data_info`, checks at build time, filtering.

    Each data dict holds ``img_id``, ``img_path``, ``xml_path``, ``width``, ``height`` and
    ``instances``: dicts with ``bbox`` (8 floats, the polygon ``x1 y1 ... x4 y4``),
    ``bbox_label``, ``difficult`` and ``ignore_flag``: 1 when ``difficult > diff_thr``, or,
    with ``filter_cfg['bbox_min_size']`` (training only), when the box's shorter side is
    below it. Degenerate polygons (collinear or coincident corners) are dropped with one
    warning per file. With a pipeline, every image file must exist (all missing ones are
    listed in one ``FileNotFoundError``); an undecodable image raises an
    ``ImageDecodeError`` naming it, or with ``skip_bad_images=True`` (training only) is
    replaced by a sample drawn from its own seed.

    Args:
        diff_thr (int): objects whose difficult flag is above it are ignored (kept, but
            flagged). Defaults to 100: nothing is ignored, as upstream (which does not read
            the flag).
        skip_bad_images (bool): skip undecodable images (training only).
        file_client_args (dict): removed upstream; anything but None is an error.
        backend_args (dict, optional): kept for upstream's signature; files are read locally.
        **kwargs: mmengine ``BaseDataset`` arguments. ``filter_cfg`` keys:
            ``filter_empty_gt``, ``min_size`` (drop images whose shorter side is below it)
            and ``bbox_min_size``.
    """

    def __init__(
        self,
        file_client_args: dict | None = None,
        backend_args: dict | None = None,
        diff_thr: int = 100,
        skip_bad_images: bool = False,
        **kwargs,
    ) -> None:
        if file_client_args is not None:
            raise RuntimeError(
                f'{type(self).__name__}: file_client_args is deprecated (as in mmdet 3.x), '
                'use backend_args instead'
            )
        self.backend_args = backend_args
        self.diff_thr = diff_thr
        self.skip_bad_images = skip_bad_images
        super().__init__(**kwargs)

    def prepare_data(self, idx: int):
        """The pipeline's output for sample ``idx``, under the sample's own seed; an
        undecodable image is named (or skipped)."""
        try:
            with sample_rng(idx):
                return super().prepare_data(idx)
        except ImageDecodeError as e:
            return handle_bad_image(e, type(self).__name__, self.skip_bad_images, self.test_mode)

    # subclasses: the paths of one image id, and the XML -> (width, height, objects)
    def image_and_xml_paths(self, img_id: str) -> tuple[str, str]:
        """``(image path, XML path)`` of an image id (each dataset's folder layout)."""
        raise NotImplementedError(f'{type(self).__name__} must define image_and_xml_paths')

    def parse_objects(self, root: ET.Element, xml_path: str) -> tuple:
        """``(width | None, height | None, objects)``; ``objects``: a list of
        ``(polygon list of 8 floats, label int, difficult int, extra dict)``, ``extra`` going
        into the instance dict as it is."""
        raise NotImplementedError(f'{type(self).__name__} must define parse_objects')

    def load_data_list(self) -> list[dict]:
        """Read the split file and the XML file of every image it lists."""
        name = type(self).__name__
        if not self.metainfo.get('classes'):
            raise ValueError(f'{name}: metainfo has no classes')
        img_ids = read_split_file(self.ann_file, name)
        paths = [self.image_and_xml_paths(i) for i in img_ids]
        missing = [x for _, x in paths if not osp.isfile(x)]
        if missing:
            listed = '\n  '.join(missing[:20])
            raise FileNotFoundError(
                f'{name}: {len(missing)} of {len(paths)} annotation files listed by '
                f'{self.ann_file} do not exist:\n  {listed}'
            )
        data_list = [
            self.parse_data_info(dict(img_id=i, img_path=p, xml_path=x))
            for i, (p, x) in zip(img_ids, paths)
        ]
        if len(self.pipeline.transforms) > 0:  # images will be read: they must all be there
            check_image_files((d['img_path'] for d in data_list), name)
        return data_list

    @property
    def bbox_min_size(self) -> float | None:
        """``filter_cfg['bbox_min_size']``: boxes with a shorter side are ignored (training)."""
        return (self.filter_cfg or {}).get('bbox_min_size')

    def parse_data_info(self, raw_data_info: dict) -> dict:
        """One image's data dict (see the class docstring) from ``img_id``, ``img_path``,
        ``xml_path``."""
        xml_path = raw_data_info['xml_path']
        width, height, objects = self.parse_objects(parse_xml_file(xml_path), xml_path)
        if width is None or height is None:
            if not osp.isfile(raw_data_info['img_path']):
                raise FileNotFoundError(
                    f'{xml_path} gives no image size and its image '
                    f'{raw_data_info["img_path"]} does not exist'
                )
            width, height = _image_size(raw_data_info['img_path'])
        polygons = np.asarray([o[0] for o in objects], dtype=np.float64).reshape(-1, 8)
        bad = degenerate_polygons(polygons)
        small = np.zeros(len(objects), dtype=bool)
        if self.bbox_min_size is not None and not self.test_mode:
            small = polygon_short_sides(polygons) < self.bbox_min_size
        instances = []
        for (polygon, label, difficult, extra), is_bad, is_small in zip(objects, bad, small):
            if is_bad:
                continue
            instances.append(
                dict(
                    bbox=[float(v) for v in polygon],
                    bbox_label=int(label),
                    difficult=int(difficult),
                    ignore_flag=int(difficult > self.diff_thr or bool(is_small)),
                    **extra,
                )
            )
        if bad.any():
            print_log(
                f'{type(self).__name__}: {xml_path}: dropped {int(bad.sum())} degenerate '
                'box(es) (collinear or coincident corners, no area)',
                logger='current',
                level=logging.WARNING,
            )
        return dict(raw_data_info, width=int(width), height=int(height), instances=instances)

    def filter_data(self) -> list[dict]:
        """Apply ``filter_cfg`` (``filter_empty_gt``, ``min_size``); no-op in test mode."""
        if self.test_mode or not self.filter_cfg:
            return self.data_list
        filter_empty_gt = self.filter_cfg.get('filter_empty_gt', False)
        min_size = self.filter_cfg.get('min_size', 0) or 0
        return [
            d
            for d in self.data_list
            if not (filter_empty_gt and not d['instances'])
            and min(d['width'], d['height']) >= min_size
        ]

    def get_cat_ids(self, idx: int) -> list[int]:
        """Class indices of the objects of sample ``idx`` (one per object)."""
        return [inst['bbox_label'] for inst in self.get_data_info(idx)['instances']]


@DATASETS.register_module()
class DIORDataset(SplitFileXMLDataset):
    """DIOR-R (20 classes, mmrotate 1.x's ``DIORDataset``): the images listed by a split file.

    ``ann_file`` is the split file (``ImageSets/Main/train.txt``...); the XML of image
    ``{img_id}`` is ``data_root/ann_subdir/{img_id}.xml`` and its image
    ``data_prefix['img_path']/{img_id}.jpg``. Class names are matched in lower case.
    See :class:`SplitFileXMLDataset` for the data dicts, the checks and ``diff_thr``.

    Args:
        ann_subdir (str): folder of the XML files under ``data_root``. Defaults to
            ``'Annotations/Oriented Bounding Boxes/'``.
        ann_type (str): ``'obb'`` reads ``<robndbox>`` (4 corners), ``'hbb'`` reads
            ``<bndbox>`` (an object without one is skipped, as upstream).
        file_client_args, backend_args, diff_thr, skip_bad_images, **kwargs: see
            :class:`SplitFileXMLDataset`.

    Raises:
        ValueError: ``ann_type`` is not 'obb' / 'hbb'; an XML file is malformed, an object
            has an unknown class, or a missing / non-numeric box field (file, object and
            field named); the split file is empty or lists an id twice.
        FileNotFoundError: the split file, an XML file or (with a pipeline) an image is
            missing.
    """

    METAINFO = dict(classes=DIOR_CLASSES, palette=DIOR_PALETTE)

    def __init__(
        self,
        ann_subdir: str = 'Annotations/Oriented Bounding Boxes/',
        file_client_args: dict | None = None,
        backend_args: dict | None = None,
        ann_type: str = 'obb',
        **kwargs,
    ) -> None:
        if ann_type not in ('obb', 'hbb'):
            raise ValueError(f"DIORDataset: ann_type must be 'obb' or 'hbb', got {ann_type!r}")
        self.ann_type = ann_type
        self.ann_subdir = ann_subdir
        super().__init__(file_client_args=file_client_args, backend_args=backend_args, **kwargs)

    def image_and_xml_paths(self, img_id: str) -> tuple[str, str]:
        img_path = osp.join(self.data_prefix.get('img_path', ''), f'{img_id}.jpg')
        return img_path, osp.join(self.data_root or '', self.ann_subdir, f'{img_id}.xml')

    def parse_objects(self, root: ET.Element, xml_path: str) -> tuple:
        width = height = None
        size = root.find('size')
        if size is not None:
            width = xml_number(size, 'width', f'{xml_path}, <size>', int)
            height = xml_number(size, 'height', f'{xml_path}, <size>', int)
        cls_map = {c.lower(): i for i, c in enumerate(self.metainfo['classes'])}
        box_tag, fields = (
            ('robndbox', ROBNDBOX_FIELDS) if self.ann_type == 'obb' else ('bndbox', None)
        )
        objects = []
        for k, obj in enumerate(root.findall('object'), start=1):
            where = f'{xml_path}, object {k}'
            name_elem = obj.find('name')
            name = (name_elem.text or '').strip() if name_elem is not None else ''
            if name.lower() not in cls_map:
                raise ValueError(
                    f'{where}: unknown class {name!r}; {type(self).__name__} classes are '
                    f'{list(self.metainfo["classes"])}'
                )
            box = obj.find(box_tag)
            if box is None:
                if self.ann_type == 'hbb':
                    continue  # as upstream
                raise ValueError(f'{where}: no <{box_tag}> (ann_type={self.ann_type!r})')
            where = f'{where}, <{box_tag}>'
            if fields is not None:
                polygon = [xml_number(box, f, where) for f in fields]
            else:
                polygon = [xml_number(box, f, where) for f in BNDBOX_POLYGON_FIELDS]
            difficult = 0
            if obj.find('difficult') is not None:
                difficult = xml_number(obj, 'difficult', f'{xml_path}, object {k}', int)
            objects.append((polygon, cls_map[name.lower()], difficult, {}))
        return width, height, objects


__all__ = ['DIORDataset', 'DIOR_CLASSES', 'SplitFileXMLDataset']
