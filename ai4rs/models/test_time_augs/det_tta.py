"""Test-time augmentation: merge the detections of augmented views of one image (mmdet 3.x).

``tools/test.py --tta`` wraps the detector in the config's ``tta_model`` and feeds it the
``tta_pipeline``, whose ``TestTimeAug`` (``mmcv.transforms``) makes every combination of its
transforms, e.g. scales x flips, for every image. mmengine's ``BaseTTAModel.test_step`` runs
the detector on each view; :meth:`DetTTAModel.merge_preds` then merges the views per image.

What is left to undo: the detector's ``predict`` (``rescale=True``) already maps each view's
boxes to the original image: it subtracts the letterbox ``pad_param`` (top, bottom, left,
right) and divides by ``scale_factor`` (sx, sy). A flip is not undone there. The flip happened
in the view's network-input frame, after Resize / LetterResize and before any bottom-right
``Pad`` (the order of mmdet's and mmyolo's ``tta_pipeline``); in original-image pixels that
frame is the original image, shifted by the letterbox padding when it is uneven:
:func:`flip_frame_shape`. Flipping back about it (the box type's own ``flip_``) is exact for
every scale, and for rotated boxes under an anisotropic scale too (axis flips commute with
axis-aligned scaling).

The views' detections are then concatenated and merged by class-aware NMS: rotated NMS for
``RotatedBoxes``, horizontal NMS for ``HorizontalBoxes``, chosen by the boxes' class.
"""

from collections.abc import Sequence

import torch
from mmengine.model import BaseTTAModel
from mmengine.structures import InstanceData

from ai4rs.ops import batched_nms
from ai4rs.registry import MODELS
from ai4rs.structures.bbox import BaseBoxes, HorizontalBoxes, RotatedBoxes

#: the NMS op (``ai4rs.ops.batched_nms`` type) of each box type
NMS_TYPE_OF_BOX = {RotatedBoxes: 'nms_rotated', HorizontalBoxes: 'nms'}


def flip_frame_shape(img_meta: dict) -> tuple[float, float]:
    """The frame a view was flipped in, in original-image pixels: ``(h, w)``.

    The flip is taken to have been applied to the network input after the resize and the
    letterbox (``LetterResize``), before any bottom-right ``Pad``. A point ``x`` of that input
    is ``(x - left) / sx`` in the original image, so the flip ``x -> W_in - x`` is, there,
    the flip about a frame of width ``(W_in - 2 left) / sx = W + (right - left) / sx`` with
    ``W`` the original width (``W_in = W sx + left + right``); likewise for the height.
    Without ``pad_param`` the frame is the original image.

    Args:
        img_meta (dict): the view's metainfo: ``ori_shape`` (h, w); with a letterbox also
            ``pad_param`` (top, bottom, left, right) and ``scale_factor`` (sx, sy).

    Returns:
        tuple[float, float]: ``(h, w)`` to give the box type's ``flip_``.
    """
    if 'ori_shape' not in img_meta:
        raise KeyError(f"DetTTAModel: a view's metainfo has no 'ori_shape': {sorted(img_meta)}")
    h, w = (float(v) for v in img_meta['ori_shape'][:2])
    pad_param = img_meta.get('pad_param')
    if pad_param is None:
        return h, w
    top, bottom, left, right = (float(v) for v in pad_param)
    if 'scale_factor' not in img_meta:
        raise KeyError("DetTTAModel: a letterboxed view (pad_param) needs 'scale_factor'")
    sx, sy = (float(v) for v in img_meta['scale_factor'][:2])
    return h + (bottom - top) / sy, w + (right - left) / sx


def undo_view_flip(bboxes: BaseBoxes, img_meta: dict) -> BaseBoxes:
    """A view's boxes (original-image pixels, as the detector's ``predict`` gives them) with
    the view's flip undone; new boxes of the same type (the input is not modified).

    Args:
        bboxes (BaseBoxes): (N, box_dim) boxes, e.g. ``RotatedBoxes`` ``(cx, cy, w, h, t)``
            or ``HorizontalBoxes`` ``(x1, y1, x2, y2)``.
        img_meta (dict): the view's metainfo: ``flip`` (bool), ``flip_direction``
            ('horizontal', 'vertical', 'diagonal' or None) and what
            :func:`flip_frame_shape` reads.
    """
    if not isinstance(bboxes, BaseBoxes):
        raise TypeError(
            f'DetTTAModel: the predictions must be box objects (RotatedBoxes, '
            f'HorizontalBoxes, ...), got {type(bboxes).__name__}'
        )
    if 'flip' not in img_meta:
        raise KeyError(
            "DetTTAModel: a view's metainfo has no 'flip'; add 'flip' and 'flip_direction' "
            "to PackDetInputs' meta_keys in tta_pipeline"
        )
    out = bboxes.clone()
    if img_meta['flip']:
        out.flip_(flip_frame_shape(img_meta), img_meta['flip_direction'])
    return out


def nms_cfg_for(box_type: type, nms_cfg: dict) -> dict:
    """``nms_cfg`` with the op of ``box_type`` (:data:`NMS_TYPE_OF_BOX`); a ``type`` given
    in the config must be that op."""
    op = next((t for cls, t in NMS_TYPE_OF_BOX.items() if issubclass(box_type, cls)), None)
    if op is None:
        raise TypeError(
            f'DetTTAModel: no NMS for {box_type.__name__} predictions '
            f'(known: {", ".join(c.__name__ for c in NMS_TYPE_OF_BOX)})'
        )
    cfg = dict(nms_cfg)
    given = cfg.get('type', op)
    if given != op:
        raise ValueError(
            f'DetTTAModel: tta_cfg.nms type {given!r} does not fit {box_type.__name__} '
            f'predictions, which need {op!r}'
        )
    cfg['type'] = op
    return cfg


@MODELS.register_module()
class DetTTAModel(BaseTTAModel):
    """Merge the detections of the augmented views of each image (mmdet 3.x's ``DetTTAModel``).

    Each view's boxes are mapped back to the original image (:func:`undo_view_flip`; the
    detector has already undone the resize and the letterbox), concatenated with their
    scores and labels, and merged by class-aware NMS of the boxes' type (rotated NMS for
    ``RotatedBoxes``, horizontal NMS for ``HorizontalBoxes``); at most ``max_per_img``
    detections, best first, are kept. The merged result is set on the data sample of the
    first view that is not flipped (the first view when all are), whose metainfo and ground
    truth are returned; mmdet takes the first view.

    Args:
        module (dict | nn.Module): the detector.
        tta_cfg (dict): ``nms`` (``iou_threshold``, optional ``type``, which must fit the
            box type, and the other keys of :func:`ai4rs.ops.batched_nms`) and optional
            ``max_per_img``.
        data_preprocessor (dict | nn.Module, optional): replaces the detector's.
    """

    def __init__(self, module, tta_cfg: dict | None = None, data_preprocessor=None) -> None:
        super().__init__(module=module, data_preprocessor=data_preprocessor)
        if tta_cfg is None or tta_cfg.get('nms') is None:
            raise ValueError(
                f'{type(self).__name__}: tta_cfg must give nms, e.g. '
                'tta_cfg=dict(nms=dict(iou_threshold=0.65), max_per_img=300); '
                f'got {tta_cfg!r}'
            )
        self.tta_cfg = tta_cfg

    def merge_preds(self, data_samples_list: Sequence[Sequence]) -> list:
        """Per image, the list of its views' data samples (with ``pred_instances``) -> one
        data sample with the merged ``pred_instances``."""
        return [self._merge_single_sample(views) for views in data_samples_list]

    def merge_aug_bboxes(
        self, aug_bboxes: Sequence[BaseBoxes], aug_scores: Sequence, img_metas: Sequence[dict]
    ):
        """The views' boxes mapped back to the original image and concatenated, with their
        concatenated scores: ``(BaseBoxes (N, box_dim), Tensor (N,))``."""
        types = {type(b) for b in aug_bboxes}
        if len(types) != 1:
            raise TypeError(
                f'{type(self).__name__}: the views predict different box types: '
                f'{sorted(t.__name__ for t in types)}'
            )
        recovered = [undo_view_flip(b, m) for b, m in zip(aug_bboxes, img_metas)]
        return types.pop().cat(recovered), torch.cat(list(aug_scores))

    def _merge_single_sample(self, data_samples: Sequence):
        metas = [s.metainfo for s in data_samples]
        _check_same_image(metas)
        preds = [s.pred_instances for s in data_samples]
        bboxes, scores = self.merge_aug_bboxes(
            [p.bboxes for p in preds], [p.scores for p in preds], metas
        )
        labels = torch.cat([p.labels for p in preds])
        nms_cfg = nms_cfg_for(type(bboxes), self.tta_cfg['nms'])
        _, keep = batched_nms(bboxes.tensor, scores, labels, nms_cfg)
        max_per_img = self.tta_cfg.get('max_per_img')
        if max_per_img is not None:
            keep = keep[:max_per_img]
        results = InstanceData()
        results.bboxes = bboxes[keep]
        results.scores = scores[keep]
        results.labels = labels[keep]
        merged = next((s for s in data_samples if not s.metainfo['flip']), data_samples[0])
        merged.pred_instances = results
        return merged


@MODELS.register_module()
class RotatedTTAModel(DetTTAModel):
    """mmrotate 1.x's name for the TTA model of rotated detectors: :class:`DetTTAModel`,
    which already picks rotated NMS and the rotated flip from the ``RotatedBoxes``
    predictions."""


def _check_same_image(metas: Sequence[dict]) -> None:
    """The views of one image share its ``ori_shape``, ``img_id`` and texts (YOLO-World:
    labels index the texts, so views with other texts cannot be merged)."""
    for key in ('img_id', 'img_path', 'ori_shape', 'texts'):
        values = [m.get(key) for m in metas]
        if any(_as_comparable(v) != _as_comparable(values[0]) for v in values[1:]):
            raise ValueError(f'DetTTAModel: the views of one image differ in {key!r}: {values}')


def _as_comparable(value):
    if isinstance(value, (list, tuple)):
        return tuple(_as_comparable(v) for v in value)
    return value
