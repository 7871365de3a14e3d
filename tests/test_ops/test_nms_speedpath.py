"""Rotated NMS's growing rank blocks: the kept indices are those of the fixed-block schedule
and of the textbook greedy loop (shapely IoUs)."""

import importlib

import numpy as np
import pytest
import torch

from ai4rs.ops import batched_nms, nms_rotated
from tests.test_ops.rbox_shapely_reference import clustered_rboxes, greedy_nms_reference

nms_module = importlib.import_module('ai4rs.ops.nms')


def test_next_block_size_doubles_on_clustered_output_and_jumps_on_sparse_output():
    # hand rule: fewer later boxes suppressed than ranks in the step -> the full block
    assert nms_module.next_block_size(64, 256, 63) == 256
    assert nms_module.next_block_size(64, 256, 0) == 256
    assert nms_module.next_block_size(64, 256, 64) == 128
    assert nms_module.next_block_size(128, 256, 900) == 256
    assert nms_module.next_block_size(3, 256, 3) == 6
    assert nms_module._FIRST_BLOCK == 64 and nms_module._RANK_BLOCK == 256


@pytest.mark.parametrize('first', [1, 3, 64])
@pytest.mark.parametrize('clusters', [2, 400])  # heavy suppression (doubling) / sparse (jump)
def test_first_block_sizes_give_the_textbook_keep_list(first, clusters, monkeypatch):
    rng = np.random.default_rng(first * 1000 + clusters)
    boxes, scores = clustered_rboxes(
        rng, 300, clusters=clusters, span=300.0 if clusters < 10 else 3000.0
    )
    b, s = torch.from_numpy(boxes).float(), torch.from_numpy(scores).float()
    monkeypatch.setattr(nms_module, '_FIRST_BLOCK', first)
    sizes = []
    real = nms_module.next_block_size
    monkeypatch.setattr(nms_module, 'next_block_size', lambda *a: sizes.append(a) or real(*a))
    _, keep = nms_rotated(b, s, 0.1)
    assert sizes[0][0] == first
    if first == 64:  # the first step doubled (clustered) or jumped to 256 (sparse)
        assert (sizes[0][2] >= 64) == (clusters == 2)
    assert keep.tolist() == greedy_nms_reference(b.double().numpy(), s.numpy(), 0.1)


@pytest.mark.parametrize('seed', range(6))
def test_random_clusters_keep_the_fixed_block_and_textbook_keep_lists(seed, monkeypatch):
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(150, 700))
    boxes, scores = clustered_rboxes(rng, n, clusters=int(rng.integers(3, 40)))
    labels = rng.integers(0, 3, n) if seed % 2 else None
    thr = float(rng.choice([0.05, 0.1, 0.3, 0.6]))
    b, s = torch.from_numpy(boxes).float(), torch.from_numpy(scores).float()
    lab = None if labels is None else torch.from_numpy(labels)
    _, keep = nms_rotated(b, s, thr, labels=lab)
    # the schedule before growing blocks: every step 256 ranks
    monkeypatch.setattr(nms_module, '_FIRST_BLOCK', nms_module._RANK_BLOCK)
    _, keep_fixed = nms_rotated(b, s, thr, labels=lab)
    assert torch.equal(keep, keep_fixed)
    if n <= 400:  # the shapely loop is quadratic: small cases only
        expected = greedy_nms_reference(b.double().numpy(), s.numpy(), thr, labels=labels)
        assert keep.tolist() == expected


def test_batched_nms_with_1024_clustered_boxes_matches_the_textbook_loop():
    rng = np.random.default_rng(7)
    boxes, scores = clustered_rboxes(rng, 1024, clusters=30, span=600.0)
    labels = rng.integers(0, 4, 1024)
    b, s = torch.from_numpy(boxes).float(), torch.from_numpy(scores).float()
    dets, keep = batched_nms(
        b, s, torch.from_numpy(labels), dict(type='nms_rotated', iou_threshold=0.1)
    )
    # the textbook loop on the boxes of each label alone, merged by score
    expected = []
    for c in range(4):
        idx = np.flatnonzero(labels == c)
        expected += idx[greedy_nms_reference(boxes[idx], scores[idx], 0.1)].tolist()
    expected.sort(key=lambda i: -scores[i])
    assert keep.tolist() == expected
    torch.testing.assert_close(dets[:, 5], s[keep])


def test_rotated_iou_after_a_first_use_in_inference_mode_still_has_gradients(monkeypatch):
    # the IoU kernel's constants are cached on first use; made inside torch.inference_mode
    # they were inference tensors, and training after inference then failed in backward
    iou_module = importlib.import_module('ai4rs.ops.box_iou_rotated')
    monkeypatch.setattr(iou_module, '_CONSTANTS', {})
    from ai4rs.ops import box_iou_rotated

    boxes = torch.tensor([[10.0, 10.0, 8.0, 4.0, 0.3], [11.0, 10.0, 8.0, 4.0, -0.2]])
    with torch.inference_mode():
        nms_rotated(boxes, torch.tensor([0.9, 0.8]), 0.1)
    pred = boxes.clone().requires_grad_(True)
    iou = box_iou_rotated(pred, boxes.flip(0), aligned=True)
    iou.sum().backward()
    assert pred.grad is not None and bool(torch.isfinite(pred.grad).all())
    assert float(pred.grad.abs().sum()) > 0
