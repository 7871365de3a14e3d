import copy
import math
import warnings

import numpy as np
import pytest
import shapely
import torch

from ai4rs.structures.bbox import (
    BaseBoxes,
    HorizontalBoxes,
    QuadriBoxes,
    RotatedBoxes,
    autocast_box_type,
    bbox_overlaps,
    convert_box_type,
    get_box_type,
    hbox2qbox,
    rbox2qbox,
    register_box,
    register_box_converter,
)

IMG_SHAPE = (300, 400)  # (h, w)


def random_rboxes(rng, n):
    ctr = rng.uniform(0, 400, (n, 2))
    wh = rng.uniform(2, 80, (n, 2))
    t = rng.uniform(-np.pi, np.pi, (n, 1))
    return torch.from_numpy(np.concatenate([ctr, wh, t], 1))


def random_hboxes(rng, n):
    xy = rng.uniform(0, 300, (n, 2))
    return torch.from_numpy(np.concatenate([xy, xy + rng.uniform(1, 80, (n, 2))], 1))


def random_qboxes(rng, n):
    return rbox2qbox(random_rboxes(rng, n)) + torch.from_numpy(rng.normal(0, 2, (n, 8)))


def corners(boxes: BaseBoxes) -> torch.Tensor:
    """(N, 4, 2) corner points of any box object."""
    return boxes.convert_to('qbox').tensor.reshape(-1, 4, 2)


def assert_same_point_sets(a, b, atol=1e-6):
    """(N, 4, 2) point sets equal up to order."""
    d = (a[:, :, None] - b[:, None]).norm(dim=-1)
    assert d.amin(dim=2).max() <= atol and d.amin(dim=1).max() <= atol


def rotate_points(pts, center, angle_deg):
    """Clockwise on screen (y down) by angle_deg about center."""
    a = math.radians(angle_deg)
    c = torch.tensor(center, dtype=pts.dtype)
    rot = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], dtype=pts.dtype)
    return (pts - c) @ rot.T + c


def flip_points(pts, direction):
    h, w = IMG_SHAPE
    out = pts.clone()
    if direction in ('horizontal', 'diagonal'):
        out[..., 0] = w - out[..., 0]
    if direction in ('vertical', 'diagonal'):
        out[..., 1] = h - out[..., 1]
    return out


BUILDERS = {
    'hbox': (HorizontalBoxes, random_hboxes),
    'rbox': (RotatedBoxes, random_rboxes),
    'qbox': (QuadriBoxes, random_qboxes),
}


# ------------------------------------------------------------------------ registry


def test_registry_lookup_and_errors():
    assert get_box_type('rbox') == ('rbox', RotatedBoxes)
    assert get_box_type('HBOX') == ('hbox', HorizontalBoxes)
    assert get_box_type(QuadriBoxes) == ('qbox', QuadriBoxes)
    with pytest.raises(KeyError, match='obox'):
        get_box_type('obox')
    with pytest.raises(KeyError):
        register_box('rbox', RotatedBoxes)

    class PointBoxes(HorizontalBoxes):
        pass

    try:
        register_box('test_pbox', PointBoxes)
        assert get_box_type('test_pbox') == ('test_pbox', PointBoxes)
        register_box_converter('test_pbox', 'qbox', hbox2qbox)
        boxes = PointBoxes([[0.0, 0, 2, 1]])
        torch.testing.assert_close(
            boxes.convert_to('qbox').tensor, torch.tensor([[0.0, 0, 2, 0, 2, 1, 0, 1]])
        )
        with pytest.raises(KeyError):
            register_box_converter('test_pbox', 'qbox', hbox2qbox)
    finally:
        from ai4rs.structures.bbox import box_type

        box_type.box_types.pop('test_pbox', None)
        box_type._box_type_to_name.pop(PointBoxes, None)
        box_type.box_converters.pop('test_pbox2qbox', None)


def test_convert_box_type_on_tensors_arrays_and_objects():
    r = torch.tensor([[10.0, 10, 4, 2, 0]])
    assert torch.equal(
        convert_box_type(r, src_type='rbox', dst_type='hbox'), torch.tensor([[8.0, 9, 12, 11]])
    )
    arr = convert_box_type(r.numpy(), src_type='rbox', dst_type='hbox')
    assert isinstance(arr, np.ndarray)
    obj = convert_box_type(RotatedBoxes(r), dst_type=HorizontalBoxes)
    assert isinstance(obj, HorizontalBoxes)
    with pytest.raises(ValueError, match='src_type'):
        convert_box_type(r, dst_type='hbox')


# ------------------------------------------------------------------------ tensor-like API


def test_construction_and_shape_checks():
    assert RotatedBoxes([]).shape == (0, 5)
    assert HorizontalBoxes(np.zeros((3, 4), dtype=np.float32)).dtype == torch.float32
    assert QuadriBoxes(torch.zeros(2, 3, 8)).shape == (2, 3, 8)
    with pytest.raises(ValueError, match='5'):
        RotatedBoxes(torch.zeros(3, 4))
    with pytest.raises(TypeError):
        RotatedBoxes('boxes')
    data = torch.zeros(2, 5)
    assert RotatedBoxes(data, clone=False).tensor is data
    assert RotatedBoxes(data).tensor is not data
    hb = HorizontalBoxes([[5.0, 5, 4, 2]], in_mode='cxcywh')
    assert torch.equal(hb.tensor, torch.tensor([[3.0, 4, 7, 6]]))
    assert torch.equal(hb.cxcywh, torch.tensor([[5.0, 5, 4, 2]]))


def test_indexing_cat_clone_and_moves():
    boxes = RotatedBoxes(torch.arange(20.0).reshape(4, 5))
    assert len(boxes) == 4
    assert boxes[1].shape == (1, 5)
    assert torch.equal(boxes[torch.tensor([True, False, True, False])].tensor, boxes.tensor[[0, 2]])
    assert torch.equal(boxes[np.array([3, 0])].tensor, boxes.tensor[[3, 0]])
    assert boxes[1:3].shape == (2, 5)
    with pytest.raises(IndexError):
        boxes[torch.ones(4, 5, dtype=torch.bool)]
    boxes[0] = RotatedBoxes(torch.full((1, 5), -1.0))
    assert (boxes.tensor[0] == -1).all()
    with pytest.raises(TypeError):
        boxes[0] = HorizontalBoxes(torch.zeros(1, 4))
    joined = RotatedBoxes.cat([boxes, boxes[:2]])
    assert joined.shape == (6, 5)
    assert RotatedBoxes.stack([boxes, boxes]).shape == (2, 4, 5)
    with pytest.raises(ValueError):
        RotatedBoxes.cat([])
    with pytest.raises(TypeError):
        RotatedBoxes.cat([boxes, HorizontalBoxes(torch.zeros(1, 4))])
    copied = boxes.clone()
    copied.tensor[0, 0] = 99
    assert boxes.tensor[0, 0] == -1
    deep = copy.deepcopy(boxes)
    assert torch.equal(deep.tensor, boxes.tensor) and deep.tensor is not boxes.tensor
    assert boxes.to(torch.float64).dtype == torch.float64
    assert isinstance(boxes.numpy(), np.ndarray)
    assert [b.shape for b in boxes.split(3)] == [(3, 5), (1, 5)]
    assert boxes.reshape(2, 2, 5).flatten().shape == (4, 5)
    with pytest.raises(ValueError):
        boxes.transpose(0, 1)
    assert boxes.empty_boxes().shape == (0, 5)
    assert boxes.fake_boxes((3, 5), fill=2).tensor.eq(2).all()


# ------------------------------------------------------------------------ geometry vs corners


@pytest.mark.parametrize('kind', ['hbox', 'rbox', 'qbox'])
@pytest.mark.parametrize('direction', ['horizontal', 'vertical', 'diagonal'])
def test_flip_agrees_with_flipping_corners(kind, direction):
    cls, make = BUILDERS[kind]
    boxes = cls(make(np.random.default_rng(0), 50))
    expected = flip_points(corners(boxes), direction)
    boxes.flip_(IMG_SHAPE, direction)
    assert_same_point_sets(corners(boxes), expected)
    with pytest.raises(ValueError, match='direction'):
        boxes.flip_(IMG_SHAPE, 'sideways')


@pytest.mark.parametrize('kind', ['rbox', 'qbox'])
@pytest.mark.parametrize('angle', [30.0, -75.0, 90.0])
def test_rotate_agrees_with_rotating_corners(kind, angle):
    cls, make = BUILDERS[kind]
    boxes = cls(make(np.random.default_rng(1), 50))
    expected = rotate_points(corners(boxes), (200.0, 150.0), angle)
    boxes.rotate_((200.0, 150.0), angle)
    assert_same_point_sets(corners(boxes), expected)


def test_rotate_hbox_gives_the_enclosing_box_of_rotated_corners():
    boxes = HorizontalBoxes(random_hboxes(np.random.default_rng(2), 30))
    pts = rotate_points(corners(boxes), (200.0, 150.0), 25.0)
    boxes.rotate_((200.0, 150.0), 25.0)
    torch.testing.assert_close(boxes.tensor, torch.cat([pts.amin(1), pts.amax(1)], 1))


def test_rbox_rotate_by_positive_angle_is_clockwise_on_screen():
    box = RotatedBoxes(torch.tensor([[10.0, 0, 2, 2, 0]], dtype=torch.float64))
    box.rotate_((0.0, 0.0), 90.0)  # a point on +x goes to +y (down) when turned clockwise
    torch.testing.assert_close(
        box.tensor, torch.tensor([[0.0, 10, 2, 2, math.pi / 2]], dtype=torch.float64)
    )


@pytest.mark.parametrize('kind', ['hbox', 'rbox', 'qbox'])
def test_translate_and_isotropic_rescale_agree_with_corners(kind):
    cls, make = BUILDERS[kind]
    boxes = cls(make(np.random.default_rng(3), 40))
    pts = corners(boxes)
    boxes.translate_((5.0, -7.0))
    assert_same_point_sets(corners(boxes), pts + torch.tensor([5.0, -7.0], dtype=pts.dtype))
    pts = corners(boxes)
    boxes.rescale_((1.5, 1.5))
    assert_same_point_sets(corners(boxes), pts * 1.5, atol=1e-5)


def test_anisotropic_rescale_of_rboxes():
    rng = np.random.default_rng(4)
    boxes = RotatedBoxes(random_rboxes(rng, 60))
    sx, sy = 2.0, 0.5
    b = boxes.tensor.clone()
    cos, sin = torch.cos(b[:, 4]), torch.sin(b[:, 4])
    v1 = torch.stack([b[:, 2] / 2 * cos * sx, b[:, 2] / 2 * sin * sy], 1)  # image of v1
    v2 = torch.stack([-b[:, 3] / 2 * sin * sx, b[:, 3] / 2 * cos * sy], 1)  # image of v2
    boxes.rescale_((sx, sy))
    out = boxes.tensor
    torch.testing.assert_close(out[:, :2], b[:, :2] * torch.tensor([sx, sy], dtype=b.dtype))
    torch.testing.assert_close(out[:, 2], 2 * v1.norm(dim=1))
    torch.testing.assert_close(out[:, 3], 2 * v2.norm(dim=1))
    new_v2 = torch.stack(
        [-out[:, 3] / 2 * torch.sin(out[:, 4]), out[:, 3] / 2 * torch.cos(out[:, 4])], 1
    )
    torch.testing.assert_close(new_v2, v2)  # the height edge maps exactly
    # the image of the box is a parallelogram; axis-aligned boxes stay exact
    axis = RotatedBoxes(torch.tensor([[10.0, 20, 4, 2, 0]]))
    axis.rescale_((sx, sy))
    torch.testing.assert_close(axis.tensor, torch.tensor([[20.0, 10, 8, 1, 0]]))


def test_resize_scales_sizes_about_centres():
    hb = HorizontalBoxes(torch.tensor([[0.0, 0, 4, 2]]))
    hb.resize_((2.0, 3.0))
    assert torch.equal(hb.tensor, torch.tensor([[-2.0, -2, 6, 4]]))
    rb = RotatedBoxes(torch.tensor([[1.0, 2, 4, 2, 0.3]]))
    rb.resize_((2.0, 3.0))
    torch.testing.assert_close(rb.tensor, torch.tensor([[1.0, 2, 8, 6, 0.3]]))
    qb = QuadriBoxes(torch.tensor([[0.0, 0, 2, 0, 2, 2, 0, 2]]))
    qb.resize_((2.0, 2.0))
    assert torch.equal(qb.tensor, torch.tensor([[-1.0, -1, 3, -1, 3, 3, -1, 3]]))
    with pytest.raises(ValueError):
        qb.resize_((2.0, 1.0))


@pytest.mark.parametrize('kind', ['rbox', 'qbox'])
def test_project_with_a_similarity_agrees_with_corners(kind):
    cls, make = BUILDERS[kind]
    boxes = cls(make(np.random.default_rng(5), 40))
    a, s = math.radians(20), 1.3
    homography = np.array(
        [
            [s * math.cos(a), -s * math.sin(a), 12.0],
            [s * math.sin(a), s * math.cos(a), -4.0],
            [0, 0, 1],
        ]
    )
    pts = corners(boxes)
    h = torch.from_numpy(homography)
    expected = pts @ h[:2, :2].T + h[:2, 2]
    boxes.project_(homography)
    assert_same_point_sets(corners(boxes), expected, atol=1e-5 if kind == 'rbox' else 1e-9)


def test_project_hbox_takes_the_enclosing_box():
    boxes = HorizontalBoxes(torch.tensor([[0.0, 0, 2, 1]], dtype=torch.float64))
    boxes.project_(np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1.0]]))
    torch.testing.assert_close(boxes.tensor, torch.tensor([[-1.0, 0, 0, 2]], dtype=torch.float64))


def test_rbox_flip_rules_hand_case():
    box = RotatedBoxes(torch.tensor([[10.0, 20, 4, 2, 0.3]]))
    box.flip_((100, 200), 'horizontal')
    torch.testing.assert_close(box.tensor, torch.tensor([[190.0, 20, 4, 2, -0.3]]))
    box.flip_((100, 200), 'diagonal')
    torch.testing.assert_close(box.tensor, torch.tensor([[10.0, 80, 4, 2, -0.3]]))


def test_clip():
    hb = HorizontalBoxes(torch.tensor([[-5.0, 10, 450, 320]]))
    hb.clip_(IMG_SHAPE)
    assert torch.equal(hb.tensor, torch.tensor([[0.0, 10, 400, 300]]))
    rb = RotatedBoxes(torch.tensor([[-5.0, 10, 4, 2, 0]]))
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # a no-op that is the intended behaviour: no warning
        rb.clip_(IMG_SHAPE)
    assert torch.equal(rb.tensor, torch.tensor([[-5.0, 10, 4, 2, 0]]))


def test_resize_clips_rotated_boxes_by_default_silently():
    """``Resize`` clips by default (``clip_object_border=True``): rotated ground truth
    crossing the border stays whole, scaled, and no warning is emitted for it."""
    from ai4rs.datasets.transforms import Resize

    boxes = RotatedBoxes(torch.tensor([[-5.0, 10, 8, 4, 0.5], [50, 60, 10, 6, -0.2]]))
    results = dict(img=np.zeros((100, 200, 3), np.uint8), gt_bboxes=boxes.clone())
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        results = Resize(scale=(400, 200), keep_ratio=True)(results)
    expected = torch.tensor([[-10.0, 20, 16, 8, 0.5], [100, 120, 20, 12, -0.2]])
    torch.testing.assert_close(results['gt_bboxes'].tensor, expected)


# ------------------------------------------------------------------------ measures / queries


def test_areas_widths_heights_centers():
    rb = RotatedBoxes(torch.tensor([[3.0, 4, 6, 2, 0.7]], dtype=torch.float64))
    qb = rb.convert_to('qbox')
    torch.testing.assert_close(qb.areas, rb.areas)
    torch.testing.assert_close(qb.centers, rb.centers)
    with pytest.warns(UserWarning):
        torch.testing.assert_close(qb.widths, torch.sqrt(rb.areas))
    hb = HorizontalBoxes(torch.tensor([[1.0, 2, 4, 8]]))
    assert hb.areas.item() == 18 and hb.widths.item() == 3 and hb.heights.item() == 6
    assert torch.equal(hb.centers, torch.tensor([[2.5, 5.0]]))


def test_is_inside():
    rb = RotatedBoxes(torch.tensor([[-1.0, 5, 50, 50, 0], [10, 10, 4, 4, 0], [401, 5, 2, 2, 0]]))
    assert rb.is_inside(IMG_SHAPE).tolist() == [False, True, False]
    assert rb.is_inside(IMG_SHAPE, allowed_border=2).tolist() == [True, True, True]
    qb = rb.convert_to('qbox')
    assert qb.is_inside(IMG_SHAPE).tolist() == [False, True, False]
    hb = HorizontalBoxes(torch.tensor([[-5.0, 0, 5, 5], [10, 10, 20, 20], [-10, 0, -1, 5]]))
    assert hb.is_inside(IMG_SHAPE).tolist() == [True, True, False]
    assert hb.is_inside(IMG_SHAPE, all_inside=True).tolist() == [False, True, False]


@pytest.mark.parametrize('kind', ['hbox', 'rbox', 'qbox'])
def test_find_inside_points_matches_shapely(kind):
    cls, make = BUILDERS[kind]
    rng = np.random.default_rng(6)
    boxes = cls(make(rng, 20))
    points = torch.from_numpy(rng.uniform(0, 400, (400, 2)))
    polys = shapely.polygons(corners(boxes).numpy())
    expected = shapely.contains_xy(polys[None], points[:, :1].numpy(), points[:, 1:].numpy())
    if kind == 'hbox':
        out = boxes.find_inside_points(points)
    else:
        out = boxes.find_inside_points(points, eps=0)
        # eps moves the border inwards (by eps along each side for rbox)
        assert (boxes.find_inside_points(points, eps=1.0) <= out).all()
    assert expected.any()
    np.testing.assert_array_equal(out.numpy(), expected)
    aligned = (
        boxes.find_inside_points(points[:20], is_aligned=True)
        if kind == 'hbox'
        else boxes.find_inside_points(points[:20], is_aligned=True, eps=0)
    )
    np.testing.assert_array_equal(aligned.numpy(), np.diagonal(expected[:20]))


def test_overlaps():
    r1 = RotatedBoxes(torch.tensor([[0.0, 0, 2, 2, 0]]))
    r2 = RotatedBoxes(torch.tensor([[1.0, 0, 2, 2, 0], [0, 0, 2, 2, math.pi / 2]]))
    torch.testing.assert_close(RotatedBoxes.overlaps(r1, r2), torch.tensor([[1 / 3, 1.0]]))
    h2 = HorizontalBoxes(torch.tensor([[0.0, -1, 2, 1]]))
    torch.testing.assert_close(RotatedBoxes.overlaps(r1, h2), torch.tensor([[1 / 3]]))
    torch.testing.assert_close(HorizontalBoxes.overlaps(r1, h2), torch.tensor([[1 / 3]]))
    with pytest.raises(NotImplementedError):
        QuadriBoxes.overlaps(r1, r2)


def test_bbox_overlaps_modes_hand_case():
    a = torch.tensor([[0.0, 0, 2, 2]])
    b = torch.tensor([[1.0, 0, 3, 2], [4, 4, 5, 5]])
    torch.testing.assert_close(bbox_overlaps(a, b), torch.tensor([[1 / 3, 0.0]]))
    torch.testing.assert_close(bbox_overlaps(a, b, mode='iof'), torch.tensor([[0.5, 0.0]]))
    # giou for the disjoint pair: 0 - (25 - 5) / 25
    torch.testing.assert_close(bbox_overlaps(a, b, mode='giou'), torch.tensor([[1 / 3, -0.8]]))
    torch.testing.assert_close(bbox_overlaps(b, b, is_aligned=True), torch.tensor([1.0, 1.0]))
    assert bbox_overlaps(a, b[:0]).shape == (1, 0)


def test_regularize_boxes_method_is_in_place():
    rb = RotatedBoxes(torch.tensor([[0.0, 0, 2, 5, 0.5]]))
    out = rb.regularize_boxes('le90')
    assert out is rb.tensor
    torch.testing.assert_close(out, torch.tensor([[0.0, 0, 5, 2, 0.5 - math.pi / 2]]))
    rb2 = RotatedBoxes(torch.tensor([[0.0, 0, 2, 5, 0.5]]))
    torch.testing.assert_close(rb2.regularize_boxes(width_longer=True, start_angle=-90), out)
    with pytest.raises(ValueError, match='pattern'):
        rb.regularize_boxes('le45')


def test_autocast_box_type_round_trips_numpy_boxes():
    class Shift:
        @autocast_box_type('rbox')
        def transform(self, results):
            assert isinstance(results['gt_bboxes'], RotatedBoxes)
            results['gt_bboxes'].translate_((1.0, 2.0))
            return results

    results = {'gt_bboxes': np.array([[5.0, 5, 2, 1, 0]], dtype=np.float32)}
    out = Shift().transform(results)
    assert isinstance(out['gt_bboxes'], np.ndarray)
    np.testing.assert_allclose(out['gt_bboxes'], [[6.0, 7, 2, 1, 0]])
    boxes = RotatedBoxes(torch.zeros(1, 5))
    assert Shift().transform({'gt_bboxes': boxes})['gt_bboxes'] is boxes
    with pytest.raises(TypeError):
        Shift().transform({'gt_bboxes': [1, 2]})


def test_from_instance_masks():
    rect = RotatedBoxes(torch.tensor([[20.0, 15, 16, 6, 0.4]], dtype=torch.float64))
    polygon = [[rbox2qbox(rect.tensor)[0].numpy()]]
    rbox = RotatedBoxes.from_instance_masks(polygon)
    torch.testing.assert_close(
        rbox.tensor, rect.regularize_boxes('le90').float(), atol=1e-4, rtol=0
    )
    qbox = QuadriBoxes.from_instance_masks(polygon)
    torch.testing.assert_close(qbox.areas, rect.areas.float(), atol=1e-3, rtol=0)
    bitmap = np.zeros((2, 10, 12), dtype=bool)
    bitmap[0, 2:5, 3:9] = True
    hbox = HorizontalBoxes.from_instance_masks(bitmap)
    assert hbox.tensor.tolist() == [[3, 2, 9, 5], [0, 0, 0, 0]]
    rmask = RotatedBoxes.from_instance_masks(bitmap)
    # pixel indices 3..8 x 2..4: a 5 x 2 rectangle of index points centred at (5.5, 3)
    torch.testing.assert_close(rmask.tensor[0], torch.tensor([5.5, 3, 5, 2, 0]))
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert RotatedBoxes.from_instance_masks(np.zeros((0, 4, 4))).shape == (0, 5)
