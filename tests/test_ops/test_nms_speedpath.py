"""Rotated NMS's growing rank blocks: the kept indices are those of the fixed-block schedule
and of the textbook greedy loop (shapely IoUs)."""

import importlib

import numpy as np
import pytest
import torch

from ai4rs.ops import batched_nms, nms_rotated
from tests.test_ops.rbox_shapely_reference import clustered_rboxes, greedy_nms_reference

nms_module = importlib.import_module('ai4rs.ops.nms')


@pytest.mark.parametrize(
    'n,block,first', [(1000, 256, 64), (5, 256, 64), (300, 50, 64), (70, 8, 3)]
)
def test_rank_blocks_cover_every_rank_once_growing_to_the_block(n, block, first):
    ranges = list(nms_module._rank_blocks(n, block, first))
    assert ranges[0][0] == 0 and ranges[-1][1] == n
    assert all(r1 == next_r0 for (_, r1), (next_r0, _) in zip(ranges, ranges[1:]))
    sizes = [r1 - r0 for r0, r1 in ranges]
    expected, size = [], min(first, block)
    while sum(expected) < n:  # hand rule: first, then doubling, capped at block, then the tail
        expected.append(min(size, n - sum(expected)))
        size = min(2 * size, block)
    assert sizes == expected


def test_first_steps_are_small_by_default():
    assert [r for r in nms_module._rank_blocks(1000, 256)][:4] == [
        (0, 64),
        (64, 192),
        (192, 448),
        (448, 704),
    ]


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
    assert list(nms_module._rank_blocks(n, nms_module._RANK_BLOCK))[0] == (0, min(n, 256))
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
