"""The per-object entries of a results dict, read and filtered the same way by every transform.

An image's objects are spread over parallel keys, one entry per object: ``gt_bboxes`` (a
box object, (N, box_dim)), ``gt_bboxes_labels`` np.int64 (N,), ``gt_ignore_flags`` np.bool_
(N,) and, when loaded, ``gt_masks`` (``PolygonMasks`` of N objects). A transform that drops
objects must drop them from all of these at once, or labels and masks stop naming their box.
"""

import numpy as np

from ai4rs.structures.bbox import BaseBoxes

# Keys that hold one entry per ground-truth object, filtered together (mmdet 3.x's set).
INSTANCE_KEYS = ('gt_bboxes', 'gt_bboxes_labels', 'gt_ignore_flags', 'gt_masks')


def get_gt_boxes(results: dict, transform: str) -> BaseBoxes | None:
    """``results['gt_bboxes']`` as a box object, or None if absent.

    Raises:
        TypeError: the boxes are a plain array (load them with
            ``LoadAnnotations(box_type=...)``).
    """
    boxes = results.get('gt_bboxes', None)
    if boxes is None:
        return None
    if not isinstance(boxes, BaseBoxes):
        raise TypeError(
            f"{transform}: results['gt_bboxes'] must be a box object (HorizontalBoxes, "
            f'RotatedBoxes, QuadriBoxes), got {type(boxes).__name__}; load it with '
            f"LoadAnnotations(box_type='hbox'|'rbox'|'qbox')"
        )
    return boxes


def keep_instances(results: dict, keep: np.ndarray) -> None:
    """Keep only the objects where the boolean array ``keep`` (N,) is True, in every key of
    :data:`INSTANCE_KEYS` present (in place).

    Raises:
        ValueError: a present key does not hold N entries (the annotations of the image
            disagree with each other; the key, the counts and the image are named).
    """
    keep = np.asarray(keep, dtype=bool).reshape(-1)
    for key in INSTANCE_KEYS:
        value = results.get(key, None)
        if value is None:
            continue
        if len(value) != len(keep):
            raise ValueError(
                f"results['{key}'] holds {len(value)} objects but {len(keep)} are being "
                f'filtered (image: {results.get("img_path", "?")}); every per-object key must '
                f'hold one entry per object: {INSTANCE_KEYS}'
            )
        results[key] = value[keep]
