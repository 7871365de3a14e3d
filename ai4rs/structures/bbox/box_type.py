"""Registry of box types and of the converters between them (mmdet 3.x API).

Box types are registered by name ('hbox', 'rbox', 'qbox'); converters by the pair of names,
under the key ``'{src}2{dst}'``. ``convert_box_type`` works on box objects, tensors and numpy
arrays; ``autocast_box_type`` lets transforms accept ``results['gt_bboxes']`` as a numpy array.
"""
import functools
from typing import Callable, Optional, Tuple, Type, Union

import numpy as np
import torch
from torch import Tensor

from .base_boxes import BaseBoxes

BoxType = Union[np.ndarray, Tensor, BaseBoxes]

box_types: dict = {}
_box_type_to_name: dict = {}
box_converters: dict = {}


def _register_box(name: str, box_type: Type, force: bool = False) -> None:
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


def register_box(name: str,
                 box_type: Optional[Type] = None,
                 force: bool = False) -> Union[Type, Callable]:
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


def register_box_converter(src_type: Union[str, type],
                           dst_type: Union[str, type],
                           converter: Optional[Callable] = None,
                           force: bool = False) -> Callable:
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


def get_box_type(box_type: Union[str, type]) -> Tuple[str, type]:
    """Return ``(name, class)`` of a registered box type given its name or class.

    Raises:
        KeyError: when the type is not registered or the argument is of a wrong kind.
    """
    if isinstance(box_type, str):
        name = box_type.lower()
        if name not in box_types:
            raise KeyError(f'Box type {name!r} has not been registered; registered types: '
                           f'{sorted(box_types)}')
        return name, box_types[name]
    if isinstance(box_type, type) and issubclass(box_type, BaseBoxes):
        if box_type not in _box_type_to_name:
            raise KeyError(f'Box type {box_type} has not been registered.')
        return _box_type_to_name[box_type], box_type
    raise KeyError('box_type must be a str or a class inheriting from BaseBoxes, but got '
                   f'{type(box_type)}.')


def convert_box_type(boxes: BoxType,
                     *,
                     src_type: Union[str, type, None] = None,
                     dst_type: Union[str, type, None] = None) -> BoxType:
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
        raise TypeError('boxes must be an instance of BaseBoxes, Tensor or ndarray, but got '
                        f'{type(boxes)}.')
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


def boxes_from_tensor(data: Union[Tensor, np.ndarray], box_type: Union[str, type]) -> BaseBoxes:
    """Wrap raw box data from outside the pipeline (offline files, user arrays) as box objects.

    This is the one place where a raw tensor becomes a typed box object; the type is always
    given explicitly, never guessed from the number of columns.

    Args:
        data (Tensor | np.ndarray): (..., box_dim) boxes of ``box_type`` (copied).
        box_type (str | type): registered name ('hbox', 'rbox', 'qbox') or box class.

    Returns:
        BaseBoxes: e.g. ``RotatedBoxes`` for 'rbox'.

    Raises:
        ValueError: the last dimension does not match the box type.
    """
    _, box_cls = get_box_type(box_type)
    return box_cls(data)


def autocast_box_type(dst_box_type: str = 'hbox') -> Callable:
    """Decorator for transform methods ``f(self, results)``: when ``results['gt_bboxes']`` is
    a numpy array it is wrapped as ``dst_box_type`` for the call and turned back into an array
    afterwards (also in ``results['mix_results']``); box objects pass through untouched."""
    _, box_cls = get_box_type(dst_box_type)

    def decorator(func: Callable) -> Callable:

        @functools.wraps(func)
        def wrapper(self, results: dict, *args, **kwargs) -> dict:
            if 'gt_bboxes' not in results or isinstance(results['gt_bboxes'], BaseBoxes):
                return func(self, results, *args, **kwargs)
            if not isinstance(results['gt_bboxes'], np.ndarray):
                raise TypeError("autocast_box_type requires results['gt_bboxes'] to be "
                                f"BaseBoxes or np.ndarray, but got {type(results['gt_bboxes'])}")
            results['gt_bboxes'] = box_cls(results['gt_bboxes'], clone=False)
            for res in results.get('mix_results', []):
                if isinstance(res.get('gt_bboxes'), np.ndarray):
                    res['gt_bboxes'] = box_cls(res['gt_bboxes'], clone=False)
            out = func(self, results, *args, **kwargs)
            if isinstance(out, dict) and isinstance(out.get('gt_bboxes'), BaseBoxes):
                out['gt_bboxes'] = out['gt_bboxes'].numpy()
            if isinstance(results.get('gt_bboxes'), BaseBoxes):
                results['gt_bboxes'] = results['gt_bboxes'].numpy()
            return out

        return wrapper

    return decorator
