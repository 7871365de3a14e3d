"""Registry of box types and of the converters between them (mmdet 3.x API).

The registry itself lives in :mod:`.base_boxes` next to the base class it holds (so that
``BaseBoxes.convert_to`` needs no import from here); this module is its public face, plus
:func:`boxes_from_tensor` and :func:`autocast_box_type`.

Box types are registered by name ('hbox', 'rbox', 'qbox'); converters by the pair of names,
under the key ``'{src}2{dst}'``. ``convert_box_type`` works on box objects, tensors and numpy
arrays; ``autocast_box_type`` lets transforms accept ``results['gt_bboxes']`` as a numpy array.
"""

import functools
from collections.abc import Callable

import numpy as np
from torch import Tensor

from .base_boxes import (  # noqa: F401 (the registry's private index, used by tests)
    BaseBoxes,
    _box_type_to_name,
    box_converters,
    box_types,
    convert_box_type,
    get_box_type,
    register_box,
    register_box_converter,
)

__all__ = [
    'box_types',
    'box_converters',
    'register_box',
    'register_box_converter',
    'get_box_type',
    'convert_box_type',
    'boxes_from_tensor',
    'autocast_box_type',
]


def boxes_from_tensor(data: Tensor | np.ndarray, box_type: str | type) -> BaseBoxes:
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
                raise TypeError(
                    "autocast_box_type requires results['gt_bboxes'] to be "
                    f'BaseBoxes or np.ndarray, but got {type(results["gt_bboxes"])}'
                )
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
