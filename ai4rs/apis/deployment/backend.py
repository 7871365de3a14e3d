"""The inference backend of :func:`ai4rs.apis.init_detector`: PyTorch or ONNX Runtime.

``backend='onnxruntime'`` with a PyTorch checkpoint exports the loaded weights
(:func:`export_for_runtime`) and returns an :class:`~.runtime.OnnxDetector` on the export:

- input size: the test pipeline's resize (:func:`~.export.default_img_size`), fixed;
- batch: dynamic (the graph's ``images`` and outputs have a ``batch`` first axis), so
  ``inference_detector(..., batch_size=B)`` runs B images per onnxruntime call;
- open-vocabulary models (YOLO-World v2, rotated YOLO-World): the text embeddings are a
  graph input (a run-time vocabulary, as ``export_onnx.py --text-input``); the texts of each
  call go through the loaded model's own text model;
- where: ``onnx_file`` when given (kept: pass it later as the checkpoint to skip the export),
  else a temporary directory, removed as soon as onnxruntime has read the file (the session
  holds the model in memory; nothing is left next to the checkpoint).
"""

from __future__ import annotations

import os.path as osp
import shutil
import tempfile
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from .export import default_img_size, export_onnx
from .preprocess import Preprocessor

BACKENDS = ('pytorch', 'onnxruntime')
#: the vocabulary an open-vocabulary export is traced with (any K works at run time)
TRACE_TEXTS = ('object', 'thing in the image')


def resolve_backend(checkpoint, backend: str | None) -> str:
    """The backend to build: ``backend`` (``'pytorch'`` default), ``'onnxruntime'`` for an
    ``.onnx`` checkpoint.

    Raises:
        ValueError: an unknown backend, or ``backend='pytorch'`` with an ``.onnx`` file.
    """
    is_onnx = checkpoint is not None and str(checkpoint).endswith('.onnx')
    if backend is None:
        return 'onnxruntime' if is_onnx else 'pytorch'
    if backend not in BACKENDS:
        raise ValueError(f'backend must be one of {BACKENDS}, got {backend!r}')
    if backend == 'pytorch' and is_onnx:
        raise ValueError(
            f"backend='pytorch' cannot run {checkpoint}: an .onnx file runs with "
            "backend='onnxruntime' (or give the .pth checkpoint it was exported from)"
        )
    return backend


def trace_input(cfg, img_size) -> torch.Tensor:
    """(1, 3, H, W): a generated textured image through the config's test pipeline."""
    rng = np.random.default_rng(0)
    h, w = img_size
    img = (rng.random((h, w, 3)) * 255).astype(np.uint8)
    inputs, _ = Preprocessor(cfg, img_size)(img)
    return inputs


def export_for_runtime(model: nn.Module, onnx_file: str, img_size=None) -> dict:
    """Export a loaded PyTorch detector for :class:`~.runtime.OnnxDetector`: dynamic batch,
    the test pipeline's input size (or ``img_size`` (H, W)), the text embeddings an input
    for an open-vocabulary model. Returns the metadata written in the file."""
    img_size = tuple(img_size) if img_size is not None else default_img_size(model.cfg)
    inputs = trace_input(model.cfg, img_size).to(next(model.parameters()).device)
    texts = None
    if model.takes_texts:
        from ..pipeline import text_prompt_format

        prompt_format = text_prompt_format(model.cfg)
        with torch.no_grad():
            texts = model.backbone.forward_text([[prompt_format.format(t) for t in TRACE_TEXTS]])
        texts = texts[0].detach()
    return export_onnx(model, inputs, onnx_file, texts=texts, dynamic_batch=True)


def onnxruntime_detector(
    config,
    checkpoint,
    device: str = 'cpu',
    onnx_file: str | None = None,
    build_model: Callable[[], nn.Module] | None = None,
):
    """:func:`ai4rs.apis.init_detector`'s ``backend='onnxruntime'``: an
    :class:`~.runtime.OnnxDetector` for an ``.onnx`` ``checkpoint``, else for the export of
    the PyTorch ``checkpoint`` to ``onnx_file`` (None: a temporary file, removed once read).

    ``build_model()`` returns the PyTorch model of ``checkpoint`` to export
    (``init_detector`` passes itself with the PyTorch backend)."""
    from .runtime import OnnxDetector, import_onnxruntime

    import_onnxruntime()  # before a slow export
    if checkpoint is not None and str(checkpoint).endswith('.onnx'):
        if onnx_file is not None:
            raise ValueError(
                f'onnx_file={onnx_file!r} is where a .pth checkpoint is exported to; '
                f'{checkpoint} is already an .onnx file'
            )
        return OnnxDetector(checkpoint, config, device=device)
    if build_model is None:
        raise ValueError(f'{checkpoint}: not an .onnx file, and no build_model to export it')
    model = build_model()
    tmp = None
    if onnx_file is None:
        tmp = tempfile.mkdtemp(prefix='ai4rs_onnx_')
        stem = osp.splitext(osp.basename(str(checkpoint)))[0] if checkpoint else 'model'
        onnx_file = osp.join(tmp, stem + '.onnx')
    try:
        export_for_runtime(model, onnx_file)
        detector = OnnxDetector(onnx_file, model.cfg, device=device)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    # the checkpoint's palette (and classes, for a run-time vocabulary that stores none)
    stored = {k: v for k, v in detector.dataset_meta.items() if v}
    detector.dataset_meta = {**(model.dataset_meta or {}), **stored}
    if detector.text_input:  # the loaded text model, not a second copy from the config
        detector.swap_text_model(model.backbone.text_model)
    return detector


def run_test_loop_with_onnx(runner, onnx_file: str):
    """Make ``runner`` (an mmengine Runner built from the model's config, no checkpoint
    loaded) test ``onnx_file``: during the test epoch ``runner.model.test_step`` is an
    :class:`~.runtime.OnnxDetector`'s, which takes the dataloader's batch (``inputs``,
    ``data_samples``) and returns the data samples with ``pred_instances`` in original-image
    pixels, as the model's does; the evaluator and ``--out`` dumps see the same samples.

    The OnnxDetector is built first (a file that does not fit the config is refused before
    the loop); its ``test_step`` is installed for the test epoch only
    (:func:`ai4rs.engine.runner.replace_test_step`: after hooks such as EMAHook, which
    deep-copy the model at ``before_run`` and cannot copy an onnxruntime session). Returns
    it."""
    from ai4rs.engine.runner import replace_test_step

    from .runtime import OnnxDetector

    detector = OnnxDetector(onnx_file, runner.cfg)
    replace_test_step(runner, lambda runner: detector.test_step)
    return detector
