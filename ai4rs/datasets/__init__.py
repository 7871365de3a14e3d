"""Datasets and their transforms (importing this package registers them)."""
from .dota import DOTADataset, DOTAv2Dataset, DOTAv15Dataset, load_dota_labels
from .transforms import *  # noqa: F401,F403

__all__ = ['DOTADataset', 'DOTAv15Dataset', 'DOTAv2Dataset', 'load_dota_labels']
from .file_checks import ImageDecodeError, check_image_files  # noqa: E402

__all__ += ['ImageDecodeError', 'check_image_files']
from .samplers import DefaultSampler  # noqa: E402,F401  (registers the seeded sampler)
