"""Precision-recall curves drawn to a PNG with matplotlib's Agg canvas (no window, no pyplot).

The curves are :class:`ai4rs.evaluation.functional.PRCurve` objects (any object with
``name``, ``recall``, ``precision``, ``ap`` and ``rule`` does): one line per class, its AP in
the legend. The points are drawn as the metric defines them: COCO's 101 interpolated
precisions as they are, a DOTA (VOC) curve as its per-detection points in score order.
"""

import os
import os.path as osp
from collections.abc import Sequence

import numpy as np


def curve_label(curve) -> str:
    """Legend text of a curve: ``'{name} (AP 0.853)'``, ``'{name} (no GT)'`` for NaN AP."""
    ap = float(curve.ap)
    return f'{curve.name} (no GT)' if np.isnan(ap) else f'{curve.name} (AP {ap:.3f})'


def drawable_points(curve) -> tuple[np.ndarray, np.ndarray]:
    """The (recall, precision) points drawn for a curve.

    COCO's ``-1`` entries (no ground truth) are dropped; an empty curve (a class without
    detections) is drawn as the single point (0, 0).
    """
    recall = np.asarray(curve.recall, dtype=np.float64).reshape(-1)
    precision = np.asarray(curve.precision, dtype=np.float64).reshape(-1)
    keep = precision > -1
    recall, precision = recall[keep], precision[keep]
    if recall.size == 0:
        return np.zeros(1), np.zeros(1)
    return recall, precision


def draw_pr_curves(ax, curves: Sequence, title: str | None = None) -> list:
    """Draw one line per curve on a matplotlib ``Axes`` (recall x, precision y, both [0, 1]).

    Returns:
        list: the ``Line2D`` objects, in the order of ``curves``.
    """
    lines = []
    for curve in curves:
        recall, precision = drawable_points(curve)
        (line,) = ax.plot(recall, precision, linewidth=1.5, label=curve_label(curve))
        lines.append(line)
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel('recall')
    ax.set_ylabel('precision')
    ax.grid(True, alpha=0.3)
    if title:
        ax.set_title(title)
    if curves:
        ax.legend(loc='lower left', fontsize='small')
    return lines


def plot_pr_curves(
    curves: Sequence, out_file: str, title: str | None = None, dpi: int = 100
) -> str:
    """Write the curves to a PNG file (its folder is created).

    Args:
        curves (list[PRCurve]): one per class.
        out_file (str): the ``.png`` path.
        title (str, optional): the plot title.
        dpi (int): resolution; the figure is 6.4 x 4.8 inches.

    Returns:
        str: ``out_file``.

    Raises:
        ValueError: ``curves`` is empty, or ``out_file`` does not end with ``.png``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not curves:
        raise ValueError('plot_pr_curves: there are no curves to draw (no classes)')
    if not str(out_file).lower().endswith('.png'):
        raise ValueError(f'plot_pr_curves: the output must be a .png file, got {out_file!r}')
    fig = Figure(figsize=(6.4, 4.8), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    draw_pr_curves(ax, curves, title)
    fig.tight_layout()
    folder = osp.dirname(osp.abspath(out_file))
    os.makedirs(folder, exist_ok=True)
    fig.savefig(out_file, format='png')
    return out_file


__all__ = ['curve_label', 'drawable_points', 'draw_pr_curves', 'plot_pr_curves']
