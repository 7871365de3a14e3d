"""The confusion matrix picture and counts file: real files, decoded and checked."""

import cv2
import numpy as np
import pytest

from ai4rs.visualization.confusion_matrix import (
    draw_confusion_matrix,
    format_confusion_matrix,
    normalize_confusion_matrix,
    read_confusion_matrix_csv,
    save_confusion_matrix,
)

LABELS = ['plane', 'ship', 'background']
COUNTS = np.array([[3, 1, 0], [0, 0, 0], [2, 0, 0]])


def test_rows_are_percentages_of_their_sum():
    expected = np.array([[75.0, 25.0, 0.0], [0.0, 0.0, 0.0], [100.0, 0.0, 0.0]])
    np.testing.assert_allclose(normalize_confusion_matrix(COUNTS), expected)


def test_the_figure_shows_the_percentages_and_names():
    fig = draw_confusion_matrix(COUNTS, LABELS)
    ax = fig.axes[0]
    drawn = np.asarray(ax.images[0].get_array())
    np.testing.assert_allclose(drawn, normalize_confusion_matrix(COUNTS))
    cells = [t.get_text() for t in ax.texts]
    assert cells == ['75%', '25%', '0%', '0%', '0%', '0%', '100%', '0%', '0%']
    assert [t.get_text() for t in ax.get_xticklabels()] == LABELS
    assert [t.get_text() for t in ax.get_yticklabels()] == LABELS
    assert ax.get_ylabel() == 'Ground Truth Label' and ax.get_xlabel() == 'Prediction Label'


def test_saved_png_and_csv(tmp_path):
    out = save_confusion_matrix(COUNTS, LABELS, str(tmp_path / 'cm'))
    img = cv2.imread(out['png'])
    # the size of the drawn figure, in pixels
    fig = draw_confusion_matrix(COUNTS, LABELS)
    width, height = fig.get_size_inches() * fig.dpi
    assert img is not None and img.shape == (round(height), round(width), 3)
    assert min(img.shape[:2]) >= 300
    # not a blank page: many pixels differ from the white background, in several colours
    assert (img < 250).any(axis=2).mean() > 0.05
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 50
    labels, counts = read_confusion_matrix_csv(out['csv'])
    assert labels == LABELS
    np.testing.assert_array_equal(counts, COUNTS)
    table = format_confusion_matrix(COUNTS, LABELS).splitlines()
    assert table[1].split() == ['plane', '3', '1', '0']


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match=r'shape \(3, 3\) does not fit 2 labels'):
        draw_confusion_matrix(COUNTS, LABELS[:2])
