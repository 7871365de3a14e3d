"""Abstract base class of box types (the mmdet 3.x ``BaseBoxes`` API).

A box object wraps a tensor ``.tensor`` of shape ``(..., box_dim)`` and behaves like it for
indexing, concatenation, device and dtype moves, while protecting the last dimension.
Geometric methods ending in ``_`` modify the boxes in place.
"""

from abc import ABCMeta, abstractmethod
from collections.abc import Callable, Sequence
from typing import TypeVar, Union

import numpy as np
import torch
from torch import BoolTensor, Tensor

T = TypeVar('T', bound='BaseBoxes')
DeviceType = str | torch.device


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

    def __init__(
        self,
        data: Tensor | np.ndarray | Sequence,
        dtype: torch.dtype | None = None,
        device: DeviceType | None = None,
        clone: bool = True,
    ) -> None:
        if not isinstance(data, (np.ndarray, Tensor, Sequence)):
            raise TypeError(f'boxes should be a Tensor, ndarray or Sequence, but got {type(data)}')
        data = torch.as_tensor(data)
        if device is not None or dtype is not None:
            data = data.to(dtype=dtype, device=device)
        if clone:
            data = data.clone()
        if data.numel() == 0:
            data = data.reshape((-1, self.box_dim))
        if data.dim() < 2 or data.size(-1) != self.box_dim:
            raise ValueError(
                f'{type(self).__name__} needs data with at least 2 dimensions and '
                f'a last dimension of {self.box_dim}, but got shape '
                f'{tuple(data.shape)}.'
            )
        self.tensor = data

    # ------------------------------------------------------------------ conversions
    def convert_to(self, dst_type: str | type) -> 'BaseBoxes':
        """Convert to another registered box type ('hbox', 'rbox', 'qbox' or a class)."""
        return convert_box_type(self, dst_type=dst_type)

    def empty_boxes(
        self: T, dtype: torch.dtype | None = None, device: DeviceType | None = None
    ) -> T:
        """Empty boxes of the same type: shape ``(0, box_dim)``."""
        return type(self)(
            self.tensor.new_zeros(0, self.box_dim, dtype=dtype, device=device), clone=False
        )

    def fake_boxes(
        self: T,
        sizes: tuple[int],
        fill: float = 0,
        dtype: torch.dtype | None = None,
        device: DeviceType | None = None,
    ) -> T:
        """Boxes of shape ``sizes`` (last entry = ``box_dim``) filled with ``fill``."""
        return type(self)(
            self.tensor.new_full(sizes, fill, dtype=dtype, device=device), clone=False
        )

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

    def size(self, dim: int | None = None) -> int | torch.Size:
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

    def _check_dim(self, dim: int, ndim: int | None = None) -> None:
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

    def split(self: T, split_size_or_sections, dim: int = 0) -> list[T]:
        self._check_dim(dim)
        return [
            type(self)(b, clone=False) for b in self.tensor.split(split_size_or_sections, dim=dim)
        ]

    def chunk(self: T, chunks: int, dim: int = 0) -> list[T]:
        self._check_dim(dim)
        return [type(self)(b, clone=False) for b in self.tensor.chunk(chunks, dim=dim)]

    def unbind(self: T, dim: int = 0) -> list[T]:
        self._check_dim(dim)
        return [type(self)(b, clone=False) for b in self.tensor.unbind(dim=dim)]

    def flatten(self: T, start_dim: int = 0, end_dim: int = -2) -> T:
        self._check_dim(end_dim)
        return type(self)(self.tensor.flatten(start_dim, end_dim), clone=False)

    def squeeze(self: T, dim: int | None = None) -> T:
        boxes = self.tensor.squeeze() if dim is None else self.tensor.squeeze(dim)
        return type(self)(boxes, clone=False)

    def unsqueeze(self: T, dim: int) -> T:
        if dim == -1 or dim == self.tensor.dim():
            raise ValueError('unsqueeze cannot add a dimension after the box dimension')
        return type(self)(self.tensor.unsqueeze(dim), clone=False)

    @classmethod
    def cat(cls: type[T], box_list: Sequence[T], dim: int = 0) -> T:
        """Concatenate box objects of this type along ``dim`` (like ``torch.cat``)."""
        if not isinstance(box_list, Sequence) or len(box_list) == 0:
            raise ValueError('box_list should be a non-empty sequence of boxes.')
        if not all(isinstance(b, cls) for b in box_list):
            raise TypeError(f'all items of box_list must be {cls.__name__}')
        box_list[0]._check_dim(dim)
        return cls(torch.cat([b.tensor for b in box_list], dim=dim), clone=False)

    @classmethod
    def stack(cls: type[T], box_list: Sequence[T], dim: int = 0) -> T:
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
    def flip_(self, img_shape: tuple[int, int], direction: str = 'horizontal') -> None:
        """Flip in place in an image of shape ``(h, w)``: 'horizontal', 'vertical' or
        'diagonal'."""

    @abstractmethod
    def translate_(self, distances: tuple[float, float]) -> None:
        """Translate in place by ``(dx, dy)``."""

    @abstractmethod
    def clip_(self, img_shape: tuple[int, int]) -> None:
        """Clip in place to an image of shape ``(h, w)``."""

    @abstractmethod
    def rotate_(self, center: tuple[float, float], angle: float) -> None:
        """Rotate in place about ``center`` by ``angle`` degrees (positive = clockwise on
        screen, i.e. in image coordinates with y down)."""

    @abstractmethod
    def project_(self, homography_matrix: Tensor | np.ndarray) -> None:
        """Apply a (3, 3) homography in place."""

    @abstractmethod
    def rescale_(self, scale_factor: tuple[float, float]) -> None:
        """Scale coordinates (centres and sizes) in place by ``(sx, sy)``."""

    @abstractmethod
    def resize_(self, scale_factor: tuple[float, float]) -> None:
        """Scale box sizes about their centres in place by ``(sx, sy)``."""

    @abstractmethod
    def is_inside(
        self, img_shape: tuple[int, int], all_inside: bool = False, allowed_border: int = 0
    ) -> BoolTensor:
        """(...) bool: boxes inside an image of shape ``(h, w)``."""

    @abstractmethod
    def find_inside_points(self, points: Tensor, is_aligned: bool = False) -> BoolTensor:
        """(P, N) bool (or (N,) when aligned): points inside boxes."""

    @staticmethod
    @abstractmethod
    def overlaps(
        boxes1: 'BaseBoxes',
        boxes2: 'BaseBoxes',
        mode: str = 'iou',
        is_aligned: bool = False,
        eps: float = 1e-6,
    ) -> Tensor:
        """IoU / IoF of two box sets converted to this type: (N, M) or (N,)."""

    @staticmethod
    @abstractmethod
    def from_instance_masks(masks) -> 'BaseBoxes':
        """Boxes enclosing instance masks."""


def rotation_matrix(center: tuple[float, float], angle: float, like: Tensor) -> Tensor:
    """(2, 3) affine matrix rotating by ``angle`` degrees clockwise on screen about ``center``.

    Equal to ``cv2.getRotationMatrix2D(center, -angle, 1)``: ``p' = R (p - c) + c`` with
    ``R = [[cos a, -sin a], [sin a, cos a]]`` in image coordinates (y down).
    """
    a = np.deg2rad(angle)
    cos, sin = np.cos(a), np.sin(a)
    cx, cy = center
    return like.new_tensor(
        [[cos, -sin, cx - cos * cx + sin * cy], [sin, cos, cy - sin * cx - cos * cy]]
    )


def apply_affine(points: Tensor, matrix: Tensor) -> Tensor:
    """Apply a (2, 3) affine or a (3, 3) projective matrix to points of shape (..., 2)."""
    homo = torch.cat([points, points.new_ones(*points.shape[:-1], 1)], dim=-1)
    out = homo @ matrix.to(points).transpose(0, 1)
    if matrix.size(0) == 3:
        out = out[..., :2] / out[..., 2:3]
    return out


def check_flip_direction(direction: str) -> None:
    if direction not in ('horizontal', 'vertical', 'diagonal'):
        raise ValueError(
            f"direction must be 'horizontal', 'vertical' or 'diagonal', but got {direction!r}"
        )


def check_pair(value, name: str) -> tuple[float, float]:
    if len(value) != 2:
        raise ValueError(f'{name} must have 2 values, but got {value}')
    return float(value[0]), float(value[1])


# ----------------------------------------------------------------- registry of box types
BoxType = Union[np.ndarray, Tensor, 'BaseBoxes']

box_types: dict = {}
_box_type_to_name: dict = {}
box_converters: dict = {}


def _register_box(name: str, box_type: type, force: bool = False) -> None:
    if not (isinstance(box_type, type) and issubclass(box_type, BaseBoxes)):
        raise TypeError(f'box_type must be a subclass of BaseBoxes, but got {box_type}')
    name = name.lower()
    if not force and (name in box_types or box_type in _box_type_to_name):
        raise KeyError(f'box type {name} has been registered')
    if name in box_types:
        _box_type_to_name.pop(box_types.pop(name))
    if box_type in _box_type_to_name:
        box_types.pop(_box_type_to_name.pop(box_type))
    box_types[name] = box_type
    _box_type_to_name[box_type] = name


def register_box(name: str, box_type: type | None = None, force: bool = False) -> type | Callable:
    """Register a box type under ``name``; usable as a function or a class decorator.

    Args:
        name (str): Box type name (case-insensitive), e.g. 'rbox'.
        box_type (type, optional): Subclass of :class:`BaseBoxes`. When None, a decorator
            is returned.
        force (bool): Replace an existing registration with the same name or class.
    """
    if not isinstance(force, bool):
        raise TypeError(f'force must be a boolean, but got {type(force)}')
    if box_type is not None:
        _register_box(name=name, box_type=box_type, force=force)
        return box_type

    def _register(cls):
        _register_box(name=name, box_type=cls, force=force)
        return cls

    return _register


def _register_box_converter(src_type, dst_type, converter: Callable, force: bool = False):
    if not callable(converter):
        raise TypeError(f'converter must be callable, but got {type(converter)}')
    src_name, _ = get_box_type(src_type)
    dst_name, _ = get_box_type(dst_type)
    key = f'{src_name}2{dst_name}'
    if not force and key in box_converters:
        raise KeyError(f'The box converter from {src_name} to {dst_name} has been registered.')
    box_converters[key] = converter


def register_box_converter(
    src_type: str | type,
    dst_type: str | type,
    converter: Callable | None = None,
    force: bool = False,
) -> Callable:
    """Register a ``Tensor -> Tensor`` converter between two registered box types.

    Usable as a function (``converter`` given) or as a decorator.
    """
    if not isinstance(force, bool):
        raise TypeError(f'force must be a boolean, but got {type(force)}')
    if converter is not None:
        _register_box_converter(src_type, dst_type, converter, force)
        return converter

    def _register(func):
        _register_box_converter(src_type, dst_type, func, force)
        return func

    return _register


def get_box_type(box_type: str | type) -> tuple[str, type]:
    """Return ``(name, class)`` of a registered box type given its name or class.

    Raises:
        KeyError: when the type is not registered or the argument is of a wrong kind.
    """
    if isinstance(box_type, str):
        name = box_type.lower()
        if name not in box_types:
            raise KeyError(
                f'Box type {name!r} has not been registered; registered types: {sorted(box_types)}'
            )
        return name, box_types[name]
    if isinstance(box_type, type) and issubclass(box_type, BaseBoxes):
        if box_type not in _box_type_to_name:
            raise KeyError(f'Box type {box_type} has not been registered.')
        return _box_type_to_name[box_type], box_type
    raise KeyError(
        f'box_type must be a str or a class inheriting from BaseBoxes, but got {type(box_type)}.'
    )


def convert_box_type(
    boxes: BoxType, *, src_type: str | type | None = None, dst_type: str | type | None = None
) -> BoxType:
    """Convert boxes to ``dst_type``; the output kind (box object, Tensor, ndarray) follows the
    input. ``src_type`` is needed for tensors and arrays and taken from box objects."""
    if dst_type is None:
        raise ValueError('dst_type must be given')
    dst_name, dst_cls = get_box_type(dst_type)
    if isinstance(boxes, BaseBoxes):
        src_name, _ = get_box_type(type(boxes))
    elif isinstance(boxes, (Tensor, np.ndarray)):
        if src_type is None:
            raise ValueError('src_type must be given when boxes is a Tensor or ndarray')
        src_name, _ = get_box_type(src_type)
    else:
        raise TypeError(
            f'boxes must be an instance of BaseBoxes, Tensor or ndarray, but got {type(boxes)}.'
        )
    if src_name == dst_name:
        return boxes
    key = f'{src_name}2{dst_name}'
    if key not in box_converters:
        raise KeyError(f'No box converter from {src_name} to {dst_name} has been registered.')
    converter = box_converters[key]
    if isinstance(boxes, BaseBoxes):
        return dst_cls(converter(boxes.tensor), clone=False)
    if isinstance(boxes, np.ndarray):
        return converter(torch.from_numpy(boxes)).numpy()
    return converter(boxes)
