"""Datasets and their transforms (importing this package registers them)."""

from .dota import DOTADataset, DOTAv2Dataset, DOTAv15Dataset, load_dota_labels
from .transforms import *  # noqa: F401,F403

__all__ = ['DOTADataset', 'DOTAv15Dataset', 'DOTAv2Dataset', 'load_dota_labels']

from . import utils  # noqa: E402,F401  (registers the yolov5_collate / yolow_collate)
from .class_texts import load_class_texts, read_vocabulary  # noqa: E402
from .coco import (  # noqa: E402
    COCO_CLASSES,
    COCO_PALETTE,
    BatchShapePolicy,
    CocoDataset,
    YOLOv5CocoDataset,
    load_coco_json,
)
from .multimodal_dataset import MultiModalDataset  # noqa: E402

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
]
from .file_checks import ImageDecodeError, check_image_files  # noqa: E402

__all__ += ['ImageDecodeError', 'check_image_files']
from .samplers import DefaultSampler  # noqa: E402,F401  (registers the seeded sampler)
