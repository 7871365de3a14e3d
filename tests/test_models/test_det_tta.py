"""DetTTAModel: each view's detections mapped back to the original image, then merged.

The expectations are hand-computed: a box of the original image and the same object as a
flipped / rescaled / letterboxed view's detector gives it (the detector's own rescale, the
head's ``_bbox_post_process``, maps input pixels to the original image; the flip is left).
"""

import copy
import os.path as osp

import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

from ai4rs.models.test_time_augs import (
    DetTTAModel,
    RotatedTTAModel,
    flip_frame_shape,
    undo_view_flip,
)
from ai4rs.ops import nms_rotated
from ai4rs.registry import MODELS
from ai4rs.structures import DetDataSample
from ai4rs.structures.bbox import HorizontalBoxes, RotatedBoxes
from tests.conftest import REPO_ROOT

ORI = (100, 200)  # (h, w) of the original image
RBOX = [30.0, 40.0, 20.0, 10.0, 0.3]  # (cx, cy, w, h, t) in the original image
HBOX = [10.0, 20.0, 50.0, 60.0]  # (x1, y1, x2, y2) in the original image
# the same objects in the original image's frame after each flip (W = 200, H = 100)
RBOX_FLIPPED = {
    'horizontal': [170.0, 40.0, 20.0, 10.0, -0.3],
    'vertical': [30.0, 60.0, 20.0, 10.0, -0.3],
    'diagonal': [170.0, 60.0, 20.0, 10.0, 0.3],
}
HBOX_FLIPPED = {
    'horizontal': [150.0, 20.0, 190.0, 60.0],
    'vertical': [10.0, 40.0, 50.0, 80.0],
    'diagonal': [150.0, 40.0, 190.0, 80.0],
}
RNMS = dict(type='nms_rotated', iou_threshold=0.1)
HNMS = dict(type='nms', iou_threshold=0.65)


def _view(boxes, scores, labels, **meta) -> DetDataSample:
    """One view's data sample with its predictions (boxes in original-image pixels)."""
    metainfo = dict(img_id=7, img_path='a.png', ori_shape=ORI, flip=False, flip_direction=None)
    metainfo.update(meta)
    sample = DetDataSample(metainfo=metainfo)
    sample.pred_instances = InstanceData(
        bboxes=boxes, scores=torch.tensor(scores), labels=torch.tensor(labels)
    )
    return sample


@pytest.fixture
def tta(tiny_yolox):
    def make(nms=RNMS, max_per_img=None, cls=DetTTAModel):
        return cls(module=tiny_yolox, tta_cfg=dict(nms=nms, max_per_img=max_per_img))

    return make


def test_flip_frame_shape_hand_computed():
    assert flip_frame_shape(dict(ori_shape=ORI)) == (100.0, 200.0)
    # letterbox: top 3, bottom 5, left 10, right 14 at scale (0.5, 0.25):
    # h + (5 - 3) / 0.25 = 108, w + (14 - 10) / 0.5 = 208
    meta = dict(ori_shape=ORI, pad_param=[3, 5, 10, 14], scale_factor=(0.5, 0.25))
    assert flip_frame_shape(meta) == (108.0, 208.0)


@pytest.mark.parametrize('direction', ['horizontal', 'vertical', 'diagonal'])
def test_flipped_view_of_rotated_boxes_maps_back_and_collapses(tta, direction):
    plain = _view(RotatedBoxes([RBOX]), [0.8], [2])
    flipped = _view(
        RotatedBoxes([RBOX_FLIPPED[direction]]),
        [0.9],
        [2],
        flip=True,
        flip_direction=direction,
    )
    (merged,) = tta().merge_preds([[flipped, plain]])
    pred = merged.pred_instances
    assert isinstance(pred.bboxes, RotatedBoxes)
    # one box, the flipped view's (higher score), back in the original frame
    torch.testing.assert_close(pred.bboxes.tensor, torch.tensor([RBOX]))
    torch.testing.assert_close(pred.scores, torch.tensor([0.9]))
    assert pred.labels.tolist() == [2]
    # the merged sample is the unflipped view's
    assert merged is plain and merged.metainfo['flip'] is False


@pytest.mark.parametrize('direction', ['horizontal', 'vertical', 'diagonal'])
def test_flipped_view_of_horizontal_boxes_maps_back_and_collapses(tta, direction):
    plain = _view(HorizontalBoxes([HBOX]), [0.8], [1])
    flipped = _view(
        HorizontalBoxes([HBOX_FLIPPED[direction]]),
        [0.9],
        [1],
        flip=True,
        flip_direction=direction,
    )
    (merged,) = tta(nms=HNMS).merge_preds([[plain, flipped]])
    pred = merged.pred_instances
    assert isinstance(pred.bboxes, HorizontalBoxes)
    torch.testing.assert_close(pred.bboxes.tensor, torch.tensor([HBOX]))
    torch.testing.assert_close(pred.scores, torch.tensor([0.9]))


def test_without_undoing_the_flip_the_views_would_not_collapse(tta):
    # the check above is not vacuous: the flipped view's box, left as it is, is another box
    plain = _view(RotatedBoxes([RBOX]), [0.8], [2])
    kept_flipped = _view(RotatedBoxes([RBOX_FLIPPED['horizontal']]), [0.9], [2])
    (merged,) = tta().merge_preds([[plain, kept_flipped]])
    assert len(merged.pred_instances) == 2


def test_duplicates_collapse_to_the_higher_score_class_by_class(tta):
    a = _view(HorizontalBoxes([HBOX, [100.0, 10.0, 140.0, 50.0]]), [0.6, 0.5], [0, 0])
    b = _view(HorizontalBoxes([HBOX, HBOX]), [0.9, 0.7], [0, 3])
    (merged,) = tta(nms=HNMS).merge_preds([[a, b]])
    pred = merged.pred_instances
    # HBOX of class 0 twice -> once with 0.9; HBOX of class 3 is another class: kept
    assert pred.scores.tolist() == pytest.approx([0.9, 0.7, 0.5])
    assert pred.labels.tolist() == [0, 3, 0]
    torch.testing.assert_close(
        pred.bboxes.tensor, torch.tensor([HBOX, HBOX, [100.0, 10.0, 140.0, 50.0]])
    )
    # max_per_img keeps the best
    (capped,) = tta(nms=HNMS, max_per_img=2).merge_preds([[copy.deepcopy(a), copy.deepcopy(b)]])
    assert capped.pred_instances.scores.tolist() == pytest.approx([0.9, 0.7])


def _detector_output(head, boxes, meta):
    """What the detector's predict gives for input-frame ``boxes`` of a view: its rescale
    (letterbox padding, then ``scale_factor``), without NMS."""
    results = InstanceData(bboxes=boxes, scores=torch.tensor([0.9]), labels=torch.tensor([2]))
    return head._bbox_post_process(results, {}, rescale=True, with_nms=False, img_meta=meta)


def test_a_flipped_view_at_twice_the_scale_maps_back(tta, tiny_yolox):
    # the view: the image at 2x (400 x 200), then flipped horizontally in that frame
    meta = dict(
        ori_shape=ORI,
        img_shape=(200, 400),
        scale_factor=(2.0, 2.0),
        flip=True,
        flip_direction='horizontal',
    )
    # RBOX at 2x: (60, 80, 40, 20, 0.3); flipped in the 400-px frame: cx 400 - 60 = 340
    in_view = RotatedBoxes([[340.0, 80.0, 40.0, 20.0, -0.3]])
    out = _detector_output(tiny_yolox.bbox_head, in_view, meta)
    plain = _view(RotatedBoxes([RBOX]), [0.8], [2])
    flipped = _view(out.bboxes, [0.9], [2], **meta)
    (merged,) = tta().merge_preds([[plain, flipped]])
    # flipped back about the original 200-px image (about the 400-px view it would be 230)
    torch.testing.assert_close(merged.pred_instances.bboxes.tensor, torch.tensor([RBOX]))
    torch.testing.assert_close(merged.pred_instances.scores, torch.tensor([0.9]))


def test_a_flipped_letterboxed_view_with_uneven_padding_maps_back_exactly(tta, tiny_yolox):
    # the view: 0.5x (100 x 50) letterboxed into 128 x 64: top 7, bottom 7, left 13, right 15;
    # then flipped horizontally in the 128-px frame
    meta = dict(
        ori_shape=ORI,
        img_shape=(64, 128),
        scale_factor=(0.5, 0.5),
        pad_param=[7.0, 7.0, 13.0, 15.0],
        flip=True,
        flip_direction='horizontal',
    )
    # HBOX at 0.5x, shifted by (13, 7): (18, 17, 38, 37); flipped: (128 - 38, 17, 128 - 18, 37)
    in_view = HorizontalBoxes([[90.0, 17.0, 110.0, 37.0]])
    out = _detector_output(tiny_yolox.bbox_head, in_view, meta)
    plain = _view(HorizontalBoxes([HBOX]), [0.8], [2])
    flipped = _view(out.bboxes, [0.9], [2], **meta)
    (merged,) = tta(nms=HNMS).merge_preds([[plain, flipped]])
    # exact: flipping about the original 200-px image instead would give x1 = 6, x2 = 46
    torch.testing.assert_close(merged.pred_instances.bboxes.tensor, torch.tensor([HBOX]))
    torch.testing.assert_close(merged.pred_instances.scores, torch.tensor([0.9]))


def test_undo_view_flip_leaves_its_input_alone():
    boxes = RotatedBoxes([RBOX_FLIPPED['vertical']])
    back = undo_view_flip(boxes, dict(ori_shape=ORI, flip=True, flip_direction='vertical'))
    torch.testing.assert_close(back.tensor, torch.tensor([RBOX]))
    torch.testing.assert_close(boxes.tensor, torch.tensor([RBOX_FLIPPED['vertical']]))


def test_bad_input_is_named(tta, tiny_yolox):
    with pytest.raises(ValueError, match='tta_cfg must give nms'):
        DetTTAModel(module=tiny_yolox, tta_cfg=dict(max_per_img=10))
    # the NMS op follows the box type; a contradicting config is refused
    view = _view(RotatedBoxes([RBOX]), [0.8], [0])
    with pytest.raises(ValueError, match="'nms' does not fit RotatedBoxes.*'nms_rotated'"):
        tta(nms=HNMS).merge_preds([[view]])
    # plain tensors carry no box type
    view = _view(torch.tensor([HBOX]), [0.8], [0])
    with pytest.raises(TypeError, match='box objects'):
        tta(nms=HNMS).merge_preds([[view]])
    # a view without 'flip' in its metainfo: PackDetInputs' meta_keys lack it
    view = DetDataSample(metainfo=dict(img_id=7, ori_shape=ORI))
    view.pred_instances = InstanceData(
        bboxes=HorizontalBoxes([HBOX]), scores=torch.tensor([0.5]), labels=torch.tensor([0])
    )
    with pytest.raises(KeyError, match="'flip_direction' to PackDetInputs' meta_keys"):
        tta(nms=HNMS).merge_preds([[view]])
    # views with other texts: their labels index other vocabularies
    a = _view(HorizontalBoxes([HBOX]), [0.8], [0], texts=[['cat'], ['dog']])
    b = _view(HorizontalBoxes([HBOX]), [0.8], [0], texts=[['dog'], ['cat']])
    with pytest.raises(ValueError, match="differ in 'texts'"):
        tta(nms=HNMS).merge_preds([[a, b]])


def test_registered_under_upstream_names(tiny_yolox):
    tta_cfg = dict(nms=RNMS, max_per_img=5)
    assert type(MODELS.build(dict(type='DetTTAModel', module=tiny_yolox, tta_cfg=tta_cfg))) is (
        DetTTAModel
    )
    rotated = MODELS.build(dict(type='RotatedTTAModel', module=tiny_yolox, tta_cfg=tta_cfg))
    assert isinstance(rotated, RotatedTTAModel) and isinstance(rotated, DetTTAModel)


def _hand_unflip_rboxes(t: torch.Tensor, meta: dict) -> torch.Tensor:
    """Rotated boxes flipped back by hand about the original image (no letterbox here)."""
    t = t.clone()
    h, w = meta['ori_shape']
    direction = meta['flip_direction'] if meta['flip'] else None
    if direction in ('horizontal', 'diagonal'):
        t[:, 0] = w - t[:, 0]
    if direction in ('vertical', 'diagonal'):
        t[:, 1] = h - t[:, 1]
    if direction in ('horizontal', 'vertical'):
        t[:, 4] = -t[:, 4]
    return t


def test_real_model_tta_equals_a_hand_merge_of_its_views(tmp_path, tiny_yolox):
    from ai4rs.datasets import DOTADataset
    from ai4rs.datasets.preparation.synthetic_dota import generate_dataset
    from ai4rs.utils.config import load_config

    init_default_scope('ai4rs')
    generate_dataset(str(tmp_path), num_train=1, num_val=1, img_size=96)
    cfg = load_config(
        osp.join(REPO_ROOT, 'configs/rotated_yolox/rotated_yolox_quickstart_synthetic.py')
    )
    dataset = DOTADataset(
        data_root=str(tmp_path),
        ann_file='val/annfiles/',
        data_prefix=dict(img_path='val/images/'),
        metainfo=cfg.metainfo,
        pipeline=cfg.tta_pipeline,
    )
    data = pseudo_collate([dataset[0]])
    assert [s[0].metainfo['flip_direction'] for s in data['data_samples']] == [
        'horizontal',
        'vertical',
        None,
    ]
    model = tiny_yolox.eval()
    model.test_cfg = model.bbox_head.test_cfg = dict(score_thr=0.0, nms=RNMS)
    tta = DetTTAModel(module=model, tta_cfg=dict(nms=RNMS, max_per_img=20))
    with torch.no_grad():
        (merged,) = tta.test_step(copy.deepcopy(data))
        views = [
            model.test_step(dict(inputs=inputs, data_samples=samples))[0]
            for inputs, samples in zip(copy.deepcopy(data['inputs']), data['data_samples'])
        ]
    assert all(len(v.pred_instances) > 0 for v in views)
    boxes = torch.cat(
        [_hand_unflip_rboxes(v.pred_instances.bboxes.tensor, v.metainfo) for v in views]
    )
    scores = torch.cat([v.pred_instances.scores for v in views])
    labels = torch.cat([v.pred_instances.labels for v in views])
    _, keep = nms_rotated(boxes, scores, RNMS['iou_threshold'], labels=labels)
    keep = keep[:20]
    pred = merged.pred_instances
    torch.testing.assert_close(pred.bboxes.tensor, boxes[keep])
    torch.testing.assert_close(pred.scores, scores[keep])
    assert pred.labels.tolist() == labels[keep].tolist()
    # the views really differ (the flips change what the model sees)
    assert not torch.equal(
        views[0].pred_instances.bboxes.tensor, views[2].pred_instances.bboxes.tensor
    )


def test_views_without_detections_give_an_empty_result_of_the_box_type(tta):
    empty = [_view(RotatedBoxes(torch.zeros(0, 5)), [], []) for _ in range(2)]
    for view in empty:
        view.pred_instances.labels = view.pred_instances.labels.long()
    (merged,) = tta().merge_preds([empty])
    assert isinstance(merged.pred_instances.bboxes, RotatedBoxes)
    assert len(merged.pred_instances) == 0


def test_real_yolo_world_tta_equals_a_torchvision_merge_of_its_letterboxed_views(
    tmp_path, tiny_clip_dir
):
    """The YOLO-World v2 quick start's tta_pipeline (3 letterbox scales x 2 flips, texts in
    every view) on a 190 x 250 (w x h) image; the hand merge unflips each view about its letterboxed
    frame and merges with torchvision's class-aware NMS."""
    import cv2
    import numpy as np
    import torchvision
    from mmengine.dataset import Compose

    from ai4rs.utils.config import load_config
    from tests.yolo_world_builders import build_tiny_detector, calibrate_batchnorm

    init_default_scope('ai4rs')
    img = (np.random.default_rng(0).random((250, 190, 3)) * 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / 'a.png'), img)
    cfg = load_config(
        osp.join(REPO_ROOT, 'configs/yolo_world_v2/yolo_world_v2_quickstart_synthetic.py')
    )
    texts = [['cat'], ['dog'], ['bird']]
    item = Compose(cfg.tta_pipeline)(
        dict(img_path=str(tmp_path / 'a.png'), img_id=0, texts=texts, instances=[])
    )
    data = pseudo_collate([item])
    metas = [s[0].metainfo for s in data['data_samples']]
    assert len(metas) == 6 and all(m['texts'] == ['cat', 'dog', 'bird'] for m in metas)
    # uneven left / right padding in some view: its flip frame is not the original image
    assert any(m['pad_param'][2] != m['pad_param'][3] for m in metas)
    det = build_tiny_detector(tiny_clip_dir, score_thr=0.0, max_per_img=50)
    calibrate_batchnorm(det)
    nms = dict(type='nms', iou_threshold=0.65)
    tta = DetTTAModel(module=det, tta_cfg=dict(nms=nms, max_per_img=None))
    with torch.no_grad():
        (merged,) = tta.test_step(copy.deepcopy(data))
        views = [
            det.test_step(dict(inputs=inputs, data_samples=samples))[0]
            for inputs, samples in zip(copy.deepcopy(data['inputs']), data['data_samples'])
        ]
    boxes = []
    for view in views:
        meta, t = view.metainfo, view.pred_instances.bboxes.tensor.clone()
        assert len(t) > 0
        if meta['flip']:
            top, bottom, left, right = (float(v) for v in meta['pad_param'])
            w = meta['ori_shape'][1] + (right - left) / float(meta['scale_factor'][0])
            t[:, [0, 2]] = w - t[:, [2, 0]]
        boxes.append(t)
    boxes = torch.cat(boxes)
    scores = torch.cat([v.pred_instances.scores for v in views])
    labels = torch.cat([v.pred_instances.labels for v in views])
    keep = torchvision.ops.batched_nms(boxes, scores, labels, 0.65)
    # kept detections of a flipped view padded unevenly left / right: the exact frame matters
    view_of = torch.arange(len(views)).repeat_interleave(
        torch.tensor([len(v.pred_instances) for v in views])
    )
    uneven = [m['flip'] and m['pad_param'][2] != m['pad_param'][3] for m in metas]
    assert any(uneven[i] for i in view_of[keep].tolist())
    pred = merged.pred_instances
    assert isinstance(pred.bboxes, HorizontalBoxes)
    torch.testing.assert_close(pred.bboxes.tensor, boxes[keep])
    torch.testing.assert_close(pred.scores, scores[keep])
    assert pred.labels.tolist() == labels[keep].tolist()
