"""Evaluation metrics registered in ``ai4rs.registry.METRICS``."""

from .dota_metric import DOTAMetric
from .dump_det_results import DumpDetResults

__all__ = ['DOTAMetric', 'DumpDetResults']
from .coco_metric import CocoMetric  # noqa: E402

__all__ += ['CocoMetric']
