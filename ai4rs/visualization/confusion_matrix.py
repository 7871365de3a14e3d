"""Drawing and saving a detection confusion matrix (mmdet's picture: rows ground truth, columns
predictions, normalised per row, percentages in the cells), with matplotlib's Agg backend."""

import csv
import os
import os.path as osp
from collections.abc import Sequence

import numpy as np


def normalize_confusion_matrix(confusion_matrix: np.ndarray) -> np.ndarray:
    """Each row as percentages of its sum: (K, K) float64 in [0, 100]; a row without any
    count (a class with no object and no false positive) stays 0."""
    counts = np.asarray(confusion_matrix, dtype=np.float64)
    sums = counts.sum(axis=1, keepdims=True)
    return np.divide(counts * 100.0, sums, out=np.zeros_like(counts), where=sums > 0)


def draw_confusion_matrix(
    confusion_matrix: np.ndarray,
    labels: Sequence[str],
    title: str = 'Normalized Confusion Matrix',
    color_theme: str = 'plasma',
):
    """The figure of :func:`normalize_confusion_matrix`'s percentages.

    Args:
        confusion_matrix (ndarray): (K, K) counts, rows ground truth, columns predictions.
        labels (list[str]): K names (the classes, then ``'background'``).
        title (str): figure title.
        color_theme (str): a matplotlib colormap name.

    Returns:
        matplotlib.figure.Figure: one axes; its image holds the percentages and each cell
        has a text ``'{int(percent)}%'`` (mmdet's rounding down).
    """
    from matplotlib.figure import Figure

    counts = np.asarray(confusion_matrix)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] != len(labels):
        raise ValueError(
            f'confusion matrix of shape {counts.shape} does not fit {len(labels)} labels'
        )
    percent = normalize_confusion_matrix(counts)
    num = len(labels)
    side = max(4.0, 0.6 * num + 2.0)
    fig = Figure(figsize=(side, side * 0.85), dpi=150)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(percent, cmap=color_theme, vmin=0, vmax=100)
    fig.colorbar(image, ax=ax)
    ax.set_title(title, fontdict=dict(size=12))
    ax.set_xlabel('Prediction Label', fontdict=dict(size=10))
    ax.set_ylabel('Ground Truth Label', fontdict=dict(size=10))
    ax.set_xticks(np.arange(num))
    ax.set_yticks(np.arange(num))
    ax.set_xticklabels(labels, rotation=45, ha='left', rotation_mode='anchor')
    ax.set_yticklabels(labels)
    ax.xaxis.set_label_position('top')
    ax.xaxis.tick_top()
    for i in range(num):
        for j in range(num):
            ax.text(
                j,
                i,
                f'{int(percent[i, j])}%',
                ha='center',
                va='center',
                color='w' if percent[i, j] < 50 else 'k',
                size=8,
            )
    ax.set_ylim(num - 0.5, -0.5)
    fig.tight_layout()
    return fig


def save_confusion_matrix(
    confusion_matrix: np.ndarray,
    labels: Sequence[str],
    save_dir: str,
    title: str = 'Normalized Confusion Matrix',
    color_theme: str = 'plasma',
) -> dict[str, str]:
    """Write ``confusion_matrix.png`` (the picture) and ``confusion_matrix.csv`` (the counts:
    a header ``ground_truth \\ prediction, label...``, then one row per ground truth label) to
    ``save_dir`` (created).

    Returns:
        dict: ``png`` and ``csv`` paths.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    os.makedirs(save_dir, exist_ok=True)
    fig = draw_confusion_matrix(confusion_matrix, labels, title, color_theme)
    FigureCanvasAgg(fig)
    png = osp.join(save_dir, 'confusion_matrix.png')
    fig.savefig(png)
    out_csv = osp.join(save_dir, 'confusion_matrix.csv')
    counts = np.asarray(confusion_matrix, dtype=np.int64)
    with open(out_csv, 'w', newline='', encoding='utf-8') as f:
        writer = csv.writer(f)
        writer.writerow(['ground_truth \\ prediction', *labels])
        for label, row in zip(labels, counts):
            writer.writerow([label, *row.tolist()])
    return dict(png=png, csv=out_csv)


def read_confusion_matrix_csv(path: str) -> tuple[list[str], np.ndarray]:
    """The labels and (K, K) int64 counts of a ``confusion_matrix.csv``."""
    with open(path, newline='', encoding='utf-8') as f:
        rows = list(csv.reader(f))
    labels = rows[0][1:]
    counts = np.asarray([[int(v) for v in row[1:]] for row in rows[1:]], dtype=np.int64)
    if [row[0] for row in rows[1:]] != labels or counts.shape != (len(labels), len(labels)):
        raise ValueError(f'{path}: not a confusion matrix csv (labels of rows and columns differ)')
    return labels, counts


def format_confusion_matrix(confusion_matrix: np.ndarray, labels: Sequence[str]) -> str:
    """A text table of the counts (rows ground truth, columns predictions) for the terminal."""
    counts = np.asarray(confusion_matrix, dtype=np.int64)
    width = max([len(str(v)) for v in counts.ravel()] + [len(s) for s in labels] + [12])
    head = 'GT \\ pred'.ljust(width) + ''.join(s.rjust(width + 1) for s in labels)
    lines = [head]
    for label, row in zip(labels, counts):
        lines.append(label.ljust(width) + ''.join(str(v).rjust(width + 1) for v in row))
    return '\n'.join(lines)
