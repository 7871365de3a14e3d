"""The runtime wrapper: an exported ONNX model run by onnxruntime, used like the model.

:class:`OnnxDetector` has the part of a detector's interface that ``ai4rs.apis`` uses
(``cfg``, ``dataset_meta``, ``takes_texts``, ``vocabulary``, ``box_type``, ``test_step``),
so :func:`ai4rs.apis.init_detector` returns one for an ``.onnx`` file and
:func:`ai4rs.apis.inference_detector` and sliced inference run it as they run the PyTorch
model. Only the head is built from the config (for its post-processing); no CLIP is loaded.
"""

from __future__ import annotations

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
            'running an .onnx model needs onnxruntime: pip install onnxruntime '
            '(see requirements/optional.txt)'
        ) from err
    return onnxruntime


def onnx_session(onnx_file: str, device: str = 'cpu'):
    ort = import_onnxruntime()
    if not Path(onnx_file).is_file():
        raise FileNotFoundError(f'ONNX file {onnx_file} does not exist')
    providers = ['CPUExecutionProvider']
    if device.startswith('cuda') and 'CUDAExecutionProvider' in ort.get_available_providers():
        providers.insert(0, 'CUDAExecutionProvider')
    return ort.InferenceSession(str(onnx_file), providers=providers)


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

    Attributes:
        cfg (Config): the config.
        dataset_meta (dict): ``classes`` = the baked-in texts (open-vocabulary models) or
            the exported classes.
        takes_texts (bool): the labels index the baked-in texts; a batch may carry
            texts only if they are those.
        vocabulary (list[str] | None): the baked-in texts.
        box_type (type[BaseBoxes]): the box class of the predictions.
    """

    def __init__(self, onnx_file: str, config, device: str = 'cpu') -> None:
        from ai4rs.utils import register_all_modules

        register_all_modules()
        self.onnx_file = str(onnx_file)
        self.session = onnx_session(onnx_file, device)
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
        self.preprocess = Preprocessor(self.cfg, self.meta['img_size'])
        self.vocabulary = self.meta.get('texts')
        self.takes_texts = self.vocabulary is not None
        # what the samples carry: the vocabulary as the test pipeline's LoadText formats it
        prompt_format = text_prompt_format(self.cfg)
        self.prompts = [prompt_format.format(t) for t in self.vocabulary or []]
        classes = self.vocabulary or self.meta.get('classes') or []
        self.dataset_meta = dict(classes=list(classes))

    def raw(self, inputs: Tensor) -> list[Tensor]:
        """(1, 3, H, W) input -> the graph's outputs as tensors (batch dim removed
        without NMS: boxes (P, box_dim), scores (P, K); with NMS: dets, scores, labels)."""
        with_nms = bool(self.meta.get('with_nms'))
        outs = self.session.run(
            output_names(with_nms), {'images': inputs.cpu().numpy().astype(np.float32)}
        )
        return [torch.from_numpy(o if with_nms else o[0]) for o in outs]

    def _check_texts(self, sample) -> None:
        texts = sample.get('texts')
        if texts is not None and list(texts) not in (self.prompts, self.vocabulary):
            raise ValueError(
                f'{self.onnx_file} has its vocabulary baked in '
                f'({(self.vocabulary or [])[:5]}...); it cannot score other texts '
                f'({list(texts)[:5]}...): export again with them'
            )

    def predict_one(self, inputs: Tensor, img_meta: dict) -> InstanceData:
        """One (1, 3, H, W) export-size input -> detections in original-image pixels."""
        if self.meta.get('with_nms'):
            dets, scores, labels = self.raw(inputs)
            results = InstanceData(bboxes=self.box_type(dets), scores=scores, labels=labels)
            return self.head.finish_detections(
                results, self.head.test_cfg, img_meta, rescale=True, with_nms=False
            )
        boxes, scores = self.raw(inputs)
        return self.head.postprocess_decoded(boxes, scores, img_meta)

    def test_step(self, data: dict) -> list:
        """A batch from the test pipeline (``inputs``, ``data_samples``) -> the data samples
        with ``pred_instances``, as a model's ``test_step``."""
        inputs, samples = self.preprocess.batch(data)
        for i, sample in enumerate(samples):
            if self.takes_texts:
                self._check_texts(sample)
            sample.pred_instances = self.predict_one(inputs[i : i + 1], sample.metainfo)
        return samples
