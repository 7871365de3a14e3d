"""Polygon instance masks (mmdet 3.x's ``PolygonMasks``, the part the YOLO recipes need).

Coordinates are in pixels, in the pixel-corner convention of the box types (an image of
width ``W`` spans ``[0, W]``). One instance is a list of flat polygon arrays
``[x0, y0, x1, y1, ...]`` (COCO's ``segmentation`` lists), so an object split into several
parts keeps all of them.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import torch

from ai4rs.structures.bbox import HorizontalBoxes


class PolygonMasks:
    """Polygon masks of N instances on an image of ``height`` x ``width`` pixels.

    Args:
        masks (list[list[np.ndarray]]): per instance, its polygons; each polygon is a flat
            (2K,) array ``[x0, y0, ..., x_{K-1}, y_{K-1}]``.
        height (int): image height the masks live in.
        width (int): image width.

    All methods return new objects; the arrays of ``self`` are never modified.
    """

    def __init__(self, masks: list, height: int, width: int) -> None:
        if not isinstance(masks, list):
            raise TypeError(f'PolygonMasks needs a list of instances, got {type(masks).__name__}')
        for i, polys in enumerate(masks):
            if not isinstance(polys, list) or not all(isinstance(p, np.ndarray) for p in polys):
                raise TypeError(
                    f'PolygonMasks: instance {i} must be a list of flat np.ndarray polygons, '
                    f'got {type(polys).__name__}'
                )
        self.masks = masks
        self.height = height
        self.width = width

    # ------------------------------------------------------------------ container
    def __len__(self) -> int:
        return len(self.masks)

    def __iter__(self):
        return iter(self.masks)

    def __getitem__(self, index) -> PolygonMasks:
        """Select instances: an int, a slice, a list / array of ints or a boolean array."""
        if isinstance(index, torch.Tensor):
            index = index.cpu().numpy()
        if isinstance(index, np.ndarray):
            if index.dtype == bool:
                if len(index) != len(self.masks):
                    raise IndexError(
                        f'PolygonMasks: boolean index of length {len(index)} for '
                        f'{len(self.masks)} instances'
                    )
                index = np.flatnonzero(index)
            index = index.tolist()
        if isinstance(index, list):
            masks = [self.masks[i] for i in index]
        elif isinstance(index, slice):
            masks = self.masks[index]
        elif isinstance(index, (int, np.integer)):
            masks = [self.masks[int(index)]]
        else:
            raise TypeError(f'PolygonMasks: unsupported index type {type(index).__name__}')
        return PolygonMasks(masks, self.height, self.width)

    def __repr__(self) -> str:
        return (
            f'{type(self).__name__}(num_masks={len(self.masks)}, height={self.height}, '
            f'width={self.width})'
        )

    @classmethod
    def cat(cls, masks: Sequence[PolygonMasks]) -> PolygonMasks:
        """Concatenate instances; the result has the size of the first element."""
        if isinstance(masks, PolygonMasks) or len(masks) == 0:
            raise ValueError('PolygonMasks.cat needs a non-empty sequence of PolygonMasks')
        if not all(isinstance(m, cls) for m in masks):
            raise TypeError('PolygonMasks.cat: every element must be a PolygonMasks')
        return cls(
            list(itertools.chain(*[m.masks for m in masks])), masks[0].height, masks[0].width
        )

    def _map(self, fn, height: int, width: int) -> PolygonMasks:
        """Apply ``fn`` (a flat polygon -> a flat polygon) to every polygon."""
        return PolygonMasks([[fn(p) for p in polys] for polys in self.masks], height, width)

    # ------------------------------------------------------------------ geometry
    def resize(self, out_shape: tuple[int, int], interpolation: str | None = None) -> PolygonMasks:
        """Scale to an image of ``out_shape`` (h, w): x by ``w / width``, y by ``h / height``
        (``interpolation`` is accepted for mmdet compatibility; polygons need none)."""
        out_h, out_w = out_shape
        sx, sy = out_w / self.width, out_h / self.height
        return self._map(lambda p: scale_polygon(p, sx, sy), out_h, out_w)

    def rescale(self, scale: float, interpolation: str | None = None) -> PolygonMasks:
        """Multiply all coordinates by ``scale``; the size becomes
        ``(int(height * scale + 0.5), int(width * scale + 0.5))``."""
        out_h = int(self.height * scale + 0.5)
        out_w = int(self.width * scale + 0.5)
        return self._map(lambda p: scale_polygon(p, scale, scale), out_h, out_w)

    def flip(self, flip_direction: str = 'horizontal') -> PolygonMasks:
        """Mirror: x -> width - x ('horizontal'), y -> height - y ('vertical'), or both
        ('diagonal')."""
        if flip_direction not in ('horizontal', 'vertical', 'diagonal'):
            raise ValueError(f'PolygonMasks.flip: unknown direction {flip_direction!r}')

        def flip_one(p: np.ndarray) -> np.ndarray:
            p = p.copy()
            if flip_direction in ('horizontal', 'diagonal'):
                p[0::2] = self.width - p[0::2]
            if flip_direction in ('vertical', 'diagonal'):
                p[1::2] = self.height - p[1::2]
            return p

        return self._map(flip_one, self.height, self.width)

    def translate(
        self,
        out_shape: tuple[int, int],
        offset: float,
        direction: str = 'horizontal',
        border_value=None,
        interpolation: str | None = None,
    ) -> PolygonMasks:
        """Shift x ('horizontal') or y ('vertical') by ``offset`` and clip that coordinate to
        the new image ``out_shape`` (h, w), as mmdet does (``border_value`` must be None or 0
        and ``interpolation`` is unused, as mmdet)."""
        if border_value not in (None, 0):
            raise ValueError(
                f'PolygonMasks.translate: border_value must be None or 0, got {border_value}'
            )
        out_h, out_w = out_shape
        if direction not in ('horizontal', 'vertical'):
            raise ValueError(f'PolygonMasks.translate: unknown direction {direction!r}')
        axis, limit = (0, out_w) if direction == 'horizontal' else (1, out_h)

        def shift(p: np.ndarray) -> np.ndarray:
            p = p.copy()
            p[axis::2] = np.clip(p[axis::2] + offset, 0, limit)
            return p

        return self._map(shift, out_h, out_w)

    def pad(self, out_shape: tuple[int, int], pad_val: int = 0) -> PolygonMasks:
        """Padding at the bottom / right: the same polygons on an image of ``out_shape``."""
        return PolygonMasks(self.masks, *out_shape)

    def crop(self, bbox: np.ndarray) -> PolygonMasks:
        """Move the origin to the top-left of ``bbox`` [x1, y1, x2, y2] (clipped to the
        image); the points are not clipped (as mmdet)."""
        bbox = np.asarray(bbox, dtype=np.float64).copy()
        bbox[0::2] = np.clip(bbox[0::2], 0, self.width)
        bbox[1::2] = np.clip(bbox[1::2], 0, self.height)
        x1, y1, x2, y2 = bbox
        w, h = max(x2 - x1, 1), max(y2 - y1, 1)
        return self._map(lambda p: translate_polygon(p, -x1, -y1), h, w)

    def clip(self, height: int, width: int) -> PolygonMasks:
        """Clamp x to [0, width] and y to [0, height]; the result has that size."""

        def clip_one(p: np.ndarray) -> np.ndarray:
            p = p.copy()
            p[0::2] = p[0::2].clip(0, width)
            p[1::2] = p[1::2].clip(0, height)
            return p

        return self._map(clip_one, height, width)

    def project(self, matrix: np.ndarray, height: int, width: int) -> PolygonMasks:
        """Map every point with the (3, 3) homography ``matrix`` (no clipping)."""
        return self._map(lambda p: warp_polygon(p, matrix), height, width)

    def resample(self, num: int) -> PolygonMasks:
        """Each polygon, closed, re-sampled to ``num`` points (see :func:`resample_polygon`)."""
        return self._map(lambda p: resample_polygon(p, num), self.height, self.width)

    @property
    def areas(self) -> np.ndarray:
        """(N,) float64: per instance the sum of its polygons' shoelace areas."""
        return np.asarray(
            [sum(polygon_area(p) for p in polys) for polys in self.masks], dtype=np.float64
        )

    def get_bboxes(self, dst_type: str = 'hbox') -> HorizontalBoxes:
        """The tight (N, 4) ``HorizontalBoxes`` [x1, y1, x2, y2] around each instance's
        points (mmdet's ``get_bboxes``); only 'hbox' is supported."""
        if dst_type not in ('hbox', HorizontalBoxes):
            raise ValueError(f'PolygonMasks.get_bboxes: only dst_type="hbox", got {dst_type!r}')
        return HorizontalBoxes(polygons_to_hboxes(self.masks))

    def to_ndarray(self) -> np.ndarray:
        """(N, height, width) uint8 bitmaps rasterised with pycocotools (as mmdet)."""
        from pycocotools import mask as mask_utils

        if len(self.masks) == 0:
            return np.zeros((0, self.height, self.width), dtype=np.uint8)
        out = []
        for polys in self.masks:
            rles = mask_utils.frPyObjects(
                [p.astype(np.float64).tolist() for p in polys], self.height, self.width
            )
            out.append(mask_utils.decode(mask_utils.merge(rles)).astype(np.uint8))
        return np.stack(out)


# ---------------------------------------------------------------------- pure functions
def scale_polygon(poly: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """A flat polygon with x multiplied by ``sx`` and y by ``sy``."""
    p = poly.copy()
    p[0::2] = p[0::2] * sx
    p[1::2] = p[1::2] * sy
    return p


def translate_polygon(poly: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """A flat polygon shifted by (dx, dy)."""
    p = poly.copy()
    p[0::2] = p[0::2] + dx
    p[1::2] = p[1::2] + dy
    return p


def polygon_area(poly: np.ndarray) -> float:
    """Shoelace area of a flat polygon."""
    x, y = poly[0::2], poly[1::2]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def resample_polygon(poly: np.ndarray, num: int) -> np.ndarray:
    """Close a flat polygon (append its first point) and re-sample it to ``num`` points,
    linearly interpolated at equal steps of the vertex index (mmyolo's / YOLOv5's
    ``resample_segments``, which spaces points by vertex index, not by arc length).

    Returns:
        np.ndarray: (2 * num,) float64 ``[x0, y0, ...]``; the first and last points are the
        first vertex.
    """
    pts = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
    pts = np.concatenate([pts, pts[:1]], axis=0)
    t = np.linspace(0, len(pts) - 1, num)
    knots = np.arange(len(pts))
    xs = np.interp(t, knots, pts[:, 0])
    ys = np.interp(t, knots, pts[:, 1])
    return np.stack([xs, ys], axis=1).reshape(-1)


def warp_polygon(poly: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Map a flat polygon's points with a (3, 3) homography (divided by the third row)."""
    pts = np.asarray(poly).reshape(-1, 2)
    homo = np.concatenate([pts, np.ones((len(pts), 1), dtype=pts.dtype)], axis=1)
    out = homo @ np.asarray(matrix).T
    return (out[:, :2] / out[:, 2:3]).reshape(-1)


def polygons_to_hboxes(masks: list) -> np.ndarray:
    """(N, 4) float32 tight boxes [x1, y1, x2, y2] around each instance's polygon points.

    As mmdet's ``HorizontalBoxes.from_instance_masks`` for polygons, the maximum is at least
    0; an instance without points gets zeros (mmdet: ``[2W, 2H, 0, 0]``).
    """
    boxes = np.zeros((len(masks), 4), dtype=np.float32)
    for i, polys in enumerate(masks):
        pts = [np.asarray(p, dtype=np.float32).reshape(-1, 2) for p in polys]
        pts = [p for p in pts if len(p)]
        if not pts:
            continue
        pts = np.concatenate(pts, axis=0)
        boxes[i, :2] = pts.min(axis=0)
        boxes[i, 2:] = np.maximum(pts.max(axis=0), 0)
    return boxes


def boxes_of_points_inside(masks: list, height: float, width: float) -> np.ndarray:
    """(N, 4) float32 boxes around each instance's points that lie inside
    ``[0, width] x [0, height]`` (mmyolo's ``segment2box``); zeros where none is inside."""
    boxes = np.zeros((len(masks), 4), dtype=np.float32)
    for i, polys in enumerate(masks):
        lo = np.array([np.inf, np.inf], dtype=np.float32)
        hi = np.array([-np.inf, -np.inf], dtype=np.float32)
        for p in polys:
            pts = np.asarray(p, dtype=np.float32).reshape(-1, 2)
            inside = (
                (pts[:, 0] >= 0) & (pts[:, 1] >= 0) & (pts[:, 0] <= width) & (pts[:, 1] <= height)
            )
            pts = pts[inside]
            if len(pts) == 0:
                continue
            lo = np.minimum(lo, pts.min(axis=0))
            hi = np.maximum(hi, pts.max(axis=0))
        if np.isfinite(lo).all():
            boxes[i, :2], boxes[i, 2:] = lo, hi
    return boxes


def merge_polygon_segments(polys: list[np.ndarray]) -> np.ndarray:
    """Join an object's polygons into one flat polygon (mmyolo's / YOLOv5's
    ``merge_multi_segment``).

    Consecutive segments are linked at their closest pair of points; the path walks forward
    through the segments (first and last ones whole, the middle ones up to their exit point)
    and back through the remaining part of the middle ones, so the result visits every point.

    Args:
        polys: flat polygons (2K_i,), at least one.

    Returns:
        np.ndarray: one flat polygon (float64).
    """
    segs = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in polys]
    n = len(segs)
    if n == 1:
        return segs[0].reshape(-1)
    links: list[list[int]] = [[] for _ in range(n)]
    for i in range(1, n):
        d = ((segs[i - 1][:, None, :] - segs[i][None, :, :]) ** 2).sum(-1)
        a, b = np.unravel_index(int(np.argmin(d)), d.shape)
        links[i - 1].append(int(a))
        links[i].append(int(b))
    path = []
    for i, idx in enumerate(links):
        if len(idx) == 2 and idx[0] > idx[1]:
            idx = idx[::-1]
            segs[i] = segs[i][::-1, :]
        segs[i] = np.roll(segs[i], -idx[0], axis=0)
        segs[i] = np.concatenate([segs[i], segs[i][:1]])
        if i in (0, n - 1):
            path.append(segs[i])
        else:
            path.append(segs[i][: idx[1] - idx[0] + 1])
    for i in range(n - 2, 0, -1):
        path.append(segs[i][abs(links[i][1] - links[i][0]) :])
    return np.concatenate(path).reshape(-1)
