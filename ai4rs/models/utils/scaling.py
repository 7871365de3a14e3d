"""Width and depth scaling rules of the YOLOv5/v8 family (mmyolo's conventions).

A model size (S/M/L/X) is one architecture scaled by a ``widen_factor`` (channels)
and a ``deepen_factor`` (blocks per CSP layer). Checkpoints depend on the exact
rounding, so these two functions are the single place it is written down.
"""

import math


def make_divisible(x: float, widen_factor: float = 1.0, divisor: int = 8) -> int:
    """Scale a channel count and round it UP to a multiple of ``divisor``.

    ``ceil(x * widen_factor / divisor) * divisor``; e.g. ``make_divisible(1024, 0.75)``
    is 768 and ``make_divisible(64, 0.33)`` is 24.
    """
    return math.ceil(x * widen_factor / divisor) * divisor


def make_round(x: float, deepen_factor: float = 1.0) -> int:
    """Scale a count and round it to the nearest integer, at least 1.

    Counts of 1 or less are returned unchanged (not scaled): ``make_round(3, 0.33)``
    is 1, ``make_round(3, 0.67)`` is 2, ``make_round(1, 0.33)`` is 1. Python's
    ``round`` rounds halves to even (``make_round(5, 0.5)`` is 2), as upstream.
    """
    return max(round(x * deepen_factor), 1) if x > 1 else x
