"""Datasets and their transforms (importing this package registers them)."""

from .dota import DOTADataset, DOTAv2Dataset, DOTAv15Dataset, load_dota_labels
from .transforms import *  # noqa: F401,F403

__all__ = ['DOTADataset', 'DOTAv15Dataset', 'DOTAv2Dataset', 'load_dota_labels']

from . import utils  # noqa: E402,F401  (registers the yolov5_collate / yolow_collate)
from .batch_shape_policy import BatchShapePolicy  # noqa: E402
from .class_texts import load_class_texts, read_vocabulary  # noqa: E402
from .coco import CocoDataset  # noqa: E402
from .coco_classes import COCO_CLASSES, COCO_PALETTE  # noqa: E402
from .coco_json import load_coco_json  # noqa: E402
from .concat_dataset import ConcatDataset  # noqa: E402
from .multimodal_dataset import MultiModalDataset  # noqa: E402
from .yolov5_coco import YOLOv5CocoDataset  # noqa: E402

__all__ += [
    'CocoDataset',
    'YOLOv5CocoDataset',
    'BatchShapePolicy',
    'COCO_CLASSES',
    'COCO_PALETTE',
    'load_coco_json',
    'load_class_texts',
    'read_vocabulary',
    'MultiModalDataset',
    'ConcatDataset',
]
from .file_checks import ImageDecodeError, check_image_files  # noqa: E402

__all__ += ['ImageDecodeError', 'check_image_files']
from .dior import DIOR_CLASSES, DIORDataset  # noqa: E402
from .hrsc import HRSC_CLASSES, HRSCDataset  # noqa: E402
from .samplers import DefaultSampler  # noqa: E402,F401  (registers the seeded sampler)

__all__ += ['DIORDataset', 'DIOR_CLASSES', 'HRSCDataset', 'HRSC_CLASSES']
