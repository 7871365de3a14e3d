"""Drawn labels stay inside the image, are not stacked on each other and avoid the boxes."""

import itertools

import numpy as np

from ai4rs.visualization.local_visualizer import place_labels


def _square(x, y, s=10):
    return [[x, y], [x + s, y], [x + s, y + s], [x, y + s]]


def _overlap(a, b):
    (ax, ay, aw, ah), (bx, by, bw, bh) = a, b
    return ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah


def test_labels_inside_the_image_apart_and_off_the_boxes():
    polygons = np.array(
        [
            _square(2, 1),
            _square(4, 14),
            _square(88, 88),
            _square(-5, 40),
            _square(50, 50),
            _square(51, 52),
        ],
        dtype=float,
    )
    sizes = np.array([[30, 8]] * len(polygons), dtype=float)
    pos = place_labels(polygons, sizes, (100, 100))
    rects = [(x, y, w, h) for (x, y), (w, h) in zip(pos, sizes)]
    boxes = [(p[:, 0].min(), p[:, 1].min(), np.ptp(p[:, 0]), np.ptp(p[:, 1])) for p in polygons]
    for x, y, w, h in rects:
        assert 0 <= x and x + w <= 100 and 0 <= y and y + h <= 100
    for a, b in itertools.combinations(rects, 2):
        assert not _overlap(a, b), (a, b)
    for rect in rects:
        assert not any(_overlap(rect, box) for box in boxes), rect
    # by hand: just above the box when there is room (box top 50, label height 8 -> 42);
    # the box at the top edge: not above (clamped onto itself), not just below (y 11..19 hits
    # box 1 at y 14..24), nor one step lower (19..27): two steps lower, y 27
    assert tuple(pos[4]) == (50, 42)
    assert tuple(pos[0]) == (2, 27)
    assert tuple(pos[2]) == (70, 80)
    # the overlapping box's label cannot go above (label 4 is there): below its box, y 62
    assert tuple(pos[5]) == (51, 62)


def test_a_crowded_image_still_keeps_labels_inside_and_apart():
    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 60, (8, 1, 2)) + np.array(_square(0, 0, 8))[None]
    sizes = np.array([[20, 6]] * 8, dtype=float)
    pos = place_labels(corners, sizes, (64, 64))
    rects = [(x, y, w, h) for (x, y), (w, h) in zip(pos, sizes)]
    for x, y, w, h in rects:
        assert 0 <= x and x + w <= 64 and 0 <= y and y + h <= 64
    for a, b in itertools.combinations(rects, 2):
        assert not _overlap(a, b), (a, b)
