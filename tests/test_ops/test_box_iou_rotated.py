import importlib
import math

import numpy as np
import pytest
import torch

from ai4rs.ops import box_iou_rotated, rotated_box_intersection
from tests.test_ops.rbox_shapely_reference import random_rboxes, shapely_iou

iou_module = importlib.import_module('ai4rs.ops.box_iou_rotated')

TOL = {torch.float64: 1e-6, torch.float32: 2e-4}


def edge_case_pairs():
    """(boxes1, boxes2) rows covering the degenerate configurations of the issue."""
    pi = math.pi
    rows = [
        # identical, axis-aligned and rotated
        ([10, 10, 8, 4, 0], [10, 10, 8, 4, 0]),
        ([10, 10, 8, 4, 0.7], [10, 10, 8, 4, 0.7]),
        # same box described twice (w/h swapped, angle + pi/2; angle + pi)
        ([10, 10, 8, 4, 0.3], [10, 10, 4, 8, 0.3 + pi / 2]),
        ([10, 10, 8, 4, 0.3], [10, 10, 8, 4, 0.3 + pi]),
        # nested: small inside big, both orders, rotated
        ([0, 0, 20, 20, 0.2], [1, -1, 3, 2, 1.1]),
        ([1, -1, 3, 2, 1.1], [0, 0, 20, 20, 0.2]),
        # touching along an edge from outside, and at a corner
        ([0, 0, 2, 2, 0], [2, 0, 2, 2, 0]),
        ([0, 0, 2, 2, 0], [2, 2, 2, 2, 0]),
        ([0, 0, 2, 2, pi / 4], [2 * math.sqrt(2), 0, 2, 2, pi / 4]),
        # collinear edges overlapping partially (same side), and sharing an edge line
        ([0, 0, 4, 2, 0], [1, 0, 4, 2, 0]),
        ([0, 0, 4, 2, 0], [1, 0.5, 4, 1, 0]),
        ([0, 0, 4, 2, 0.5], [0, 0, 4, 1, 0.5]),
        # disjoint
        ([0, 0, 2, 2, 0.3], [10, 10, 2, 2, 0.3]),
        # very thin boxes: crossing, parallel overlapping, identical
        ([0, 0, 100, 1e-3, 0.1], [0, 0, 100, 1e-3, 1.3]),
        ([0, 0, 100, 1e-3, 0.1], [5, 0.5, 100, 1e-3, 0.1]),
        ([0, 0, 100, 1e-4, 0.4], [0, 0, 100, 1e-4, 0.4]),
        # huge coordinates
        ([1e6, -2e6, 50, 20, 0.3], [1e6 + 7, -2e6 + 3, 40, 30, -0.8]),
        ([3e7, 3e7, 50, 20, 0.3], [3e7 + 10, 3e7, 50, 20, 0.3]),
        # zero-size boxes (must give 0, never NaN)
        ([0, 0, 0, 0, 0], [0, 0, 0, 0, 0]),
        ([0, 0, 0, 5, 0.3], [0, 0, 4, 4, 0]),
        ([0, 0, 4, 4, 0], [1, 1, 0, 0, 0]),
        # a box and its 90-degree rotation (cross shape), square rotated 45 degrees
        ([0, 0, 10, 2, 0], [0, 0, 10, 2, pi / 2]),
        ([0, 0, 2, 2, 0], [0, 0, 2, 2, pi / 4]),
    ]
    b1 = np.array([r[0] for r in rows], dtype=np.float64)
    b2 = np.array([r[1] for r in rows], dtype=np.float64)
    return b1, b2


@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
@pytest.mark.parametrize('mode', ['iou', 'iof'])
def test_random_pairs_match_shapely(dtype, mode, device):
    rng = np.random.default_rng(0)
    # 120 x 100 = 12k all-pairs entries, a third of them overlapping
    b1, b2 = random_rboxes(rng, 120, span=60), random_rboxes(rng, 100, span=60)
    t1, t2 = torch.from_numpy(b1).to(dtype), torch.from_numpy(b2).to(dtype)
    expected = shapely_iou(t1.double().numpy(), t2.double().numpy(), mode=mode)
    assert (expected > 0).mean() > 0.2
    out = box_iou_rotated(t1.to(device), t2.to(device), mode=mode)
    assert out.device.type == device
    out = out.cpu()
    assert out.dtype == dtype and out.shape == (120, 100)
    np.testing.assert_allclose(out.double().numpy(), expected, rtol=0, atol=TOL[dtype])


@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
@pytest.mark.parametrize('mode', ['iou', 'iof'])
def test_aligned_random_pairs_match_shapely(dtype, mode, device):
    rng = np.random.default_rng(1)
    n = 10000
    b1 = random_rboxes(rng, n, span=60)
    b2 = b1.copy()  # nearby partners so that most pairs overlap
    b2[:, :2] += rng.normal(0, 8, (n, 2))
    b2[:, 2:4] = rng.uniform(0.5, 40, (n, 2))
    b2[:, 4] = rng.uniform(-np.pi, np.pi, n)
    t1, t2 = torch.from_numpy(b1).to(dtype), torch.from_numpy(b2).to(dtype)
    expected = shapely_iou(t1.double().numpy(), t2.double().numpy(), mode=mode, aligned=True)
    assert (expected > 0).mean() > 0.5
    out = box_iou_rotated(t1.to(device), t2.to(device), mode=mode, aligned=True).cpu()
    assert out.shape == (n,)
    np.testing.assert_allclose(out.double().numpy(), expected, rtol=0, atol=TOL[dtype])


@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
@pytest.mark.parametrize('mode', ['iou', 'iof'])
def test_edge_cases_match_shapely(dtype, mode, device):
    b1, b2 = edge_case_pairs()
    t1, t2 = torch.from_numpy(b1).to(dtype), torch.from_numpy(b2).to(dtype)
    expected = shapely_iou(t1.double().numpy(), t2.double().numpy(), mode=mode, aligned=True)
    t1, t2 = t1.to(device), t2.to(device)
    aligned = box_iou_rotated(t1, t2, mode=mode, aligned=True).cpu()
    full = box_iou_rotated(t1, t2, mode=mode).cpu()
    assert torch.isfinite(full).all()
    np.testing.assert_allclose(aligned.double().numpy(), expected, rtol=0, atol=TOL[dtype])
    np.testing.assert_allclose(
        torch.diagonal(full).double().numpy(), expected, rtol=0, atol=TOL[dtype]
    )


def test_hand_computed_values():
    boxes1 = torch.tensor([[0, 0, 2, 2, 0], [0, 0, 2, 2, 0], [0, 0, 10, 2, 0]], dtype=torch.float64)
    boxes2 = torch.tensor(
        [[1, 0, 2, 2, 0], [0, 0, 2, 2, math.pi / 4], [0, 0, 10, 2, math.pi / 2]],
        dtype=torch.float64,
    )
    # half overlap: 2 / 6; square vs its 45-degree turn: octagon 8(sqrt2 - 1); cross: 4 / 36
    octagon = 8 * (math.sqrt(2) - 1)
    expected = torch.tensor([2 / 6, octagon / (8 - octagon), 4 / 36], dtype=torch.float64)
    torch.testing.assert_close(box_iou_rotated(boxes1, boxes2, aligned=True), expected)
    iof = box_iou_rotated(boxes1, boxes2, mode='iof', aligned=True)
    torch.testing.assert_close(iof, torch.tensor([0.5, octagon / 4, 0.2], dtype=torch.float64))


def test_zero_size_and_touching_give_exact_zero():
    b1 = torch.tensor([[0, 0, 0, 0, 0], [0, 0, 2, 2, 0], [0, 0, 0, 3, 0.2]])
    b2 = torch.tensor([[0, 0, 0, 0, 0], [2, 0, 2, 2, 0], [0, 0, 3, 3, 0.0]])
    out = box_iou_rotated(b1, b2, aligned=True)
    assert torch.equal(out, torch.zeros(3))


def test_chunked_paths_give_the_same_matrix(monkeypatch):
    rng = np.random.default_rng(2)
    b1 = torch.from_numpy(random_rboxes(rng, 70, span=50))
    b2 = torch.from_numpy(random_rboxes(rng, 50, span=50))
    full = box_iou_rotated(b1, b2)
    monkeypatch.setattr(iou_module, '_KERNEL_CHUNK', 7)
    monkeypatch.setattr(iou_module, '_MASK_CHUNK', 120)
    torch.testing.assert_close(box_iou_rotated(b1, b2), full, rtol=0, atol=0)
    torch.testing.assert_close(
        box_iou_rotated(b1[:50], b2, aligned=True), torch.diagonal(full[:50]), rtol=0, atol=1e-15
    )


def test_counter_clockwise_flag_negates_angles():
    rng = np.random.default_rng(3)
    b1 = torch.from_numpy(random_rboxes(rng, 30, span=40))
    b2 = torch.from_numpy(random_rboxes(rng, 20, span=40))
    flip = torch.tensor([1, 1, 1, 1, -1.0], dtype=torch.float64)
    torch.testing.assert_close(
        box_iou_rotated(b1, b2, clockwise=False), box_iou_rotated(b1 * flip, b2 * flip)
    )


def test_empty_inputs_and_shapes():
    empty = torch.zeros(0, 5)
    some = torch.tensor([[0, 0, 1, 1, 0.0]])
    assert box_iou_rotated(empty, some).shape == (0, 1)
    assert box_iou_rotated(some, empty).shape == (1, 0)
    assert box_iou_rotated(empty, empty, aligned=True).shape == (0,)


def test_invalid_arguments_are_named():
    good = torch.zeros(2, 5)
    with pytest.raises(ValueError, match='bboxes1'):
        box_iou_rotated(torch.zeros(2, 4), good)
    with pytest.raises(ValueError, match='mode'):
        box_iou_rotated(good, good, mode='giou')
    with pytest.raises(ValueError, match='aligned'):
        box_iou_rotated(good, torch.zeros(3, 5), aligned=True)


def test_gradcheck_on_generic_pairs(device):
    rng = np.random.default_rng(4)
    n = 12
    b1 = random_rboxes(rng, n, span=10, size=(3, 8))
    b2 = b1.copy()
    b2[:, :2] += rng.normal(0, 1.5, (n, 2))
    b2[:, 2:4] = rng.uniform(3, 8, (n, 2))
    b2[:, 4] = rng.uniform(-np.pi, np.pi, n)
    t1 = torch.from_numpy(b1).to(device).requires_grad_()
    t2 = torch.from_numpy(b2).to(device).requires_grad_()
    assert (shapely_iou(b1, b2, aligned=True) > 0).all()
    # on CUDA the backward of gathering rows (b1[i] with repeated i) adds with atomics, in no
    # fixed order: repeated backward passes may differ in the last bits
    nondet = 0.0 if device == 'cpu' else 1e-12
    assert torch.autograd.gradcheck(
        lambda a, b: box_iou_rotated(a, b, aligned=True), (t1, t2), nondet_tol=nondet
    )
    assert torch.autograd.gradcheck(
        lambda a, b: box_iou_rotated(a, b, mode='iof'), (t1[:4], t2[:5]), nondet_tol=nondet
    )
    assert torch.autograd.gradcheck(rotated_box_intersection, (t1, t2), nondet_tol=nondet)


@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
def test_gradients_are_finite_on_degenerate_pairs(dtype, device):
    b1, b2 = edge_case_pairs()
    t1 = torch.from_numpy(b1).to(dtype).to(device).requires_grad_()
    t2 = torch.from_numpy(b2).to(dtype).to(device).requires_grad_()
    loss = box_iou_rotated(t1, t2, aligned=True).sum() + box_iou_rotated(t1, t2).sum()
    loss.backward()
    assert t1.grad.device.type == device
    assert torch.isfinite(t1.grad).all() and torch.isfinite(t2.grad).all()


def test_gradient_matches_hand_derivative_of_the_area(device):
    # A = [-1, 1]^2 and B = [0, 2] x [-2, 2]: A ∩ B = [0, 1 + cx] x [-h/2, h/2], so
    # d/dcx = h = 2, d/dw = h / 2 = 1, d/dh = overlap width = 1; rotating A about its centre
    # keeps exactly half of it in x >= 0 (point symmetry), so d/dt = 0.
    b1 = torch.tensor([[0.0, 0, 2, 2, 0]], dtype=torch.float64, device=device, requires_grad=True)
    b2 = torch.tensor([[1.0, 0, 2, 4, 0]], dtype=torch.float64, device=device)
    rotated_box_intersection(b1, b2).sum().backward()
    torch.testing.assert_close(
        b1.grad.cpu(), torch.tensor([[2.0, 0, 1, 1, 0]], dtype=torch.float64)
    )


def test_cpu_thread_cap_changes_nothing_but_speed():
    from ai4rs.ops import set_cpu_threads

    rng = np.random.default_rng(5)
    b1 = torch.from_numpy(random_rboxes(rng, 40, span=40))
    b2 = torch.from_numpy(random_rboxes(rng, 30, span=40))
    threads = torch.get_num_threads()
    uncapped = box_iou_rotated(b1, b2)
    try:
        set_cpu_threads(1)
        assert torch.equal(box_iou_rotated(b1, b2), uncapped)
        assert torch.get_num_threads() == threads  # restored after the call
        with pytest.raises(ValueError):
            set_cpu_threads(0)
    finally:
        set_cpu_threads(None)
