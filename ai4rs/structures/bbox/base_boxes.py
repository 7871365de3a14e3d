"""Abstract base class of box types (the mmdet 3.x ``BaseBoxes`` API).

A box object wraps a tensor ``.tensor`` of shape ``(..., box_dim)`` and behaves like it for
indexing, concatenation, device and dtype moves, while protecting the last dimension.
Geometric methods ending in ``_`` modify the boxes in place.
"""
from abc import ABCMeta, abstractmethod
from typing import List, Optional, Sequence, Tuple, Type, TypeVar, Union

import numpy as np
import torch
from torch import BoolTensor, Tensor

T = TypeVar('T', bound='BaseBoxes')
DeviceType = Union[str, torch.device]


class BaseBoxes(metaclass=ABCMeta):
    """Base class of 2D box types.

    Args:
        data (Tensor | np.ndarray | Sequence): Box data of shape ``(..., box_dim)``; an empty
            input becomes ``(0, box_dim)``.
        dtype (torch.dtype, optional): Cast to this dtype.
        device (str | torch.device, optional): Move to this device.
        clone (bool): Copy the data (default) instead of sharing it.
    """

    box_dim: int = 0

    def __init__(self,
                 data: Union[Tensor, np.ndarray, Sequence],
                 dtype: Optional[torch.dtype] = None,
                 device: Optional[DeviceType] = None,
                 clone: bool = True) -> None:
        if not isinstance(data, (np.ndarray, Tensor, Sequence)):
            raise TypeError('boxes should be a Tensor, ndarray or Sequence, but got '
                            f'{type(data)}')
        data = torch.as_tensor(data)
        if device is not None or dtype is not None:
            data = data.to(dtype=dtype, device=device)
        if clone:
            data = data.clone()
        if data.numel() == 0:
            data = data.reshape((-1, self.box_dim))
        if data.dim() < 2 or data.size(-1) != self.box_dim:
            raise ValueError(f'{type(self).__name__} needs data with at least 2 dimensions and '
                             f'a last dimension of {self.box_dim}, but got shape '
                             f'{tuple(data.shape)}.')
        self.tensor = data

    # ------------------------------------------------------------------ conversions
    def convert_to(self, dst_type: Union[str, type]) -> 'BaseBoxes':
        """Convert to another registered box type ('hbox', 'rbox', 'qbox' or a class)."""
        from .box_type import convert_box_type
        return convert_box_type(self, dst_type=dst_type)

    def empty_boxes(self: T, dtype: Optional[torch.dtype] = None,
                    device: Optional[DeviceType] = None) -> T:
        """Empty boxes of the same type: shape ``(0, box_dim)``."""
        return type(self)(self.tensor.new_zeros(0, self.box_dim, dtype=dtype, device=device),
                          clone=False)

    def fake_boxes(self: T, sizes: Tuple[int], fill: float = 0,
                   dtype: Optional[torch.dtype] = None,
                   device: Optional[DeviceType] = None) -> T:
        """Boxes of shape ``sizes`` (last entry = ``box_dim``) filled with ``fill``."""
        return type(self)(self.tensor.new_full(sizes, fill, dtype=dtype, device=device),
                          clone=False)

    # ------------------------------------------------------------------ tensor-like API
    def _check_index(self, index) -> object:
        if isinstance(index, np.ndarray):
            index = torch.as_tensor(index, device=self.device)
        if isinstance(index, Tensor) and index.dtype == torch.bool:
            if index.dim() >= self.tensor.dim():
                raise IndexError('a boolean index must not cover the box dimension')
        elif isinstance(index, tuple):
            if len(index) >= self.tensor.dim():
                raise IndexError('an index tuple must not cover the box dimension')
            if Ellipsis in index and index[-1] is not Ellipsis:
                raise IndexError('Ellipsis is only allowed as the last index item')
        return index

    def __getitem__(self: T, index) -> T:
        boxes = self.tensor[self._check_index(index)]
        if boxes.dim() == 1:
            boxes = boxes.reshape(1, -1)
        return type(self)(boxes, clone=False)

    def __setitem__(self, index, values: 'BaseBoxes') -> None:
        if type(values) is not type(self):
            raise TypeError('The value to be set must be the same box type as self')
        self.tensor[self._check_index(index)] = values.tensor

    def __len__(self) -> int:
        return self.tensor.size(0)

    def __deepcopy__(self, memo):
        other = self.__class__.__new__(self.__class__)
        memo[id(self)] = other
        other.tensor = self.tensor.clone()
        return other

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(\n{self.tensor})'

    def new_tensor(self, *args, **kwargs) -> Tensor:
        return self.tensor.new_tensor(*args, **kwargs)

    def new_full(self, *args, **kwargs) -> Tensor:
        return self.tensor.new_full(*args, **kwargs)

    def new_empty(self, *args, **kwargs) -> Tensor:
        return self.tensor.new_empty(*args, **kwargs)

    def new_ones(self, *args, **kwargs) -> Tensor:
        return self.tensor.new_ones(*args, **kwargs)

    def new_zeros(self, *args, **kwargs) -> Tensor:
        return self.tensor.new_zeros(*args, **kwargs)

    def size(self, dim: Optional[int] = None) -> Union[int, torch.Size]:
        return self.tensor.size() if dim is None else self.tensor.size(dim)

    def dim(self) -> int:
        return self.tensor.dim()

    @property
    def device(self) -> torch.device:
        return self.tensor.device

    @property
    def dtype(self) -> torch.dtype:
        return self.tensor.dtype

    @property
    def shape(self) -> torch.Size:
        return self.tensor.shape

    def numel(self) -> int:
        return self.tensor.numel()

    def numpy(self) -> np.ndarray:
        """The boxes as a numpy array (detached, on the CPU)."""
        return self.tensor.detach().cpu().numpy()

    def to(self: T, *args, **kwargs) -> T:
        return type(self)(self.tensor.to(*args, **kwargs), clone=False)

    def cpu(self: T) -> T:
        return type(self)(self.tensor.cpu(), clone=False)

    def cuda(self: T, *args, **kwargs) -> T:
        return type(self)(self.tensor.cuda(*args, **kwargs), clone=False)

    def clone(self: T) -> T:
        return type(self)(self.tensor)

    def detach(self: T) -> T:
        return type(self)(self.tensor.detach(), clone=False)

    def view(self: T, *shape) -> T:
        return type(self)(self.tensor.view(shape), clone=False)

    def reshape(self: T, *shape) -> T:
        return type(self)(self.tensor.reshape(shape), clone=False)

    def expand(self: T, *sizes) -> T:
        return type(self)(self.tensor.expand(sizes), clone=False)

    def repeat(self: T, *sizes) -> T:
        return type(self)(self.tensor.repeat(sizes), clone=False)

    def _check_dim(self, dim: int, ndim: Optional[int] = None) -> None:
        ndim = self.tensor.dim() if ndim is None else ndim
        if dim == -1 or dim == ndim - 1:
            raise ValueError('the box dimension (the last one) cannot be used here')

    def transpose(self: T, dim0: int, dim1: int) -> T:
        self._check_dim(dim0)
        self._check_dim(dim1)
        return type(self)(self.tensor.transpose(dim0, dim1), clone=False)

    def permute(self: T, *dims) -> T:
        if dims[-1] not in (-1, self.tensor.dim() - 1):
            raise ValueError('permute must keep the box dimension last')
        return type(self)(self.tensor.permute(dims), clone=False)

    def split(self: T, split_size_or_sections, dim: int = 0) -> List[T]:
        self._check_dim(dim)
        return [type(self)(b, clone=False)
                for b in self.tensor.split(split_size_or_sections, dim=dim)]

    def chunk(self: T, chunks: int, dim: int = 0) -> List[T]:
        self._check_dim(dim)
        return [type(self)(b, clone=False) for b in self.tensor.chunk(chunks, dim=dim)]

    def unbind(self: T, dim: int = 0) -> List[T]:
        self._check_dim(dim)
        return [type(self)(b, clone=False) for b in self.tensor.unbind(dim=dim)]

    def flatten(self: T, start_dim: int = 0, end_dim: int = -2) -> T:
        self._check_dim(end_dim)
        return type(self)(self.tensor.flatten(start_dim, end_dim), clone=False)

    def squeeze(self: T, dim: Optional[int] = None) -> T:
        boxes = self.tensor.squeeze() if dim is None else self.tensor.squeeze(dim)
        return type(self)(boxes, clone=False)

    def unsqueeze(self: T, dim: int) -> T:
        if dim == -1 or dim == self.tensor.dim():
            raise ValueError('unsqueeze cannot add a dimension after the box dimension')
        return type(self)(self.tensor.unsqueeze(dim), clone=False)

    @classmethod
    def cat(cls: Type[T], box_list: Sequence[T], dim: int = 0) -> T:
        """Concatenate box objects of this type along ``dim`` (like ``torch.cat``)."""
        if not isinstance(box_list, Sequence) or len(box_list) == 0:
            raise ValueError('box_list should be a non-empty sequence of boxes.')
        if not all(isinstance(b, cls) for b in box_list):
            raise TypeError(f'all items of box_list must be {cls.__name__}')
        box_list[0]._check_dim(dim)
        return cls(torch.cat([b.tensor for b in box_list], dim=dim), clone=False)

    @classmethod
    def stack(cls: Type[T], box_list: Sequence[T], dim: int = 0) -> T:
        """Stack box objects of this type along a new ``dim`` (like ``torch.stack``)."""
        if not isinstance(box_list, Sequence) or len(box_list) == 0:
            raise ValueError('box_list should be a non-empty sequence of boxes.')
        if not all(isinstance(b, cls) for b in box_list):
            raise TypeError(f'all items of box_list must be {cls.__name__}')
        box_list[0]._check_dim(dim, box_list[0].dim() + 1)
        return cls(torch.stack([b.tensor for b in box_list], dim=dim), clone=False)

    # ------------------------------------------------------------------ geometry (abstract)
    @property
    @abstractmethod
    def centers(self) -> Tensor:
        """(..., 2) box centres."""

    @property
    @abstractmethod
    def areas(self) -> Tensor:
        """(...) box areas."""

    @property
    @abstractmethod
    def widths(self) -> Tensor:
        """(...) box widths."""

    @property
    @abstractmethod
    def heights(self) -> Tensor:
        """(...) box heights."""

    @abstractmethod
    def flip_(self, img_shape: Tuple[int, int], direction: str = 'horizontal') -> None:
        """Flip in place in an image of shape ``(h, w)``: 'horizontal', 'vertical' or
        'diagonal'."""

    @abstractmethod
    def translate_(self, distances: Tuple[float, float]) -> None:
        """Translate in place by ``(dx, dy)``."""

    @abstractmethod
    def clip_(self, img_shape: Tuple[int, int]) -> None:
        """Clip in place to an image of shape ``(h, w)``."""

    @abstractmethod
    def rotate_(self, center: Tuple[float, float], angle: float) -> None:
        """Rotate in place about ``center`` by ``angle`` degrees (positive = clockwise on
        screen, i.e. in image coordinates with y down)."""

    @abstractmethod
    def project_(self, homography_matrix: Union[Tensor, np.ndarray]) -> None:
        """Apply a (3, 3) homography in place."""

    @abstractmethod
    def rescale_(self, scale_factor: Tuple[float, float]) -> None:
        """Scale coordinates (centres and sizes) in place by ``(sx, sy)``."""

    @abstractmethod
    def resize_(self, scale_factor: Tuple[float, float]) -> None:
        """Scale box sizes about their centres in place by ``(sx, sy)``."""

    @abstractmethod
    def is_inside(self, img_shape: Tuple[int, int], all_inside: bool = False,
                  allowed_border: int = 0) -> BoolTensor:
        """(...) bool: boxes inside an image of shape ``(h, w)``."""

    @abstractmethod
    def find_inside_points(self, points: Tensor, is_aligned: bool = False) -> BoolTensor:
        """(P, N) bool (or (N,) when aligned): points inside boxes."""

    @staticmethod
    @abstractmethod
    def overlaps(boxes1: 'BaseBoxes', boxes2: 'BaseBoxes', mode: str = 'iou',
                 is_aligned: bool = False, eps: float = 1e-6) -> Tensor:
        """IoU / IoF of two box sets converted to this type: (N, M) or (N,)."""

    @staticmethod
    @abstractmethod
    def from_instance_masks(masks) -> 'BaseBoxes':
        """Boxes enclosing instance masks."""


def rotation_matrix(center: Tuple[float, float], angle: float, like: Tensor) -> Tensor:
    """(2, 3) affine matrix rotating by ``angle`` degrees clockwise on screen about ``center``.

    Equal to ``cv2.getRotationMatrix2D(center, -angle, 1)``: ``p' = R (p - c) + c`` with
    ``R = [[cos a, -sin a], [sin a, cos a]]`` in image coordinates (y down).
    """
    a = np.deg2rad(angle)
    cos, sin = np.cos(a), np.sin(a)
    cx, cy = center
    return like.new_tensor([[cos, -sin, cx - cos * cx + sin * cy],
                            [sin, cos, cy - sin * cx - cos * cy]])


def apply_affine(points: Tensor, matrix: Tensor) -> Tensor:
    """Apply a (2, 3) affine or a (3, 3) projective matrix to points of shape (..., 2)."""
    homo = torch.cat([points, points.new_ones(*points.shape[:-1], 1)], dim=-1)
    out = homo @ matrix.to(points).transpose(0, 1)
    if matrix.size(0) == 3:
        out = out[..., :2] / out[..., 2:3]
    return out


def check_flip_direction(direction: str) -> None:
    if direction not in ('horizontal', 'vertical', 'diagonal'):
        raise ValueError("direction must be 'horizontal', 'vertical' or 'diagonal', but got "
                         f'{direction!r}')


def check_pair(value, name: str) -> Tuple[float, float]:
    if len(value) != 2:
        raise ValueError(f'{name} must have 2 values, but got {value}')
    return float(value[0]), float(value[1])
