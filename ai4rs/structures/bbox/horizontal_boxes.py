"""Horizontal boxes (x1, y1, x2, y2): mmdet 3.x ``HorizontalBoxes``, registered as 'hbox'."""

import numpy as np
import torch
from torch import BoolTensor, Tensor

from .base_boxes import (
    BaseBoxes,
    DeviceType,
    apply_affine,
    check_flip_direction,
    check_pair,
    register_box,
    rotation_matrix,
)
from .bbox_overlaps import bbox_overlaps
from .geometry import bbox_cxcywh_to_xyxy, bbox_xyxy_to_cxcywh
from .mask_points import mask_point_sets


@register_box(name='hbox')
class HorizontalBoxes(BaseBoxes):
    """Axis-aligned boxes, (..., 4) as ``(x1, y1, x2, y2)``.

    Args:
        data (Tensor | np.ndarray | Sequence): (..., 4) box data.
        dtype (torch.dtype, optional): Cast to this dtype.
        device (str | torch.device, optional): Move to this device.
        clone (bool): Copy the data. Defaults to True.
        in_mode (str, optional): 'xyxy' (default) or 'cxcywh'; 'cxcywh' data is converted.
    """

    box_dim: int = 4

    def __init__(
        self,
        data,
        dtype: torch.dtype | None = None,
        device: DeviceType | None = None,
        clone: bool = True,
        in_mode: str | None = None,
    ) -> None:
        super().__init__(data=data, dtype=dtype, device=device, clone=clone)
        if in_mode is not None:
            if in_mode not in ('xyxy', 'cxcywh'):
                raise ValueError(f"in_mode must be 'xyxy' or 'cxcywh', but got {in_mode!r}")
            if in_mode == 'cxcywh':
                self.tensor = self.cxcywh_to_xyxy(self.tensor)

    cxcywh_to_xyxy = staticmethod(bbox_cxcywh_to_xyxy)
    xyxy_to_cxcywh = staticmethod(bbox_xyxy_to_cxcywh)

    @property
    def cxcywh(self) -> Tensor:
        """(..., 4) boxes as ``(cx, cy, w, h)``."""
        return self.xyxy_to_cxcywh(self.tensor)

    @property
    def centers(self) -> Tensor:
        return (self.tensor[..., :2] + self.tensor[..., 2:]) / 2

    @property
    def areas(self) -> Tensor:
        return self.widths * self.heights

    @property
    def widths(self) -> Tensor:
        return self.tensor[..., 2] - self.tensor[..., 0]

    @property
    def heights(self) -> Tensor:
        return self.tensor[..., 3] - self.tensor[..., 1]

    def flip_(self, img_shape: tuple[int, int], direction: str = 'horizontal') -> None:
        """Flip in place: x -> W - x (horizontal), y -> H - y (vertical), or both."""
        check_flip_direction(direction)
        boxes = self.tensor
        old = boxes.clone()
        if direction in ('horizontal', 'diagonal'):
            boxes[..., 0] = img_shape[1] - old[..., 2]
            boxes[..., 2] = img_shape[1] - old[..., 0]
        if direction in ('vertical', 'diagonal'):
            boxes[..., 1] = img_shape[0] - old[..., 3]
            boxes[..., 3] = img_shape[0] - old[..., 1]

    def translate_(self, distances: tuple[float, float]) -> None:
        dx, dy = check_pair(distances, 'distances')
        self.tensor = self.tensor + self.tensor.new_tensor([dx, dy, dx, dy])

    def clip_(self, img_shape: tuple[int, int]) -> None:
        """Clamp x to [0, W] and y to [0, H] in place."""
        boxes = self.tensor
        boxes[..., 0::2] = boxes[..., 0::2].clamp(0, img_shape[1])
        boxes[..., 1::2] = boxes[..., 1::2].clamp(0, img_shape[0])

    def rotate_(self, center: tuple[float, float], angle: float) -> None:
        """Rotate the corners (``angle`` degrees, clockwise on screen) and take their
        enclosing axis-aligned box."""
        corners = apply_affine(
            self.hbox2corner(self.tensor), rotation_matrix(center, angle, self.tensor)
        )
        self.tensor = self.corner2hbox(corners)

    def project_(self, homography_matrix: Tensor | np.ndarray) -> None:
        """Project the corners with a (3, 3) homography and take their enclosing box."""
        matrix = torch.as_tensor(homography_matrix)
        if matrix.shape != (3, 3):
            raise ValueError(f'homography_matrix must be (3, 3), but got {tuple(matrix.shape)}')
        self.tensor = self.corner2hbox(apply_affine(self.hbox2corner(self.tensor), matrix))

    @staticmethod
    def hbox2corner(boxes: Tensor) -> Tensor:
        """(..., 4) -> (..., 4, 2) corners ``(x1,y1), (x2,y1), (x1,y2), (x2,y2)``."""
        x1, y1, x2, y2 = torch.split(boxes, 1, dim=-1)
        corners = torch.cat([x1, y1, x2, y1, x1, y2, x2, y2], dim=-1)
        return corners.reshape(*corners.shape[:-1], 4, 2)

    @staticmethod
    def corner2hbox(corners: Tensor) -> Tensor:
        """(..., K, 2) points -> (..., 4) enclosing boxes."""
        if corners.numel() == 0:
            return corners.new_zeros((*corners.shape[:-2], 4))
        return torch.cat([corners.amin(dim=-2), corners.amax(dim=-2)], dim=-1)

    def rescale_(self, scale_factor: tuple[float, float]) -> None:
        sx, sy = check_pair(scale_factor, 'scale_factor')
        self.tensor = self.tensor * self.tensor.new_tensor([sx, sy, sx, sy])

    def resize_(self, scale_factor: tuple[float, float]) -> None:
        sx, sy = check_pair(scale_factor, 'scale_factor')
        ctr = self.centers
        wh = (self.tensor[..., 2:] - self.tensor[..., :2]) * self.tensor.new_tensor([sx, sy])
        self.tensor = torch.cat([ctr - wh / 2, ctr + wh / 2], dim=-1)

    def is_inside(
        self, img_shape: tuple[int, int], all_inside: bool = False, allowed_border: int = 0
    ) -> BoolTensor:
        """Boxes overlapping the image (or entirely inside it with ``all_inside``), with a
        tolerance of ``allowed_border`` pixels (mmdet's inequalities)."""
        img_h, img_w = img_shape
        b = self.tensor
        if all_inside:
            return (
                (b[..., 0] >= -allowed_border)
                & (b[..., 1] >= -allowed_border)
                & (b[..., 2] < img_w + allowed_border)
                & (b[..., 3] < img_h + allowed_border)
            )
        return (
            (b[..., 0] < img_w + allowed_border)
            & (b[..., 1] < img_h + allowed_border)
            & (b[..., 2] > -allowed_border)
            & (b[..., 3] > -allowed_border)
        )

    def find_inside_points(self, points: Tensor, is_aligned: bool = False) -> BoolTensor:
        """Points (P, 2) inside boxes (N, 4), borders included: (P, N), or (N,) when
        aligned."""
        boxes = self.tensor
        if boxes.dim() != 2:
            raise ValueError('find_inside_points needs boxes of shape (N, 4)')
        if not is_aligned:
            boxes, points = boxes[None], points[:, None]
        elif boxes.size(0) != points.size(0):
            raise ValueError('is_aligned=True needs as many points as boxes')
        x1, y1, x2, y2 = boxes.unbind(dim=-1)
        return (
            (points[..., 0] >= x1)
            & (points[..., 0] <= x2)
            & (points[..., 1] >= y1)
            & (points[..., 1] <= y2)
        )

    @staticmethod
    def overlaps(
        boxes1: BaseBoxes,
        boxes2: BaseBoxes,
        mode: str = 'iou',
        is_aligned: bool = False,
        eps: float = 1e-6,
    ) -> Tensor:
        """IoU / IoF / GIoU of the boxes converted to 'hbox' (mmdet's ``bbox_overlaps``)."""
        boxes1, boxes2 = boxes1.convert_to('hbox'), boxes2.convert_to('hbox')
        return bbox_overlaps(
            boxes1.tensor, boxes2.tensor, mode=mode, is_aligned=is_aligned, eps=eps
        )

    @staticmethod
    def from_instance_masks(masks) -> 'HorizontalBoxes':
        """Enclosing boxes of bitmap masks (``x_max + 1``, ``y_max + 1`` so the last pixel is
        covered, as mmdet) or polygon masks; empty masks give zeros. See
        :mod:`.mask_points` for accepted inputs."""
        is_bitmap = isinstance(getattr(masks, 'masks', masks), np.ndarray)
        boxes = np.zeros((0, 4), dtype=np.float32)
        rows = []
        for pts in mask_point_sets(masks):
            if len(pts) == 0:
                rows.append([0, 0, 0, 0])
                continue
            lo, hi = pts.min(axis=0), pts.max(axis=0) + (1 if is_bitmap else 0)
            rows.append([lo[0], lo[1], hi[0], hi[1]])
        if rows:
            boxes = np.asarray(rows, dtype=np.float32)
        return HorizontalBoxes(boxes)
