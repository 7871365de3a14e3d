"""ONNX export of a detector and inference with the exported file (onnxruntime).

The exported graph takes one preprocessed image and returns decoded, not yet
filtered detections of every prior:

- input ``images``: (1, 3, H, W) float32, the data preprocessor's output
  (colour order, normalisation and padding of the config) at the fixed export
  size (H, W);
- output ``boxes``: (1, P, 4) x1, y1, x2, y2 (YOLO-World) or (1, P, 5) cx, cy,
  w, h, angle (rotated YOLOX, the head's angle version), in the network input's
  pixels;
- output ``scores``: (1, P, K): sigmoid class scores (YOLO-World: one column
  per baked-in text), times the sigmoid objectness for rotated YOLOX.

:func:`postprocess_decoded` then does what the head's ``predict_by_feat`` does
after decoding (score threshold, ``nms_pre``, class-aware NMS, ``max_per_img``,
letterbox/scale undone, clipping), with the head's own code, so
:class:`OnnxDetector` gives the boxes of :func:`inference_detector`.
ONNX has no rotated NMS operator, and YOLO-World's multi-label top-k +
class-aware NMS would need several ONNX ops whose semantics differ from
ai4rs' (``score > thr`` and tie order), so NMS stays out of the graph.

The vocabulary and everything :class:`OnnxDetector` needs are stored in the
ONNX file's metadata under the key ``ai4rs`` (JSON: ``family``, ``texts`` or
``classes``, ``img_size``).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.dataset import Compose
from mmengine.structures import InstanceData
from torch import Tensor, nn

from ai4rs.registry import MODELS

from .inference import _load_config, _test_pipeline_cfg, is_open_vocabulary

METADATA_KEY = 'ai4rs'
YOLO_WORLD, ROTATED_YOLOX = 'yolo_world', 'rotated_yolox'


def model_family(model) -> str:
    """``'yolo_world'`` or ``'rotated_yolox'``; a clear error for other detectors."""
    if is_open_vocabulary(model):
        return YOLO_WORLD
    head = getattr(model, 'bbox_head', None)
    if head is not None and hasattr(head, '_bbox_decode') and hasattr(head, 'angle_coder'):
        return ROTATED_YOLOX
    raise NotImplementedError(f'ONNX export supports YOLO-World and rotated YOLOX detectors, '
                              f'not {type(model).__name__} with {type(head).__name__}')


class DecodedDetector(nn.Module):
    """A detector whose forward is ``images (1, 3, H, W) -> (boxes, scores)`` (see the
    module docstring); a YOLO-World detector must have been reparameterized."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.family = model_family(detector)
        if self.family == YOLO_WORLD and not detector.is_reparameterized:
            raise ValueError('DecodedDetector: reparameterize the YOLO-World detector with a '
                             'vocabulary first (model.reparameterize(texts))')
        self.detector = detector

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        head = self.detector.bbox_head
        if self.family == YOLO_WORLD:
            cls_scores, bbox_preds = self.detector._forward(images, None)[:2]
            num_classes = cls_scores[0].size(1)
            priors = head.flat_priors(cls_scores, with_stride=True)
            scores = head.flatten_levels(cls_scores, num_classes).sigmoid()
            dists = head.flatten_levels(bbox_preds, 4)
            boxes = head.bbox_coder.decode(priors[None, :, :2], dists, priors[:, 2])
            return boxes, scores
        cls_scores, bbox_preds, angle_preds, objectnesses = self.detector._forward(images)
        priors = head.flat_priors(cls_scores)
        cls = head.flatten_levels(cls_scores, head.cls_out_channels).sigmoid()
        obj = head.flatten_levels(objectnesses, 1).sigmoid()
        boxes = head._bbox_decode(priors, head.flatten_levels(bbox_preds, 4),
                                  head.flatten_levels(angle_preds,
                                                      head.angle_coder.encode_size))
        return boxes, cls * obj


def postprocess_decoded(family: str, head: nn.Module, boxes: Tensor, scores: Tensor,
                        img_meta: dict, cfg: dict) -> InstanceData:
    """One image's detections from decoded outputs, as the head's ``predict_by_feat``.

    Args:
        family (str): ``'yolo_world'`` or ``'rotated_yolox'``.
        head (nn.Module): the model's bbox head (its ``_bbox_post_process`` is used).
        boxes (Tensor): (P, 4) xyxy or (P, 5) rboxes in network-input pixels.
        scores (Tensor): (P, K) scores.
        img_meta (dict): ``ori_shape``, ``scale_factor``, optional ``pad_param``.
        cfg (dict): the model's ``test_cfg``.

    Returns:
        InstanceData: ``bboxes`` (box objects in original-image pixels), ``scores``,
        ``labels``, best first.
    """
    from ai4rs.models.utils import filter_scores_and_topk
    from ai4rs.structures.bbox import HorizontalBoxes, RotatedBoxes
    if family == YOLO_WORLD:
        score_thr = cfg.get('score_thr', -1)
        nms_pre = cfg.get('nms_pre', 100000)
        if cfg.get('multi_label', False) and scores.size(1) > 1:
            scores, labels, keep, _ = filter_scores_and_topk(scores, score_thr, nms_pre)
        else:
            scores, labels = scores.max(1, keepdim=True)
            scores, _, keep, kept = filter_scores_and_topk(scores, score_thr, nms_pre,
                                                           results=dict(labels=labels[:, 0]))
            labels = kept['labels']
        results = InstanceData(scores=scores, labels=labels,
                               bboxes=HorizontalBoxes(boxes[keep]))
        results = head._bbox_post_process(results, cfg, rescale=True, with_nms=True,
                                          img_meta=img_meta)
        results.bboxes.clip_(img_meta['ori_shape'][:2])
        return results
    max_scores, labels = scores.max(1)
    valid = max_scores >= cfg.get('score_thr', 0.0)
    results = InstanceData(bboxes=RotatedBoxes(boxes[valid]), scores=max_scores[valid],
                           labels=labels[valid])
    return head._bbox_post_process(results, cfg, rescale=True, with_nms=True, img_meta=img_meta)


def default_img_size(config) -> tuple[int, int]:
    """(H, W) of the export: the ``scale`` (w, h) of the last resize in the test pipeline."""
    size = None
    for transform in _test_pipeline_cfg(config, from_array=False):
        scale = transform.get('scale')
        if scale is not None:
            size = (scale, scale) if isinstance(scale, int) else tuple(scale)
    if size is None:
        raise ValueError('the test pipeline has no resize with a scale: give --img-size H W')
    return int(size[1]), int(size[0])


class Preprocessor:
    """Image (file or BGR array) -> (1, 3, H, W) network input padded to ``img_size``
    (bottom/right, the data preprocessor's ``pad_value``) and its data sample, with
    the config's test pipeline (no annotations, no texts) and data preprocessor."""

    def __init__(self, config, img_size: tuple[int, int]) -> None:
        self.config = config
        self.img_size = tuple(img_size)
        self.data_preprocessor = MODELS.build(config.model.data_preprocessor).eval()
        self.pad_value = float(getattr(self.data_preprocessor, 'pad_value', 0))
        self.pipelines = {}

    def _pipeline(self, from_array: bool) -> Compose:
        if from_array not in self.pipelines:
            steps = [t for t in _test_pipeline_cfg(self.config, from_array)
                     if t['type'] != 'LoadText']
            if 'meta_keys' in steps[-1]:  # the texts are baked in: none to pack
                steps[-1]['meta_keys'] = tuple(k for k in steps[-1]['meta_keys']
                                               if k != 'texts')
            self.pipelines[from_array] = Compose(steps)
        return self.pipelines[from_array]

    def __call__(self, img) -> tuple[Tensor, object]:
        if isinstance(img, np.ndarray):
            data = dict(img=img, img_id=0)
        else:
            if not Path(img).is_file():
                raise FileNotFoundError(f'image {img} does not exist')
            data = dict(img_path=str(img), img_id=0)
        data = self._pipeline(isinstance(img, np.ndarray))(data)
        with torch.no_grad():
            out = self.data_preprocessor(dict(inputs=[data['inputs']],
                                              data_samples=[data['data_samples']]), False)
        inputs, sample = out['inputs'].float(), out['data_samples'][0]
        h, w = inputs.shape[-2:]
        height, width = self.img_size
        if h > height or w > width:
            raise ValueError(f'the preprocessed image is {h}x{w}, larger than the export size '
                             f'{height}x{width}: export with a matching --img-size')
        if (h, w) != (height, width):
            inputs = F.pad(inputs, (0, width - w, 0, height - h), value=self.pad_value)
        return inputs, sample


def export_metadata(family: str, model: nn.Module, img_size) -> dict:
    meta = dict(family=family, img_size=list(img_size))
    if family == YOLO_WORLD:
        meta['texts'] = list(model.texts[0])
    else:
        meta['classes'] = list((getattr(model, 'dataset_meta', None) or {}).get('classes', []))
    return meta


def export_onnx(model: nn.Module, inputs: Tensor, out_file: str, opset: int = 17) -> dict:
    """Write ``DecodedDetector(model)`` traced on ``inputs`` (1, 3, H, W) to ``out_file``,
    with the ai4rs metadata. Returns the metadata."""
    import onnx
    wrapper = DecodedDetector(model).eval()
    with torch.no_grad():
        torch.onnx.export(wrapper, (inputs,), out_file, input_names=['images'],
                          output_names=['boxes', 'scores'], opset_version=opset,
                          do_constant_folding=True, dynamo=False)
    meta = export_metadata(wrapper.family, model, inputs.shape[-2:])
    proto = onnx.load(out_file)
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta)
    onnx.save(proto, out_file)
    return meta


def import_onnxruntime():
    try:
        import onnxruntime
    except ImportError as err:
        raise ImportError('running an .onnx model needs onnxruntime: pip install onnxruntime '
                          '(see requirements/optional.txt)') from err
    return onnxruntime


def onnx_session(onnx_file: str, device: str = 'cpu'):
    ort = import_onnxruntime()
    if not Path(onnx_file).is_file():
        raise FileNotFoundError(f'ONNX file {onnx_file} does not exist')
    providers = ['CPUExecutionProvider']
    if device.startswith('cuda') and 'CUDAExecutionProvider' in ort.get_available_providers():
        providers.insert(0, 'CUDAExecutionProvider')
    return ort.InferenceSession(str(onnx_file), providers=providers)


class OnnxDetector:
    """An exported model run with onnxruntime, used like a checkpoint.

    Args:
        onnx_file (str): written by ``tools/deployment/export_onnx.py``.
        config (str | Config): the model's config (test pipeline, data
            preprocessor, head and ``test_cfg``; no CLIP is loaded).
        device (str): ``'cpu'`` or ``'cuda...'`` (CUDA provider if installed).

    Attributes:
        dataset_meta (dict): ``classes`` = the baked-in texts (YOLO-World) or the
            exported classes.
    """

    def __init__(self, onnx_file: str, config, device: str = 'cpu') -> None:
        from ai4rs.utils import register_all_modules
        register_all_modules()
        self.session = onnx_session(onnx_file, device)
        raw = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        if raw is None:
            raise ValueError(f'{onnx_file}: no "{METADATA_KEY}" metadata; export it with '
                             'tools/deployment/export_onnx.py')
        self.meta = json.loads(raw)
        self.family = self.meta['family']
        self.cfg = _load_config(config)
        head_cfg = dict(self.cfg.model.bbox_head)
        head_cfg['test_cfg'] = self.cfg.model.test_cfg
        head_cfg.pop('train_cfg', None)
        self.head = MODELS.build(head_cfg)
        self.test_cfg = dict(self.cfg.model.test_cfg)
        self.preprocess = Preprocessor(self.cfg, self.meta['img_size'])
        classes = self.meta.get('texts') or self.meta.get('classes') or []
        self.texts = self.meta.get('texts')
        self.dataset_meta = dict(classes=list(classes))

    def raw(self, inputs: Tensor) -> tuple[Tensor, Tensor]:
        """(1, 3, H, W) input -> boxes (P, 4|5), scores (P, K) as tensors."""
        boxes, scores = self.session.run(['boxes', 'scores'],
                                         {'images': inputs.cpu().numpy().astype(np.float32)})
        return torch.from_numpy(boxes[0]), torch.from_numpy(scores[0])

    def __call__(self, img):
        """One image (file or BGR array) -> DetDataSample with ``pred_instances``."""
        inputs, sample = self.preprocess(img)
        boxes, scores = self.raw(inputs)
        sample.pred_instances = postprocess_decoded(self.family, self.head, boxes, scores,
                                                    sample.metainfo, self.test_cfg)
        if self.texts is not None:
            sample.set_metainfo(dict(texts=list(self.texts)))
        return sample
