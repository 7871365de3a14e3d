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
With ``with_nms=True`` (YOLO-World only: ONNX has no rotated NMS) the graph ends
with ONNX ``NonMaxSuppression`` (class-aware, ``score > score_thr``, IoU from the
config's ``test_cfg.nms``) and a sort, and returns ``dets`` (N, 4), ``scores`` (N,),
``labels`` (N,) best first (at most ``max_per_img``) in network-input pixels; only the
letterbox/scale is undone afterwards. It equals the PyTorch head as long as
``nms_pre`` does not cut the candidates (the graph has no ``nms_pre``) and up to the
IoU change of a non-uniform rescale (the head runs NMS after rescaling).

The vocabulary and everything :class:`OnnxDetector` needs are stored in the
ONNX file's metadata under the key ``ai4rs`` (JSON: ``family``, ``texts`` or
``classes``, ``img_size``, ``with_nms``).
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
    raise NotImplementedError(
        f'ONNX export supports YOLO-World and rotated YOLOX detectors, '
        f'not {type(model).__name__} with {type(head).__name__}'
    )


class MultiClassNMS(torch.autograd.Function):
    """ONNX ``NonMaxSuppression`` with an equal PyTorch forward (for tracing).

    ``boxes`` (1, P, 4) x1, y1, x2, y2 and ``scores`` (1, K, P) -> (M, 3) int64 rows
    (batch, class, box): per class, the boxes with score > ``score_thr`` kept by NMS
    (suppressed when IoU > ``iou_thr``), best first, at most ``max_per_class``.
    """

    @staticmethod
    def forward(
        ctx, boxes: Tensor, scores: Tensor, max_per_class: int, iou_thr: float, score_thr: float
    ) -> Tensor:
        from ai4rs.ops import nms

        rows = []
        for k in range(scores.size(1)):
            valid = (scores[0, k] > score_thr).nonzero()[:, 0]
            _, keep = nms(boxes[0, valid], scores[0, k, valid], iou_thr, max_num=max_per_class)
            inds = valid[keep]
            rows.append(torch.stack([torch.zeros_like(inds), torch.full_like(inds, k), inds], 1))
        return torch.cat(rows) if rows else boxes.new_zeros((0, 3), dtype=torch.long)

    @staticmethod
    def symbolic(g, boxes, scores, max_per_class, iou_thr, score_thr):
        def const(value, dtype):
            return g.op('Constant', value_t=torch.tensor([value], dtype=dtype))

        return g.op(
            'NonMaxSuppression',
            boxes,
            scores,
            const(max_per_class, torch.long),
            const(iou_thr, torch.float32),
            const(score_thr, torch.float32),
        )


class DecodedDetector(nn.Module):
    """A detector whose forward is ``images (1, 3, H, W) -> (boxes, scores)``, or with
    ``with_nms`` ``-> (dets, scores, labels)`` (see the module docstring); a YOLO-World
    detector must have been reparameterized."""

    def __init__(self, detector: nn.Module, with_nms: bool = False) -> None:
        super().__init__()
        self.family = model_family(detector)
        if self.family == YOLO_WORLD and not detector.is_reparameterized:
            raise ValueError(
                'DecodedDetector: reparameterize the YOLO-World detector with a '
                'vocabulary first (model.reparameterize(texts))'
            )
        if with_nms and self.family != YOLO_WORLD:
            raise NotImplementedError(
                'NMS in the graph: ONNX has no rotated NMS operator; '
                'export without it and run postprocess_decoded'
            )
        self.detector = detector
        self.with_nms = with_nms

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        head = self.detector.bbox_head
        if self.family == YOLO_WORLD:
            cls_scores, bbox_preds = self.detector._forward(images, None)[:2]
            num_classes = cls_scores[0].size(1)
            priors = head.flat_priors(cls_scores, with_stride=True)
            scores = head.flatten_levels(cls_scores, num_classes).sigmoid()
            dists = head.flatten_levels(bbox_preds, 4)
            boxes = head.bbox_coder.decode(priors[None, :, :2], dists, priors[:, 2])
            if self.with_nms:
                return self.nms(boxes, scores, head.test_cfg)
            return boxes, scores
        cls_scores, bbox_preds, angle_preds, objectnesses = self.detector._forward(images)
        priors = head.flat_priors(cls_scores)
        cls = head.flatten_levels(cls_scores, head.cls_out_channels).sigmoid()
        obj = head.flatten_levels(objectnesses, 1).sigmoid()
        boxes = head._bbox_decode(
            priors,
            head.flatten_levels(bbox_preds, 4),
            head.flatten_levels(angle_preds, head.angle_coder.encode_size),
        )
        return boxes, cls * obj

    @staticmethod
    def nms(boxes: Tensor, scores: Tensor, cfg: dict) -> tuple[Tensor, Tensor, Tensor]:
        """(1, P, 4), (1, P, K) -> ``dets`` (N, 4), ``scores`` (N,), ``labels`` (N,)."""
        max_per_img = int(cfg.get('max_per_img') or 10000)
        iou_thr = float(cfg['nms'].get('iou_threshold', 0.7))
        score_thr = float(cfg.get('score_thr', 0.0))
        if cfg.get('multi_label', False) and scores.size(-1) > 1:
            sel = MultiClassNMS.apply(
                boxes, scores.transpose(1, 2), max_per_img, iou_thr, score_thr
            )
            labels, inds = sel[:, 1], sel[:, 2]
            det_scores = scores[0, inds, labels]
        else:  # one label per prior: class-aware NMS by offsetting each class's boxes
            best, best_labels = scores[0].max(-1)
            offsets = best_labels[:, None].to(boxes.dtype) * (boxes.max() + 1)
            sel = MultiClassNMS.apply(
                boxes + offsets[None], best[None, None], max_per_img, iou_thr, score_thr
            )
            inds = sel[:, 2]
            labels, det_scores = best_labels[inds], best[inds]
        order = det_scores.argsort(descending=True)[:max_per_img]
        return boxes[0, inds[order]], det_scores[order], labels[order]


def postprocess_decoded(
    family: str, head: nn.Module, boxes: Tensor, scores: Tensor, img_meta: dict, cfg: dict
) -> InstanceData:
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
            scores, _, keep, kept = filter_scores_and_topk(
                scores, score_thr, nms_pre, results=dict(labels=labels[:, 0])
            )
            labels = kept['labels']
        results = InstanceData(scores=scores, labels=labels, bboxes=HorizontalBoxes(boxes[keep]))
        results = head._bbox_post_process(
            results, cfg, rescale=True, with_nms=True, img_meta=img_meta
        )
        results.bboxes.clip_(img_meta['ori_shape'][:2])
        return results
    max_scores, labels = scores.max(1)
    valid = max_scores >= cfg.get('score_thr', 0.0)
    results = InstanceData(
        bboxes=RotatedBoxes(boxes[valid]), scores=max_scores[valid], labels=labels[valid]
    )
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
            steps = [
                t for t in _test_pipeline_cfg(self.config, from_array) if t['type'] != 'LoadText'
            ]
            if 'meta_keys' in steps[-1]:  # the texts are baked in: none to pack
                steps[-1]['meta_keys'] = tuple(k for k in steps[-1]['meta_keys'] if k != 'texts')
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
            out = self.data_preprocessor(
                dict(inputs=[data['inputs']], data_samples=[data['data_samples']]), False
            )
        inputs, sample = out['inputs'].float(), out['data_samples'][0]
        h, w = inputs.shape[-2:]
        height, width = self.img_size
        if h > height or w > width:
            raise ValueError(
                f'the preprocessed image is {h}x{w}, larger than the export size '
                f'{height}x{width}: export with a matching --img-size'
            )
        if (h, w) != (height, width):
            inputs = F.pad(inputs, (0, width - w, 0, height - h), value=self.pad_value)
        return inputs, sample


def export_metadata(family: str, model: nn.Module, img_size, with_nms: bool = False) -> dict:
    meta = dict(family=family, img_size=list(img_size), with_nms=with_nms)
    if family == YOLO_WORLD:
        meta['texts'] = list(model.texts[0])
    else:
        meta['classes'] = list((getattr(model, 'dataset_meta', None) or {}).get('classes', []))
    return meta


def output_names(with_nms: bool) -> list[str]:
    return ['dets', 'scores', 'labels'] if with_nms else ['boxes', 'scores']


def export_onnx(
    model: nn.Module, inputs: Tensor, out_file: str, opset: int = 17, with_nms: bool = False
) -> dict:
    """Write ``DecodedDetector(model, with_nms)`` traced on ``inputs`` (1, 3, H, W) to
    ``out_file``, with the ai4rs metadata. Returns the metadata."""
    import onnx

    wrapper = DecodedDetector(model, with_nms=with_nms).eval()
    names = output_names(with_nms)
    dynamic = {n: {0: 'num_dets'} for n in names} if with_nms else None
    with torch.no_grad():
        torch.onnx.export(
            wrapper,
            (inputs,),
            out_file,
            input_names=['images'],
            output_names=names,
            opset_version=opset,
            dynamic_axes=dynamic,
            do_constant_folding=True,
            dynamo=False,
        )
    meta = export_metadata(wrapper.family, model, inputs.shape[-2:], with_nms)
    proto = onnx.load(out_file)
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta)
    onnx.save(proto, out_file)
    return meta


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
            raise ValueError(
                f'{onnx_file}: no "{METADATA_KEY}" metadata; export it with '
                'tools/deployment/export_onnx.py'
            )
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

    def raw(self, inputs: Tensor) -> list[Tensor]:
        """(1, 3, H, W) input -> the graph's outputs as tensors (batch dim removed
        without NMS: boxes (P, 4|5), scores (P, K); with NMS: dets, scores, labels)."""
        with_nms = bool(self.meta.get('with_nms'))
        outs = self.session.run(
            output_names(with_nms), {'images': inputs.cpu().numpy().astype(np.float32)}
        )
        return [torch.from_numpy(o if with_nms else o[0]) for o in outs]

    def __call__(self, img):
        """One image (file or BGR array) -> DetDataSample with ``pred_instances``."""
        inputs, sample = self.preprocess(img)
        if self.meta.get('with_nms'):
            from ai4rs.structures.bbox import HorizontalBoxes

            dets, scores, labels = self.raw(inputs)
            results = InstanceData(bboxes=HorizontalBoxes(dets), scores=scores, labels=labels)
            results = self.head._bbox_post_process(
                results, self.test_cfg, rescale=True, with_nms=False, img_meta=sample.metainfo
            )
            results.bboxes.clip_(sample.metainfo['ori_shape'][:2])
            sample.pred_instances = results
        else:
            boxes, scores = self.raw(inputs)
            sample.pred_instances = postprocess_decoded(
                self.family, self.head, boxes, scores, sample.metainfo, self.test_cfg
            )
        if self.texts is not None:
            sample.set_metainfo(dict(texts=list(self.texts)))
        return sample
