"""DOTA datasets: one data dict per image, read from a folder of DOTA label files.

A DOTA label file holds optional header lines (``imagesource:GoogleEarth``,
``gsd:0.146``) and then one object per line::

    x1 y1 x2 y2 x3 y3 x4 y4 class-name difficulty

The polygon corners are in pixels of the image the file belongs to. ``difficulty``
is 0 or 1 in the raw data and 2 in split annotation files for an object that a
patch border truncated (see ``ai4rs.datasets.preparation.dota_split``).
"""

import glob
import logging
import os.path as osp
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from mmengine.dataset import BaseDataset
from mmengine.logging import print_log

from ai4rs.registry import DATASETS

from .file_checks import ImageDecodeError, check_image_files, handle_bad_image
from .refetch import SeededRefetchMixin
from .samplers.seeded_sampler import sample_rng

DOTA_V1_CLASSES = (
    'plane',
    'baseball-diamond',
    'bridge',
    'ground-track-field',
    'small-vehicle',
    'large-vehicle',
    'ship',
    'tennis-court',
    'basketball-court',
    'storage-tank',
    'soccer-ball-field',
    'roundabout',
    'harbor',
    'swimming-pool',
    'helicopter',
)
DOTA_V1_PALETTE = [
    (165, 42, 42),
    (189, 183, 107),
    (0, 255, 0),
    (255, 0, 0),
    (138, 43, 226),
    (255, 128, 0),
    (255, 0, 255),
    (0, 255, 255),
    (255, 193, 193),
    (0, 51, 153),
    (255, 250, 205),
    (0, 139, 139),
    (255, 255, 0),
    (147, 116, 116),
    (0, 0, 255),
]

# A header line: ``imagesource:...`` or ``gsd:...`` (any case, spaces allowed).
_HEADER_RE = re.compile(r'^\s*(imagesource|gsd)\s*:', re.IGNORECASE)

IMAGE_SUFFIXES = ('png', 'jpg', 'jpeg', 'tif', 'tiff', 'bmp')


@dataclass
class DOTALabels:
    """The objects of one DOTA label file.

    Attributes:
        polygons (np.ndarray): (N, 8) float64 corners ``x1 y1 ... x4 y4``.
        names (list[str]): N class names, as written in the file.
        difficulties (np.ndarray): (N,) int64 difficulty flags.
        gsd (float, optional): ground sample distance from a ``gsd:`` header.
        line_numbers (list[int]): 1-based line number of each object.
    """

    polygons: np.ndarray
    names: list[str]
    difficulties: np.ndarray
    gsd: float | None = None
    line_numbers: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.names)


def parse_dota_line(line: str, allow_nonfinite: bool = False):
    """Parse one line of a DOTA label file.

    Args:
        line (str): the line, with or without its newline.
        allow_nonfinite (bool): accept ``nan`` / ``inf`` corners (the caller
            drops them); by default they are an error.

    Returns:
        None for a blank or header line (``imagesource:``/``gsd:``), else a tuple
        ``(polygon list[float] of 8, class name str, difficulty int)``. A line of 9
        tokens (no difficulty) gets difficulty 0, as in the DOTA devkit.

    Raises:
        ValueError: the line is not ``8 numbers, a class name[, an integer]``;
        the message says what is wrong (the caller adds file and line number).
    """
    if not line.strip() or _HEADER_RE.match(line):
        return None
    tokens = line.split()
    if len(tokens) not in (9, 10):
        raise ValueError(
            f'expected "x1 y1 x2 y2 x3 y3 x4 y4 class difficulty" (9 or 10 fields), '
            f'got {len(tokens)} fields: {line.strip()!r}'
        )
    try:
        polygon = [float(t) for t in tokens[:8]]
    except ValueError:
        raise ValueError(f'polygon corners must be 8 numbers: {line.strip()!r}') from None
    if not allow_nonfinite and not all(np.isfinite(polygon)):
        raise ValueError(f'polygon corners must be finite: {line.strip()!r}')
    difficulty = 0
    if len(tokens) == 10:
        try:
            difficulty = int(tokens[9])
        except ValueError:
            raise ValueError(
                f'difficulty must be an integer, got {tokens[9]!r}: {line.strip()!r}'
            ) from None
    return polygon, tokens[8], difficulty


def load_dota_labels(
    path: str,
    strict: bool = True,
    on_skip: Callable[[str], None] | None = None,
    allow_nonfinite: bool = False,
) -> DOTALabels:
    """Read a DOTA label file.

    Args:
        path (str): the ``.txt`` file.
        strict (bool): if True, a malformed line raises ``ValueError`` naming the
            file and the 1-based line number. If False, the line is skipped and
            ``on_skip`` is called with a message naming file and line (the
            upstream ``img_split`` reader skips such lines too).
        on_skip (callable, optional): receives one message per skipped line.
        allow_nonfinite (bool): keep polygons with ``nan`` / ``inf`` corners
            (see :func:`degenerate_polygons`) instead of treating them as malformed.

    Returns:
        DOTALabels: the objects in file order; empty arrays for an empty file.
    """
    polygons, names, diffs, line_numbers = [], [], [], []
    gsd = None
    with open(path, encoding='utf-8-sig') as f:  # -sig: tolerate a byte-order mark
        for lineno, line in enumerate(f, start=1):
            if _HEADER_RE.match(line) and line.split(':', 1)[0].strip().lower() == 'gsd':
                try:
                    gsd = float(line.split(':', 1)[1])
                except ValueError:
                    gsd = None
                continue
            try:
                parsed = parse_dota_line(line, allow_nonfinite)
            except ValueError as e:
                msg = f'{path}, line {lineno}: {e}'
                if strict:
                    raise ValueError(msg) from None
                if on_skip is not None:
                    on_skip(msg)
                continue
            if parsed is None:
                continue
            polygon, name, difficulty = parsed
            polygons.append(polygon)
            names.append(name)
            diffs.append(difficulty)
            line_numbers.append(lineno)
    return DOTALabels(
        polygons=np.asarray(polygons, dtype=np.float64).reshape(-1, 8),
        names=names,
        difficulties=np.asarray(diffs, dtype=np.int64).reshape(-1),
        gsd=gsd,
        line_numbers=line_numbers,
    )


#: a polygon whose corners' convex hull is smaller than this (px^2) is degenerate
MIN_POLYGON_AREA = 1e-3


def degenerate_polygons(polygons: np.ndarray, min_area: float = MIN_POLYGON_AREA) -> np.ndarray:
    """Which polygons cannot be an object: a non-finite corner, or (almost) no area.

    The area is that of the corners' convex hull, so collinear or coincident
    corners are degenerate while a self-intersecting ("bow-tie") corner order
    is not (its rotated box is still well defined).

    Args:
        polygons (np.ndarray): (N, 8) corners ``x1 y1 ... x4 y4``.

    Returns:
        np.ndarray: (N,) bool.
    """
    polygons = np.asarray(polygons, dtype=np.float64).reshape(-1, 8)
    bad = ~np.isfinite(polygons).all(axis=1)
    for i in np.flatnonzero(~bad):
        hull = cv2.convexHull(polygons[i].reshape(4, 2).astype(np.float32))
        bad[i] = cv2.contourArea(hull) < min_area
    return bad


@DATASETS.register_module()
class DOTADataset(SeededRefetchMixin, BaseDataset):
    """DOTA-v1.0 (15 classes), one sample per image or per split patch.

    ``ann_file`` is a *folder* of DOTA label files (``{img_id}.txt``), the image of
    each is ``data_prefix['img_path']/{img_id}.{img_suffix}``. With ``ann_file=''``
    the images in ``data_prefix['img_path']`` are listed instead (a test set with
    no labels); each is an image with no objects.

    Each data dict holds ``img_id``, ``file_name``, ``img_path`` and ``instances``,
    a list of dicts with ``bbox`` (list of 8 floats, the polygon), ``bbox_label``
    (int) and ``ignore_flag`` (1 when difficulty > ``diff_thr``, else 0).

    Bad data is found when the dataset is built, not in the middle of a run:
    with a pipeline (i.e. when images will be read), every image file must
    exist (all missing files are listed in one ``FileNotFoundError``);
    degenerate polygons (a ``nan``/``inf`` corner, collinear or coincident
    corners: :func:`degenerate_polygons`) are dropped with one warning per
    label file that counts them. An image that cannot be decoded raises an
    ``ImageDecodeError`` naming the file and the dataset, or, with
    ``skip_bad_images=True`` (training only), is skipped with a logged count and
    replaced by a sample drawn from its own seed (:class:`SeededRefetchMixin`: a
    resumed run draws the same one).

    Args:
        diff_thr (int): objects with a difficulty above it are ignored (kept,
            but flagged). Defaults to 100 (nothing ignored), as upstream.
        skip_bad_images (bool): skip samples whose image cannot be decoded
            (logged, with a running count) instead of raising. Training only.
        img_suffix (str): image extension, ``'png'`` (default), ``'jpg'``,
            ``'tif'``, ``'bmp'``...; a leading dot is allowed.
        ignore_classes (Sequence[str]): class names, none of them in
            ``metainfo['classes']``, whose objects are left out (e.g. the novel
            classes when training on the base classes of an open-vocabulary
            split). Their lines are skipped, not an error; how many objects of
            each were skipped is logged once, when the dataset is built. Any
            other unknown class is still an error. Defaults to ``()``.
        **kwargs: mmengine ``BaseDataset`` arguments (``data_root``, ``ann_file``,
            ``data_prefix``, ``filter_cfg``, ``test_mode``, ``pipeline``...).
            ``filter_cfg`` keys: ``filter_empty_gt`` (drop images without any
            object, training only) and ``min_size`` (drop images whose shorter
            side is below it, read from the image header).

    Raises:
        FileNotFoundError: ``ann_file`` (or the image folder for ``ann_file=''``)
            is not a folder.
        ValueError: the folder holds no label file, a line is malformed, or a
            class name is neither one of ``metainfo['classes']`` nor one of
            ``ignore_classes`` (file and line named); a name of ``ignore_classes``
            is also one of ``metainfo['classes']``.
        TypeError: ``ignore_classes`` is a single string or holds a non-string.
    """

    METAINFO = dict(classes=DOTA_V1_CLASSES, palette=DOTA_V1_PALETTE)

    def __init__(
        self,
        diff_thr: int = 100,
        img_suffix: str = 'png',
        skip_bad_images: bool = False,
        ignore_classes: Sequence[str] = (),
        **kwargs,
    ) -> None:
        self.diff_thr = diff_thr
        self.img_suffix = img_suffix.lstrip('.')
        self.skip_bad_images = skip_bad_images
        if isinstance(ignore_classes, str) or not all(isinstance(c, str) for c in ignore_classes):
            raise TypeError(
                f'{type(self).__name__}: ignore_classes must be a list of class names, '
                f'got {ignore_classes!r}'
            )
        self.ignore_classes = tuple(dict.fromkeys(ignore_classes))  # unique, in order
        super().__init__(**kwargs)

    def prepare_data(self, idx: int):
        """The pipeline's output for sample ``idx``; an undecodable image is named (or skipped).

        With ai4rs' ``DefaultSampler`` the pipeline runs under the sample's own
        seed (:func:`ai4rs.datasets.samplers.sample_rng`).
        """
        try:
            with sample_rng(idx):  # augmentation seeded by (seed, epoch, position): exact resume
                return super().prepare_data(idx)
        except ImageDecodeError as e:
            return handle_bad_image(e, type(self).__name__, self.skip_bad_images, self.test_mode)

    # ------------------------------------------------------------------ loading
    def load_data_list(self) -> list[dict]:
        """Read every label file of ``ann_file`` (or list the images if it is '')."""
        both = [c for c in self.ignore_classes if c in self.metainfo['classes']]
        if both:
            raise ValueError(
                f'{type(self).__name__}: ignore_classes {both} are also among the '
                f"dataset's classes {list(self.metainfo['classes'])}; a class is either "
                'learnt or ignored'
            )
        if self.ann_file == '':
            return self._list_images()
        ann_dir = self.ann_file
        if not osp.isdir(ann_dir):
            raise FileNotFoundError(
                f'DOTADataset: ann_file must be a folder of DOTA .txt label files, got {ann_dir!r}'
            )
        txt_files = sorted(glob.glob(osp.join(ann_dir, '*.txt')))
        if not txt_files:
            raise ValueError(f'DOTADataset: there is no .txt file in {ann_dir!r}')
        cls_map = {c: i for i, c in enumerate(self.metainfo['classes'])}
        img_dir = self.data_prefix.get('img_path', '')
        data_list = []
        ignored = Counter({c: 0 for c in self.ignore_classes})
        for txt_file in txt_files:
            img_id = osp.splitext(osp.basename(txt_file))[0]
            file_name = f'{img_id}.{self.img_suffix}'
            labels = load_dota_labels(txt_file, strict=True, allow_nonfinite=True)
            data_list.append(
                dict(
                    img_id=img_id,
                    file_name=file_name,
                    img_path=osp.join(img_dir, file_name),
                    instances=self._to_instances(labels, cls_map, txt_file, ignored),
                )
            )
        if self.ignore_classes:
            counts = ', '.join(f'{c}: {ignored[c]}' for c in self.ignore_classes)
            print_log(
                f'{type(self).__name__}: {ann_dir}: left out {sum(ignored.values())} '
                f'object(s) of ignore_classes ({counts})',
                logger='current',
                level=logging.INFO,
            )
        if len(self.pipeline.transforms) > 0:  # images will be read: they must all be there
            check_image_files((d['img_path'] for d in data_list), type(self).__name__)
        return data_list

    def _to_instances(
        self, labels: DOTALabels, cls_map: dict, txt_file: str, ignored: Counter
    ) -> list[dict]:
        """The instances of one label file; objects of ``ignore_classes`` are counted in
        ``ignored`` (class name -> count, updated in place) and left out."""
        instances = []
        degenerate = degenerate_polygons(labels.polygons)
        dropped = []
        for polygon, name, diff, lineno, bad in zip(
            labels.polygons, labels.names, labels.difficulties, labels.line_numbers, degenerate
        ):
            if name in ignored:
                ignored[name] += 1
                continue
            if name not in cls_map:
                hint = f' (ignore_classes: {list(ignored)})' if ignored else ''
                raise ValueError(
                    f'{txt_file}, line {lineno}: unknown class {name!r}; '
                    f'{type(self).__name__} classes are {list(cls_map)}{hint}'
                )
            if bad:
                dropped.append(lineno)
                continue
            instances.append(
                dict(
                    bbox=[float(v) for v in polygon],
                    bbox_label=cls_map[name],
                    ignore_flag=int(diff > self.diff_thr),
                )
            )
        if dropped:
            print_log(
                f'{type(self).__name__}: {txt_file}: dropped {len(dropped)} degenerate '
                f'polygon(s) (non-finite corners, or collinear / coincident corners with '
                f'no area) on line(s) {", ".join(map(str, dropped))}',
                logger='current',
                level=logging.WARNING,
            )
        return instances

    def _list_images(self) -> list[dict]:
        img_dir = self.data_prefix.get('img_path', '')
        if not osp.isdir(img_dir):
            raise FileNotFoundError(
                f"DOTADataset: with ann_file='' the images are listed from "
                f"data_prefix['img_path'], which is not a folder: {img_dir!r}"
            )
        img_paths = sorted(glob.glob(osp.join(img_dir, f'*.{self.img_suffix}')))
        data_list = []
        for img_path in img_paths:
            file_name = osp.basename(img_path)
            data_list.append(
                dict(
                    img_id=osp.splitext(file_name)[0],
                    file_name=file_name,
                    img_path=img_path,
                    instances=[],
                )
            )
        return data_list

    # ---------------------------------------------------------------- filtering
    def filter_data(self) -> list[dict]:
        """Apply ``filter_cfg`` (``filter_empty_gt``, ``min_size``); no-op in test mode."""
        if self.test_mode or not self.filter_cfg:
            return self.data_list
        filter_empty_gt = self.filter_cfg.get('filter_empty_gt', False)
        min_size = self.filter_cfg.get('min_size', 0) or 0
        valid = []
        for data_info in self.data_list:
            if filter_empty_gt and len(data_info['instances']) == 0:
                continue
            if min_size > 0 and min(_image_size(data_info['img_path'])) < min_size:
                continue
            valid.append(data_info)
        return valid

    def get_cat_ids(self, idx: int) -> list[int]:
        """Class indices of the objects of sample ``idx`` (one per object)."""
        return [inst['bbox_label'] for inst in self.get_data_info(idx)['instances']]


def _image_size(img_path: str) -> Sequence[int]:
    """(width, height) of an image, read from its header only."""
    from PIL import Image

    with Image.open(img_path) as img:
        return img.size


@DATASETS.register_module()
class DOTAv15Dataset(DOTADataset):
    """DOTA-v1.5: the 15 DOTA-v1.0 classes plus ``container-crane`` (16)."""

    METAINFO = dict(
        classes=DOTA_V1_CLASSES + ('container-crane',), palette=DOTA_V1_PALETTE + [(220, 20, 60)]
    )


@DATASETS.register_module()
class DOTAv2Dataset(DOTADataset):
    """DOTA-v2.0: DOTA-v1.5's classes plus ``airport`` and ``helipad`` (18)."""

    METAINFO = dict(
        classes=DOTA_V1_CLASSES + ('container-crane', 'airport', 'helipad'),
        palette=DOTA_V1_PALETTE + [(220, 20, 60), (119, 11, 32), (0, 0, 142)],
    )
