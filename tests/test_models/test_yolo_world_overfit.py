"""A tiny YOLO-World v2 learns one image until every object is found (COCO AP50 = 1.0 by
pycocotools), then detects with the vocabulary reordered (labels follow the texts) and with
unseen words added; reparameterized inference gives the same detections."""

import cv2
import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from ai4rs.registry import MODELS
from ai4rs.structures import DetDataSample

pytest.importorskip('transformers')

SIZE = 128
CLASSES = ['red square', 'blue circle', 'green triangle']
# (class index, x1, y1, x2, y2)
OBJECTS = [(0, 10, 12, 50, 52), (1, 70, 20, 114, 64), (2, 30, 74, 90, 120), (1, 8, 80, 28, 100)]
COLOURS = {0: (40, 40, 220), 1: (220, 60, 40), 2: (40, 200, 60)}  # BGR


def _image() -> np.ndarray:
    img = np.full((SIZE, SIZE, 3), 128, np.uint8)
    for c, x1, y1, x2, y2 in OBJECTS:
        if c == 0:
            cv2.rectangle(img, (x1, y1), (x2 - 1, y2 - 1), COLOURS[c], -1)
        elif c == 1:
            cv2.ellipse(
                img,
                ((x1 + x2) // 2, (y1 + y2) // 2),
                ((x2 - x1) // 2, (y2 - y1) // 2),
                0,
                0,
                360,
                COLOURS[c],
                -1,
            )
        else:
            pts = np.array([[(x1 + x2) // 2, y1], [x2 - 1, y2 - 1], [x1, y2 - 1]], np.int32)
            cv2.fillPoly(img, [pts], COLOURS[c])
    return img


def _model(clip_dir):
    from tests.test_models.test_yolo_world_integration import detector_cfg

    torch.manual_seed(0)
    det = MODELS.build(detector_cfg(0.33, 0.125, 256, clip_dir, num_train_classes=3))
    det.init_weights()
    return det


def _ap50(det, inputs, vocab, gt_label_of_text):
    """COCO AP50 (pycocotools) of the detections made with ``vocab``; ``gt_label_of_text[k]``
    is the class index of text k (None for words that name no object)."""
    det.eval()
    sample = DetDataSample(
        metainfo=dict(img_shape=(SIZE, SIZE), ori_shape=(SIZE, SIZE), scale_factor=(1.0, 1.0))
    )
    sample.texts = vocab
    with torch.no_grad():
        data = det.data_preprocessor({'inputs': [inputs], 'data_samples': [sample]})
        pred = det(**data, mode='predict')[0].pred_instances
    gt = COCO()
    gt.dataset = dict(
        images=[dict(id=1, width=SIZE, height=SIZE)],
        categories=[dict(id=i + 1, name=n) for i, n in enumerate(CLASSES)],
        annotations=[
            dict(
                id=j + 1,
                image_id=1,
                category_id=c + 1,
                iscrowd=0,
                bbox=[x1, y1, x2 - x1, y2 - y1],
                area=(x2 - x1) * (y2 - y1),
            )
            for j, (c, x1, y1, x2, y2) in enumerate(OBJECTS)
        ],
    )
    gt.createIndex()
    dets = []
    for box, score, label in zip(
        pred.bboxes.tensor.tolist(), pred.scores.tolist(), pred.labels.tolist()
    ):
        cls = gt_label_of_text[label]
        if cls is not None:
            dets.append(
                dict(
                    image_id=1,
                    category_id=cls + 1,
                    score=score,
                    bbox=[box[0], box[1], box[2] - box[0], box[3] - box[1]],
                )
            )
    if not dets:
        return 0.0, pred
    ev = COCOeval(gt, gt.loadRes(dets), 'bbox')
    ev.params.iouThrs = np.array([0.5])
    ev.evaluate()
    ev.accumulate()
    precision = ev.eval['precision'][0, :, :, 0, -1]  # (recall, class) at area all, 100 dets
    return float(np.mean([p[p > -1].mean() for p in precision.T])), pred


@pytest.mark.slow
def test_tiny_yolo_world_overfits_one_image_and_follows_the_vocabulary(tiny_clip_dir):
    det = _model(tiny_clip_dir)
    inputs = torch.from_numpy(_image()).permute(2, 0, 1).contiguous()
    batch = {
        'inputs': inputs[None],
        'data_samples': {
            'bboxes_labels': torch.tensor(
                [[0.0, c, x1, y1, x2, y2] for c, x1, y1, x2, y2 in OBJECTS]
            ),
            'texts': [list(CLASSES)],
        },
    }
    optimizer = torch.optim.AdamW(
        [p for p in det.parameters() if p.requires_grad], lr=2e-3, weight_decay=0.0
    )
    history = []
    for step in range(1, 601):
        det.train()
        losses = det(**det.data_preprocessor(batch, training=True), mode='loss')
        loss = sum(losses.values())
        assert torch.isfinite(loss), (step, losses)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step >= 100 and step % 25 == 0:
            ap, _ = _ap50(det, inputs, CLASSES, [0, 1, 2])
            history.append((step, round(ap, 3)))
            if ap == 1.0:
                break
    assert history[-1][1] == 1.0, history

    # reordered vocabulary: label k now means text k
    reordered = ['green triangle', 'red square', 'blue circle']
    ap, pred = _ap50(det, inputs, reordered, [2, 0, 1])
    assert ap == 1.0
    top = pred.scores.argsort(descending=True)[: len(OBJECTS)]
    assert sorted(pred.labels[top].tolist()) == sorted([1, 2, 0, 2])  # square->1, circle->2...

    # unseen words next to the trained ones do not stop the objects from being found
    extended = ['aeroplane', 'red square', 'zebra crossing', 'blue circle', 'green triangle']
    ap, _ = _ap50(det, inputs, extended, [None, 0, None, 1, 2])
    assert ap == 1.0

    # image-only inference with the vocabulary baked in gives the same detections
    _, ref = _ap50(det, inputs, CLASSES, [0, 1, 2])
    det.reparameterize(CLASSES, drop_text_model=True)
    det.eval()
    sample = DetDataSample(
        metainfo=dict(img_shape=(SIZE, SIZE), ori_shape=(SIZE, SIZE), scale_factor=(1.0, 1.0))
    )
    with torch.no_grad():
        data = det.data_preprocessor({'inputs': [inputs], 'data_samples': [sample]})
        out = det(**data, mode='predict')[0].pred_instances
    torch.testing.assert_close(out.scores, ref.scores, atol=1e-4, rtol=0)
    torch.testing.assert_close(out.bboxes.tensor, ref.bboxes.tensor, atol=1e-4, rtol=0)
