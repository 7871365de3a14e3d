"""HRSC2016: ships in harbour images, one XML file per image.

The dataset folder (``data_root``) holds::

    ImageSets/{trainval,test}.txt              # the split: one image id a line
    FullDataSet/AllImages/{img_id}.bmp         # sub_data_root / img_subdir
    FullDataSet/Annotations/{img_id}.xml       # sub_data_root / ann_subdir

An XML file holds ``Img_SizeWidth``, ``Img_SizeHeight`` and ``HRSC_Objects/HRSC_Object``
elements with ``Class_ID`` (``1000000xx``), ``difficult`` (0 or 1), the rotated box
``mbox_cx mbox_cy mbox_w mbox_h mbox_ang`` (pixels; the angle in radians, clockwise in
image coordinates, as ai4rs' rotated boxes) and the ship's head ``header_x header_y``.

Each instance's ``bbox`` is the polygon of the box's four corners (8 floats, the corners of
:func:`~ai4rs.structures.bbox.geometry.rbox_corners`), so that ``LoadAnnotations(box_type=
'qbox')`` + ``ConvertBoxType(gt_bboxes='rbox')`` give the box in the le90 convention
(``w >= h``, angle in ``[-pi/2, pi/2)``) whatever the file's ``w`` / ``h`` order, as in
:class:`~ai4rs.datasets.DOTADataset`.
"""

import math
import os.path as osp
import xml.etree.ElementTree as ET

import torch

from ai4rs.registry import DATASETS
from ai4rs.structures.bbox.geometry import rbox_corners

from .dior import SplitFileXMLDataset, xml_number

HRSC_CLASSES = (
    'ship',
    'aircraft carrier',
    'warcraft',
    'merchant ship',
    'Nimitz',
    'Enterprise',
    'Arleigh Burke',
    'WhidbeyIsland',
    'Perry',
    'Sanantonio',
    'Ticonderoga',
    'Kitty Hawk',
    'Kuznetsov',
    'Abukuma',
    'Austen',
    'Tarawa',
    'Blue Ridge',
    'Container',
    'OXo|--)',
    'Car carrier([]==[])',
    'Hovercraft',
    'yacht',
    'CntShip(_|.--.--|_]=',
    'Cruise',
    'submarine',
    'lute',
    'Medical',
    'Car carrier(======|',
    'Ford-class',
    'Midway-class',
    'Invincible-class',
)
#: the last two digits of each class's ``Class_ID`` (``'1' + '0' * 6 + id``); 21 and 23 are
#: not HRSC2016 classes
HRSC_CLASSES_ID = (
    '01',
    '02',
    '03',
    '04',
    '05',
    '06',
    '07',
    '08',
    '09',
    '10',
    '11',
    '12',
    '13',
    '14',
    '15',
    '16',
    '17',
    '18',
    '19',
    '20',
    '22',
    '24',
    '25',
    '26',
    '27',
    '28',
    '29',
    '30',
    '31',
    '32',
    '33',
)
HRSC_PALETTE = [
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
]

#: the fields of a rotated box in an ``HRSC_Object``
MBOX_FIELDS = ('mbox_cx', 'mbox_cy', 'mbox_w', 'mbox_h', 'mbox_ang')


def hrsc_class_id_map(classes_id=HRSC_CLASSES_ID) -> dict[str, int]:
    """``Class_ID`` text (``'100000001'``...) -> label index (0...30), mmrotate's table."""
    return {'1' + '0' * 6 + cid: i for i, cid in enumerate(classes_id)}


def hrsc_polygon(cx: float, cy: float, w: float, h: float, angle: float) -> list[float]:
    """The 4 corners ``x1 y1 ... x4 y4`` of an HRSC box (``angle`` in radians, clockwise).

    The corners are those of :func:`~ai4rs.structures.bbox.geometry.rbox_corners` (in
    float64): with ``v1 = w/2 (cos a, sin a)`` and ``v2 = h/2 (-sin a, cos a)``, ``c + v1 +
    v2, c + v1 - v2, c - v1 - v2, c - v1 + v2``.
    """
    box = torch.tensor([cx, cy, w, h, angle], dtype=torch.float64)
    return rbox_corners(box).flatten().tolist()


@DATASETS.register_module()
class HRSCDataset(SplitFileXMLDataset):
    """HRSC2016 (mmrotate 1.x's ``HRSCDataset``): the images listed by a split file.

    ``ann_file`` is the split file (``ImageSets/trainval.txt``...); with
    ``sub_data_root = data_prefix['sub_data_root']``, the image of ``{img_id}`` is
    ``sub_data_root/img_subdir/{img_id}.bmp`` and its XML
    ``sub_data_root/ann_subdir/{img_id}.xml``. See :class:`SplitFileXMLDataset` for the data
    dicts (each instance also has ``head``, the ship's head point, when the file gives it),
    the checks and ``diff_thr``.

    Two settings, as upstream: ``classwise=False`` (default) has one class, ``'ship'``, for
    every object; ``classwise=True`` has the 31 classes of :data:`HRSC_CLASSES`, an object's
    label given by its ``Class_ID`` through :func:`hrsc_class_id_map`.

    Args:
        img_subdir (str): image folder under ``sub_data_root``. Defaults to 'AllImages'.
        ann_subdir (str): XML folder under ``sub_data_root``. Defaults to 'Annotations'.
        classwise (bool): the 31-class setting. Defaults to False.
        file_client_args, backend_args, diff_thr, skip_bad_images, **kwargs: see
            :class:`SplitFileXMLDataset`.

    Raises:
        ValueError: an XML file is malformed, a box field or the image size is missing or
            not a number, a ``Class_ID`` (``classwise=True``) is not in the table (file,
            object and value named); the split file is empty or lists an id twice.
        FileNotFoundError: the split file, an XML file or (with a pipeline) an image is
            missing.
    """

    METAINFO = dict(classes=HRSC_CLASSES, palette=HRSC_PALETTE, classes_id=HRSC_CLASSES_ID)

    def __init__(
        self,
        img_subdir: str = 'AllImages',
        ann_subdir: str = 'Annotations',
        classwise: bool = False,
        file_client_args: dict | None = None,
        backend_args: dict | None = None,
        metainfo: dict | None = None,
        **kwargs,
    ) -> None:
        self.img_subdir = img_subdir
        self.ann_subdir = ann_subdir
        self.classwise = classwise
        if not classwise:
            # one class (upstream sets it in load_data_list); a user's metainfo still wins
            metainfo = dict(dict(classes=('ship',), palette=[(220, 20, 60)]), **(metainfo or {}))
        super().__init__(
            file_client_args=file_client_args,
            backend_args=backend_args,
            metainfo=metainfo,
            **kwargs,
        )

    @property
    def sub_data_root(self) -> str:
        """``data_prefix['sub_data_root']`` (joined to ``data_root``), '' when absent."""
        return self.data_prefix.get('sub_data_root', '')

    def image_and_xml_paths(self, img_id: str) -> tuple[str, str]:
        img_path = osp.join(self.sub_data_root, self.img_subdir, f'{img_id}.bmp')
        return img_path, osp.join(self.sub_data_root, self.ann_subdir, f'{img_id}.xml')

    def parse_objects(self, root: ET.Element, xml_path: str) -> tuple:
        width = xml_number(root, 'Img_SizeWidth', xml_path, int)
        height = xml_number(root, 'Img_SizeHeight', xml_path, int)
        id_map = hrsc_class_id_map(self.metainfo.get('classes_id', HRSC_CLASSES_ID))
        objects = []
        for k, obj in enumerate(root.findall('HRSC_Objects/HRSC_Object'), start=1):
            where = f'{xml_path}, HRSC_Object {k}'
            label = 0
            if self.classwise:
                elem = obj.find('Class_ID')
                class_id = (elem.text or '').strip() if elem is not None else ''
                if class_id not in id_map:
                    raise ValueError(
                        f'{where}: unknown Class_ID {class_id!r}; the 31 HRSC2016 classes '
                        f'have ids {list(id_map)}'
                    )
                label = id_map[class_id]
            cx, cy, w, h, angle = (xml_number(obj, f, where) for f in MBOX_FIELDS)
            if abs(angle) > 2 * math.pi:
                raise ValueError(f'{where}: <mbox_ang> must be an angle in radians, got {angle!r}')
            difficult = 0
            if obj.find('difficult') is not None:
                difficult = xml_number(obj, 'difficult', where, int)
            extra = {}
            if obj.find('header_x') is not None and obj.find('header_y') is not None:
                extra['head'] = [
                    xml_number(obj, 'header_x', where, int),
                    xml_number(obj, 'header_y', where, int),
                ]
            objects.append((hrsc_polygon(cx, cy, w, h, angle), label, difficult, extra))
        return width, height, objects
