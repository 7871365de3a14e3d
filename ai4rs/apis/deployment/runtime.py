"""The runtime wrapper: an exported ONNX model run by onnxruntime, used like the model.

:class:`OnnxDetector` has the part of a detector's interface that ``ai4rs.apis`` uses
(``cfg``, ``dataset_meta``, ``takes_texts``, ``vocabulary``, ``box_type``, ``test_step``),
so :func:`ai4rs.apis.init_detector` returns one for an ``.onnx`` file and
:func:`ai4rs.apis.inference_detector` and sliced inference run it as they run the PyTorch
model. Only the head is built from the config (for its post-processing); no CLIP is loaded,
but for a file exported with a run-time vocabulary (``export_onnx.py --text-input``): the
prompts of each call are then encoded by the config's text model (CLIP, or the
``PseudoLanguageBackbone`` of a saved embeddings file) and fed to the graph's ``texts``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from mmengine.structures import InstanceData
from torch import Tensor

from ai4rs.registry import MODELS
from ai4rs.structures.bbox import get_box_type
from ai4rs.utils.checkpoint import CheckpointMismatchError, NotACheckpointError

from ..pipeline import load_model_config, text_prompt_format
from .export import METADATA_KEY, output_names
from .preprocess import Preprocessor

# files exported before the metadata named the box type named the model family
_FAMILY_BOX_TYPES = {'yolo_world': 'hbox', 'rotated_yolox': 'rbox'}


def import_onnxruntime():
    try:
        import onnxruntime
    except ImportError as err:
        raise ImportError(
            "running an .onnx model (backend='onnxruntime') needs onnxruntime: "
            "pip install onnxruntime, or ai4rs's optional extra: pip install 'ai4rs[optional]' "
            '(requirements/optional.txt)'
        ) from err
    return onnxruntime


def onnx_session(onnx_file: str, device: str = 'cpu', threads: int | None = None):
    """An onnxruntime session of ``onnx_file`` (CUDA provider first on a CUDA ``device`` where
    onnxruntime has it) with ``threads`` intra-op threads (None: ``torch.get_num_threads()``,
    which ai4rs sets from the CPUs actually free) and one inter-op thread (the default
    sequential executor runs one op at a time on the intra-op threads)."""
    ort = import_onnxruntime()
    if not Path(onnx_file).is_file():
        raise FileNotFoundError(f'ONNX file {onnx_file} does not exist')
    providers = ['CPUExecutionProvider']
    if device.startswith('cuda') and 'CUDAExecutionProvider' in ort.get_available_providers():
        providers.insert(0, 'CUDAExecutionProvider')
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads() if threads is None else threads
    options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(onnx_file), options, providers=providers)
    except Exception as err:  # onnxruntime raises its own Fail / InvalidProtobuf types
        raise NotACheckpointError(
            f'{onnx_file} is not an ONNX model onnxruntime can load '
            f'({type(err).__name__}: {str(err).strip()[:300]})'
        ) from err


def read_export_metadata(session, onnx_file: str) -> dict:
    """The ai4rs metadata of an exported file (see :mod:`.export`)."""
    raw = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    if raw is None:
        raise NotACheckpointError(
            f'{onnx_file}: no "{METADATA_KEY}" metadata; export it with '
            'tools/deployment/export_onnx.py'
        )
    meta = json.loads(raw)
    if 'box_type' not in meta and meta.get('family') in _FAMILY_BOX_TYPES:
        meta['box_type'] = _FAMILY_BOX_TYPES[meta['family']]
    for key in ('box_type', 'img_size'):
        if key not in meta:
            raise ValueError(f'{onnx_file}: the "{METADATA_KEY}" metadata has no {key!r}')
    return meta


class OnnxDetector:
    """An exported model run with onnxruntime, used like a checkpoint.

    Args:
        onnx_file (str): written by ``tools/deployment/export_onnx.py``.
        config (str | Config): the model's config (test pipeline, data preprocessor,
            head and ``test_cfg``; no CLIP is loaded).
        device (str): ``'cpu'`` or ``'cuda...'`` (CUDA provider if installed).
        threads (int, optional): onnxruntime's intra-op threads (None: torch's count).

    Attributes:
        cfg (Config): the config.
        dataset_meta (dict): ``classes`` = the baked-in texts (open-vocabulary models) or
            the exported classes.
        takes_texts (bool): the labels index the baked-in texts; a batch may carry
            texts only if they are those.
        vocabulary (list[str] | None): the baked-in texts (None for a run-time
            vocabulary: each call's texts are used).
        text_input (bool): the graph takes (K, D) text embeddings (any vocabulary).
        box_type (type[BaseBoxes]): the box class of the predictions.
        digest (str): SHA-1 of the file's bytes (the weights' identity, e.g. for resuming
            scene inference).
    """

    def __init__(
        self, onnx_file: str, config, device: str = 'cpu', threads: int | None = None
    ) -> None:
        from ai4rs.utils import register_all_modules

        register_all_modules()
        self.onnx_file = str(onnx_file)
        self.session = onnx_session(onnx_file, device, threads)
        with open(onnx_file, 'rb') as f:  # what resumed scene inference compares
            self.digest = hashlib.sha1(f.read()).hexdigest()
        self.meta = read_export_metadata(self.session, self.onnx_file)
        self.cfg = load_model_config(config)
        head_cfg = dict(self.cfg.model.bbox_head)
        head_cfg['test_cfg'] = self.cfg.model.test_cfg
        head_cfg.pop('train_cfg', None)
        self.head = MODELS.build(head_cfg)
        _, self.box_type = get_box_type(self.meta['box_type'])
        if self.head.box_type is not self.box_type:
            raise CheckpointMismatchError(
                f"{onnx_file} outputs {self.box_type.__name__} but the config's head "
                f'({type(self.head).__name__}) predicts {self.head.box_type.__name__}: '
                'give the config the file was exported from'
            )
        self.check_config()
        self.preprocess = Preprocessor(self.cfg, self.meta['img_size'])
        self.vocabulary = self.meta.get('texts')
        self.text_input = bool(self.meta.get('text_input'))
        self.takes_texts = self.vocabulary is not None or self.text_input
        self._text_model = None
        # what the samples carry: the vocabulary as the test pipeline's LoadText formats it
        prompt_format = text_prompt_format(self.cfg)
        self.prompts = [prompt_format.format(t) for t in self.vocabulary or []]
        classes = self.vocabulary or self.meta.get('classes') or []
        self.dataset_meta = dict(classes=list(classes))

    def check_config(self) -> None:
        """The file was exported for this config: an input size within the test pipeline's
        resize, and (closed-set models) as many score columns as the head has classes.

        Raises:
            CheckpointMismatchError: naming the file's and the config's values.
        """
        from .export import default_img_size

        try:
            size = list(default_img_size(self.cfg))
        except ValueError:  # no resize with a scale: the file's size is the only one
            size = None
        exported = [int(v) for v in self.meta['img_size']]
        # larger than anything the pipeline produces: made for another config (smaller is
        # an export for the inputs of one image shape; a larger input is refused at run time)
        if size is not None and (exported[0] > size[0] or exported[1] > size[1]):
            raise CheckpointMismatchError(
                f'{self.onnx_file} was exported for {exported[0]}x{exported[1]} inputs but '
                f"the config's test pipeline resizes to at most {size[0]}x{size[1]}: give "
                'the config the file was exported from, or export again at that size'
            )
        if self.meta.get('texts') is not None or self.meta.get('text_input'):
            return
        num_classes = getattr(self.head, 'num_classes', None)
        if self.meta.get('with_nms') or num_classes is None:
            return
        columns = self.session.get_outputs()[1].shape[-1]
        if isinstance(columns, int) and columns != num_classes:
            raise CheckpointMismatchError(
                f"{self.onnx_file} scores {columns} classes but the config's head "
                f'({type(self.head).__name__}) has num_classes={num_classes}: give the '
                'config the file was exported from'
            )

    @property
    def text_model(self):
        """The config's text model (``model.backbone.text_model``: CLIP, or the
        ``PseudoLanguageBackbone`` of an embeddings file), built on first use: it turns
        the prompts of a run-time vocabulary into the graph's ``texts`` input."""
        if self._text_model is None:
            text_cfg = self.cfg.model.backbone.get('text_model')
            if text_cfg is None:
                raise ValueError(
                    f'{self.onnx_file} takes text embeddings, and the config has no '
                    'model.backbone.text_model to compute them'
                )
            self._text_model = MODELS.build(text_cfg).eval()
        return self._text_model

    def swap_text_model(self, text_model):
        """Use ``text_model`` (a module: ``[texts] -> (1, K, D)``; None: the config's, built
        on first use) for the run-time vocabulary from now on; returns the one in use
        before (None when the config's was not built yet)."""
        previous, self._text_model = self._text_model, text_model
        return previous

    def text_embeddings(self, texts) -> Tensor:
        """K prompts -> (K, D) float32 embeddings for the graph's ``texts`` input.

        Raises:
            ValueError: the text model's width is not the graph's.
        """
        with torch.no_grad():
            feats = self.text_model([list(texts)])[0].float().cpu()
        return self.check_text_width(feats)

    def check_text_width(self, feats: Tensor) -> Tensor:
        width = self.meta.get('text_dim')
        if feats.dim() != 2 or feats.shape[1] != width:
            raise ValueError(
                f'{self.onnx_file} takes text embeddings of width {width}; got '
                f'{tuple(feats.shape)} (width {feats.shape[-1]}): the text model or '
                'embeddings file is not the one the model was trained with'
            )
        return feats

    def raw(self, inputs: Tensor, texts: Tensor | None = None) -> list[Tensor]:
        """(1, 3, H, W) input (and, for a run-time vocabulary, (K, D) text embeddings) ->
        the graph's outputs as tensors (batch dim removed without NMS: boxes (P, box_dim),
        scores (P, K); with NMS: dets, scores, labels)."""
        outs = self.raw_batch(inputs, texts)
        return outs if self.meta.get('with_nms') else [o[0] for o in outs]

    def raw_batch(self, inputs: Tensor, texts: Tensor | None = None) -> list[Tensor]:
        """(B, 3, H, W) inputs (B > 1 only for a ``dynamic_batch`` export) -> the graph's
        outputs: boxes (B, P, box_dim), scores (B, P, K); with NMS (B = 1): dets, scores,
        labels."""
        with_nms = bool(self.meta.get('with_nms'))
        if inputs.shape[0] > 1 and not self.meta.get('dynamic_batch'):
            raise ValueError(
                f'{self.onnx_file} takes one image per run; got a batch of {inputs.shape[0]}'
            )
        feed = {'images': inputs.cpu().numpy().astype(np.float32)}
        if self.text_input:
            if texts is None:
                raise ValueError(f'{self.onnx_file} takes text embeddings: give texts')
            feed['texts'] = self.check_text_width(texts).numpy().astype(np.float32)
        outs = self.session.run(output_names(with_nms), feed)
        return [torch.from_numpy(o) for o in outs]

    def _check_texts(self, sample) -> None:
        texts = sample.get('texts')
        if self.text_input:
            if not texts:
                raise ValueError(
                    f'{self.onnx_file} takes a vocabulary at run time: give texts '
                    '(inference_detector(..., texts=[...]))'
                )
            return
        if texts is not None and list(texts) not in (self.prompts, self.vocabulary):
            raise ValueError(
                f'{self.onnx_file} has its vocabulary baked in '
                f'({(self.vocabulary or [])[:5]}...); it cannot score other texts '
                f'({list(texts)[:5]}...): export again with them'
            )

    def predict_one(
        self, inputs: Tensor, img_meta: dict, texts: Tensor | None = None
    ) -> InstanceData:
        """One (1, 3, H, W) export-size input (and (K, D) text embeddings for a run-time
        vocabulary) -> detections in original-image pixels."""
        if self.meta.get('with_nms'):
            dets, scores, labels = self.raw(inputs, texts)
            results = InstanceData(bboxes=self.box_type(dets), scores=scores, labels=labels)
            return self.head.finish_detections(
                results, self.head.test_cfg, img_meta, rescale=True, with_nms=False
            )
        boxes, scores = self.raw(inputs, texts)
        return self.head.postprocess_decoded(boxes, scores, img_meta)

    def test_step(self, data: dict) -> list:
        """A batch from the test pipeline (``inputs``, ``data_samples``) -> the data samples
        with ``pred_instances``, as a model's ``test_step``."""
        inputs, samples = self.preprocess.batch(data)
        if self.takes_texts:
            for sample in samples:
                self._check_texts(sample)
        if not self.meta.get('dynamic_batch'):
            for i, sample in enumerate(samples):
                texts = self.text_embeddings(sample.texts) if self.text_input else None
                sample.pred_instances = self.predict_one(inputs[i : i + 1], sample.metainfo, texts)
            return samples
        # one run per group of consecutive samples with the same texts
        start = 0
        while start < len(samples):
            key = list(samples[start].texts) if self.text_input else None
            end = start + 1
            while end < len(samples) and (not self.text_input or list(samples[end].texts) == key):
                end += 1
            texts = self.text_embeddings(key) if self.text_input else None
            boxes, scores = self.raw_batch(inputs[start:end], texts)
            group = samples[start:end]
            results = self.head.postprocess_batch(boxes, scores, [s.metainfo for s in group])
            for sample, result in zip(group, results, strict=True):
                sample.pred_instances = result
            start = end
        return samples
