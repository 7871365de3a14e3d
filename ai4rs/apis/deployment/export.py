"""The export wrapper: a detector as a graph ``images -> decoded outputs`` and its ONNX file.

The exported graph takes one preprocessed image and returns decoded, not yet filtered
detections of every prior, through the model's public contract only
(``forward(mode='tensor')`` then ``bbox_head.decode_by_feat``):

- input ``images``: (1, 3, H, W) float32, the data preprocessor's output (colour order,
  normalisation and padding of the config) at the fixed export size (H, W);
- output ``boxes``: (1, P, box_dim) boxes of the model's ``box_type`` in the network
  input's pixels: x1, y1, x2, y2 for horizontal boxes (YOLO-World), cx, cy, w, h, angle
  for rotated boxes (rotated YOLOX, the head's angle version);
- output ``scores``: (1, P, K): the head's final scores (YOLO-World: one column per
  baked-in text; rotated YOLOX: sigmoid class score times sigmoid objectness).

The head's ``postprocess_decoded`` then does, after the graph, what its ``predict_by_feat``
does after decoding (score threshold, ``nms_pre``, class-aware NMS, ``max_per_img``,
letterbox/scale undone, clipping), so :class:`~.runtime.OnnxDetector` gives the boxes of
:func:`ai4rs.apis.inference_detector`. With ``with_nms=True`` (horizontal boxes only: ONNX
has no rotated NMS) the graph ends with :func:`~.nms.graph_nms` and returns ``dets`` (N, 4),
``scores`` (N,), ``labels`` (N,) best first in network-input pixels; only the
letterbox/scale is undone afterwards. It equals the PyTorch head as long as ``nms_pre``
does not cut the candidates (the graph has no ``nms_pre``) and up to the IoU change of a
non-uniform rescale (the head runs NMS after rescaling).

A run-time vocabulary (``text_input``, open-vocabulary models): the graph takes a second
input ``texts`` (K, D) float32, the text embeddings of any K prompts (dynamic K), instead of
a baked-in vocabulary; one file then serves every vocabulary.

What the runtime needs is stored in the ONNX file's metadata under the key ``ai4rs``
(JSON: ``box_type``, ``texts`` (open-vocabulary models with a baked-in vocabulary),
``text_input`` and ``text_dim`` (a run-time vocabulary) or ``classes``, ``img_size``,
``with_nms``, ``dynamic_batch`` (the graph takes (B, 3, H, W) for any B)).
"""

from __future__ import annotations

import json

import torch
from torch import Tensor, nn

from ai4rs.structures.bbox import get_box_type

from ..pipeline import test_pipeline_cfg
from .nms import graph_nms, graph_nms_supported

METADATA_KEY = 'ai4rs'


class DecodedDetector(nn.Module):
    """A detector whose forward is ``images (1, 3, H, W) -> (boxes, scores)``, or with
    ``with_nms`` ``-> (dets, scores, labels)`` (see the module docstring).

    With ``text_input`` (open-vocabulary models) the forward is ``(images, texts) -> ...``:
    ``texts`` (K, D) float32 text embeddings (the text model's output for K prompts, any
    K), L2-normalised in the graph (a no-op for the text model's own, already normalised,
    embeddings), take the place of the baked-in vocabulary; ``scores`` is then (1, P, K).

    Args:
        detector (nn.Module): an ai4rs detector; one that takes texts must have its
            vocabulary baked in (``reparameterize``) unless ``text_input``.
        with_nms (bool): end the graph with NMS (horizontal boxes only).
        text_input (bool): the text embeddings are a graph input.
    """

    def __init__(
        self, detector: nn.Module, with_nms: bool = False, text_input: bool = False
    ) -> None:
        super().__init__()
        if text_input and not detector.takes_texts:
            raise ValueError(
                f'DecodedDetector: text_input is for open-vocabulary models; '
                f'{type(detector).__name__} has fixed classes'
            )
        if detector.takes_texts and detector.vocabulary is None and not text_input:
            raise ValueError(
                f'DecodedDetector: {type(detector).__name__} takes texts: bake a vocabulary '
                'in first (model.reparameterize(texts)) or export the texts as an input'
            )
        self.text_input = text_input
        if with_nms and not graph_nms_supported(detector.box_type):
            raise NotImplementedError(
                f'NMS in the graph: ONNX has no NMS operator for {detector.box_type.__name__}; '
                'export without it (the head post-processes the outputs after the graph)'
            )
        self.detector = detector
        self.with_nms = with_nms

    def forward(self, images: Tensor, texts: Tensor | None = None) -> tuple[Tensor, ...]:
        head = self.detector.bbox_head
        if self.text_input:
            outs = self.detector.forward_with_text_feats(images, text_feats_input(texts))
        else:
            outs = self.detector(images, None, mode='tensor')
        boxes, scores = head.decode_by_feat(*outs)
        if self.with_nms:
            return graph_nms(boxes, scores, head.test_cfg)
        return boxes, scores


def text_feats_input(texts: Tensor) -> Tensor:
    """(K, D) text embeddings -> (1, K, D), L2-normalised along D."""
    texts = texts / texts.norm(p=2, dim=-1, keepdim=True)
    return texts.unsqueeze(0)


def default_img_size(config) -> tuple[int, int]:
    """(H, W) of the export: the ``scale`` (w, h) of the last resize in the test pipeline."""
    size = None
    for transform in test_pipeline_cfg(config, from_array=False):
        scale = transform.get('scale')
        if scale is not None:
            size = (scale, scale) if isinstance(scale, int) else tuple(scale)
    if size is None:
        raise ValueError('the test pipeline has no resize with a scale: give --img-size H W')
    return int(size[1]), int(size[0])


def export_metadata(
    model: nn.Module, img_size, with_nms: bool = False, text_dim: int | None = None
) -> dict:
    """What the runtime needs of an exported ``model`` (stored in the ONNX file).
    ``text_dim``: the width D of the text-embedding input (``text_input`` exports)."""
    box_name, _ = get_box_type(model.box_type)
    meta = dict(box_type=box_name, img_size=list(img_size), with_nms=with_nms)
    if text_dim is not None:
        meta['text_input'] = True
        meta['text_dim'] = int(text_dim)
    elif model.takes_texts:
        meta['texts'] = list(model.vocabulary)
    else:
        meta['classes'] = list((getattr(model, 'dataset_meta', None) or {}).get('classes', []))
    return meta


def output_names(with_nms: bool) -> list[str]:
    return ['dets', 'scores', 'labels'] if with_nms else ['boxes', 'scores']


def export_onnx(
    model: nn.Module,
    inputs: Tensor,
    out_file: str,
    opset: int = 17,
    with_nms: bool = False,
    texts: Tensor | None = None,
    dynamic_batch: bool = False,
) -> dict:
    """Write ``DecodedDetector(model, with_nms, text_input=texts is not None)`` traced on
    ``inputs`` (1, 3, H, W) (and ``texts`` (K, D): then the graph's second input
    ``texts`` has a dynamic K) to ``out_file``, with the ai4rs metadata. Returns the
    metadata.

    ``dynamic_batch`` (without NMS): the first axis of ``images``, ``boxes`` and ``scores``
    is dynamic (``batch``): one run takes B images of the export size."""
    import onnx

    if dynamic_batch and with_nms:
        raise ValueError('dynamic_batch: the graph NMS takes one image; export without NMS')

    text_input = texts is not None
    wrapper = DecodedDetector(model, with_nms=with_nms, text_input=text_input).eval()
    names = output_names(with_nms)
    dynamic = {n: {0: 'num_dets'} for n in names} if with_nms else {}
    if dynamic_batch:
        dynamic = {'images': {0: 'batch'}, 'boxes': {0: 'batch'}, 'scores': {0: 'batch'}}
    args, input_names = (inputs,), ['images']
    if text_input:
        args, input_names = (inputs, texts), ['images', 'texts']
        dynamic['texts'] = {0: 'num_texts'}
        if not with_nms:
            dynamic['scores'] = {**dynamic.get('scores', {}), 2: 'num_texts'}
    with torch.no_grad():
        torch.onnx.export(
            wrapper,
            args,
            out_file,
            input_names=input_names,
            output_names=names,
            opset_version=opset,
            dynamic_axes=dynamic or None,
            do_constant_folding=True,
            dynamo=False,
        )
    meta = export_metadata(
        model, inputs.shape[-2:], with_nms, text_dim=texts.shape[-1] if text_input else None
    )
    if dynamic_batch:
        meta['dynamic_batch'] = True
    proto = onnx.load(out_file)
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta)
    onnx.save(proto, out_file)
    return meta
