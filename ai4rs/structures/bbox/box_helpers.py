"""Helpers that accept box objects (and, where stated, plain tensors)."""

from torch import Tensor

from .base_boxes import BaseBoxes


def get_box_tensor(boxes) -> Tensor:
    """The tensor of a box object, or the tensor itself."""
    return boxes.tensor if isinstance(boxes, BaseBoxes) else boxes


def empty_box_as(boxes):
    """Empty boxes (0, box_dim) of the same kind (box object or tensor) as ``boxes``."""
    if isinstance(boxes, BaseBoxes):
        return boxes.empty_boxes()
    return boxes.new_zeros(0, boxes.size(-1))


def get_box_wh(boxes) -> tuple[Tensor, Tensor]:
    """Widths and heights of box objects or of (..., 4) xyxy tensors."""
    if isinstance(boxes, BaseBoxes):
        return boxes.widths, boxes.heights
    return boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]


def scale_boxes(boxes, scale_factor: tuple[float, float]):
    """Boxes of an image resized by ``(sx, sy)``, in their own format, in place.

    Box objects only (``rescale_``): a raw tensor does not say which format it holds; wrap
    it first with :func:`boxes_from_tensor`. For rotated boxes the centre is scaled, w and h
    become the lengths of the scaled edges and the angle follows the scaled h edge (exact
    for isotropic scales; an anisotropic scale makes a parallelogram, approximated so).

    Returns:
        BaseBoxes: ``boxes`` itself, rescaled.
    """
    if not isinstance(boxes, BaseBoxes):
        raise TypeError(
            f'scale_boxes needs a box object (HorizontalBoxes, RotatedBoxes, '
            f'QuadriBoxes), got {type(boxes).__name__}; wrap raw tensors with '
            f'boxes_from_tensor(tensor, box_type)'
        )
    boxes.rescale_(scale_factor)
    return boxes
