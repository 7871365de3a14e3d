"""Deployment in three parts, as mmyolo's easydeploy splits it:

- :mod:`.export`: the export wrapper (:class:`DecodedDetector`: images -> decoded boxes and
  scores through the model's public contract) and :func:`export_onnx` with its metadata;
- :mod:`.nms`: NMS inside the graph (ONNX ``NonMaxSuppression``, horizontal boxes);
- :mod:`.runtime`: :class:`OnnxDetector`, the exported file run by onnxruntime and used
  like the model by ``ai4rs.apis``; :mod:`.preprocess`: images to the export-size input.
"""

from .export import (
    METADATA_KEY,
    DecodedDetector,
    default_img_size,
    export_metadata,
    export_onnx,
    output_names,
)
from .nms import MultiClassNMS, graph_nms, graph_nms_supported
from .preprocess import Preprocessor, pad_to_size
from .runtime import OnnxDetector, import_onnxruntime, onnx_session, read_export_metadata

__all__ = [
    'METADATA_KEY',
    'DecodedDetector',
    'MultiClassNMS',
    'OnnxDetector',
    'Preprocessor',
    'default_img_size',
    'export_metadata',
    'export_onnx',
    'graph_nms',
    'graph_nms_supported',
    'import_onnxruntime',
    'onnx_session',
    'output_names',
    'pad_to_size',
    'read_export_metadata',
]
