import importlib

import numpy as np
import pytest
import torch
import torchvision

from ai4rs.ops import batched_nms, nms, nms_rotated
from tests.test_ops.rbox_shapely_reference import clustered_rboxes, greedy_nms_reference

nms_module = importlib.import_module('ai4rs.ops.nms')


@pytest.mark.parametrize('seed,thr', [(0, 0.1), (1, 0.3), (2, 0.5), (3, 0.7)])
def test_keep_list_equals_shapely_greedy_reference(seed, thr, device):
    rng = np.random.default_rng(seed)
    boxes, scores = clustered_rboxes(rng, 300, clusters=25)
    dets, keep = nms_rotated(
        torch.from_numpy(boxes).to(device), torch.from_numpy(scores).to(device), thr
    )
    assert dets.device.type == keep.device.type == device
    dets, keep = dets.cpu(), keep.cpu()
    expected = greedy_nms_reference(boxes, scores, thr)
    assert keep.tolist() == expected
    assert dets.shape == (len(expected), 6)
    torch.testing.assert_close(dets[:, :5], torch.from_numpy(boxes[expected]))
    torch.testing.assert_close(dets[:, 5], torch.from_numpy(scores[expected]))


def test_small_rank_blocks_give_the_same_keep_list(device):
    rng = np.random.default_rng(5)
    boxes, scores = clustered_rboxes(rng, 400, clusters=20)
    b, s = torch.from_numpy(boxes).float(), torch.from_numpy(scores).float()
    expected = greedy_nms_reference(b.double().numpy(), s.numpy(), 0.2)
    b, s = b.to(device), s.to(device)
    full = nms_module._nms_rotated_keep(b, s, 0.2, None, True)
    for block in (7, 64):
        assert torch.equal(nms_module._nms_rotated_keep(b, s, 0.2, None, True, block=block), full)
    assert full.tolist() == expected


def test_labels_make_nms_class_aware(device):
    rng = np.random.default_rng(6)
    boxes, scores = clustered_rboxes(rng, 300, clusters=15)
    labels = rng.integers(0, 3, 300)
    tb, ts = torch.from_numpy(boxes).to(device), torch.from_numpy(scores).to(device)
    _, keep = nms_rotated(tb, ts, 0.2, labels=torch.from_numpy(labels).to(device))
    assert keep.tolist() == greedy_nms_reference(boxes, scores, 0.2, labels=labels)
    # without labels fewer boxes survive: different classes now suppress each other
    _, keep_agnostic = nms_rotated(tb, ts, 0.2)
    assert len(keep_agnostic) < len(keep)


def test_suppression_rule_is_strictly_greater(device):
    # two 3x1 boxes shifted by 1: intersection 2, union 4, IoU exactly 0.5
    boxes = torch.tensor(
        [[1.5, 0.5, 3, 1, 0], [2.5, 0.5, 3, 1, 0]], dtype=torch.float64, device=device
    )
    scores = torch.tensor([0.9, 0.8], dtype=torch.float64, device=device)
    assert nms_rotated(boxes, scores, 0.5)[1].tolist() == [0, 1]
    assert nms_rotated(boxes, scores, 0.49)[1].tolist() == [0]


def test_equal_scores_keep_input_order_and_float32_works():
    boxes = torch.tensor([[0, 0, 4, 4, 0], [0.1, 0, 4, 4, 0.05], [20, 20, 2, 2, 0]])
    scores = torch.tensor([0.5, 0.5, 0.5])
    dets, keep = nms_rotated(boxes, scores, 0.5)
    assert keep.tolist() == [0, 2]
    assert dets.dtype == torch.float32


def test_empty_input():
    dets, keep = nms_rotated(torch.zeros(0, 5), torch.zeros(0), 0.1)
    assert dets.shape == (0, 6) and keep.shape == (0,) and keep.dtype == torch.long


def test_invalid_arguments_are_named():
    with pytest.raises(ValueError, match='dets'):
        nms_rotated(torch.zeros(3, 4), torch.zeros(3), 0.1)
    with pytest.raises(ValueError, match='scores'):
        nms_rotated(torch.zeros(3, 5), torch.zeros(2), 0.1)
    with pytest.raises(ValueError, match='labels'):
        nms_rotated(torch.zeros(3, 5), torch.zeros(3), 0.1, labels=torch.zeros(2))


def test_greedy_from_edges_hand_case():
    # chain 0 -> 1 -> 2 -> 3: 0 kept, 1 removed, 2 kept (its only suppressor is gone), 3 removed
    src, dst = np.array([2, 0, 1]), np.array([3, 1, 2])
    assert nms_module.greedy_from_edges(src, dst, 5).tolist() == [0, 2, 4]


def test_horizontal_nms_matches_torchvision_and_mmcv_options():
    rng = np.random.default_rng(7)
    xy = rng.uniform(0, 50, (200, 2))
    boxes = torch.from_numpy(np.concatenate([xy, xy + rng.uniform(2, 20, (200, 2))], 1)).float()
    scores = torch.from_numpy(rng.uniform(0, 1, 200)).float()
    dets, inds = nms(boxes, scores, 0.4)
    assert torch.equal(inds, torchvision.ops.nms(boxes, scores, 0.4))
    assert torch.equal(dets[:, 4], scores[inds])
    _, top = nms(boxes, scores, 0.4, max_num=5)
    assert torch.equal(top, inds[:5])
    _, high = nms(boxes, scores, 0.4, score_threshold=0.5)
    assert (scores[high] > 0.5).all()
    dets_np, inds_np = nms(boxes.numpy(), scores.numpy(), 0.4)
    assert isinstance(dets_np, np.ndarray) and inds_np.tolist() == inds.tolist()


def per_class_reference(boxes, scores, idxs, thr):
    keep = []
    for c in np.unique(idxs):
        members = np.flatnonzero(idxs == c)
        keep += [members[i] for i in greedy_nms_reference(boxes[members], scores[members], thr)]
    return sorted(keep, key=lambda i: (-scores[i], i))


def test_batched_nms_rotated_per_class_and_split_path(device):
    rng = np.random.default_rng(8)
    boxes, scores = clustered_rboxes(rng, 300, clusters=20)
    idxs = rng.integers(0, 4, 300)
    tb, ts, ti = (torch.from_numpy(a).to(device) for a in (boxes, scores, idxs))
    cfg = dict(type='nms_rotated', iou_threshold=0.25)
    dets, keep = batched_nms(tb, ts, ti, cfg)
    assert dets.device.type == keep.device.type == device
    assert keep.tolist() == per_class_reference(boxes, scores, idxs, 0.25)
    assert torch.equal(dets[:, 5], ts[keep]) and torch.equal(dets[:, :5], tb[keep])
    dets_split, keep_split = batched_nms(tb, ts, ti, dict(cfg, split_thr=10))
    assert torch.equal(keep_split, keep) and torch.equal(dets_split, dets)
    _, keep_max = batched_nms(tb, ts, ti, dict(cfg, max_num=7))
    assert torch.equal(keep_max, keep[:7])
    _, keep_agnostic = batched_nms(tb, ts, ti, cfg, class_agnostic=True)
    assert keep_agnostic.tolist() == greedy_nms_reference(boxes, scores, 0.25)


def test_batched_nms_horizontal_matches_torchvision_batched_nms(device):
    rng = np.random.default_rng(9)
    xy = rng.uniform(0, 80, (300, 2))
    boxes = torch.from_numpy(np.concatenate([xy, xy + rng.uniform(2, 25, (300, 2))], 1)).float()
    scores = torch.from_numpy(rng.uniform(0, 1, 300)).float()
    idxs = torch.from_numpy(rng.integers(0, 5, 300))
    # the reference on the CPU; ours on the device
    expected = torchvision.ops.batched_nms(boxes, scores, idxs, 0.3).to(device)
    boxes, scores, idxs = boxes.to(device), scores.to(device), idxs.to(device)
    dets, keep = batched_nms(boxes, scores, idxs, dict(type='nms', iou_threshold=0.3))
    assert torch.equal(keep, expected)
    assert dets.shape == (len(keep), 5)
    _, keep_split = batched_nms(boxes, scores, idxs, dict(iou_threshold=0.3, split_thr=1))
    assert torch.equal(keep_split, expected)


def test_batched_nms_without_cfg_sorts_everything():
    boxes = torch.rand(5, 5)
    scores = torch.tensor([0.1, 0.9, 0.3, 0.7, 0.5])
    dets, keep = batched_nms(boxes, scores, torch.zeros(5), None)
    assert keep.tolist() == [1, 3, 4, 2, 0]
    assert torch.equal(dets[:, 5], scores[keep])


def test_batched_nms_rejects_unknown_type_and_handles_empty():
    with pytest.raises(ValueError, match='type'):
        batched_nms(torch.rand(3, 5), torch.rand(3), torch.zeros(3), dict(type='soft_nms'))
    dets, keep = batched_nms(
        torch.zeros(0, 5),
        torch.zeros(0),
        torch.zeros(0),
        dict(type='nms_rotated', iou_threshold=0.1),
    )
    assert dets.shape == (0, 6) and keep.shape == (0,)


@pytest.mark.parametrize('block', [16, 256])
def test_suppression_chain_across_rank_blocks(block, device):
    # box i overlaps only boxes i - 1 and i + 1 (IoU 0.25); scores fall along the chain, so
    # greedy NMS keeps every other box, a dependency that crosses every rank block
    n = 300
    x = torch.arange(n, dtype=torch.float64) * 6
    boxes = (
        torch.stack(
            [x, torch.zeros(n), torch.full((n,), 10.0), torch.full((n,), 2.0), torch.zeros(n)], 1
        )
        .to(torch.float64)
        .to(device)
    )
    scores = torch.linspace(1, 0, n, dtype=torch.float64).to(device)
    keep = nms_module._nms_rotated_keep(boxes, scores, 0.2, None, True, block=block)
    assert keep.tolist() == list(range(0, n, 2))


def test_batched_nms_path_follows_the_nms_type_not_the_width():
    rng = np.random.default_rng(10)
    boxes, scores = clustered_rboxes(rng, 60, clusters=6)
    idxs = rng.integers(0, 3, 60)
    tb, ts, ti = torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(idxs)
    with pytest.raises(ValueError, match=r'\(N, 4\)'):
        batched_nms(tb, ts, ti, dict(type='nms', iou_threshold=0.25))
    with pytest.raises(ValueError, match=r'\(N, 5\)'):
        batched_nms(tb[:, :4], ts, ti, dict(type='nms_rotated', iou_threshold=0.25))
    # a callable op of unknown box format runs class by class: same as the per-class reference
    _, keep = batched_nms(tb, ts, ti, dict(type=nms_rotated, iou_threshold=0.25))
    assert keep.tolist() == per_class_reference(boxes, scores, idxs, 0.25)
