from .local_visualizer import (
    DetLocalVisualizer,
    RotLocalVisualizer,
    draw_predictions,
    label_names,
)
from .pr_curves import draw_pr_curves, plot_pr_curves

__all__ = ['DetLocalVisualizer', 'RotLocalVisualizer', 'draw_predictions']
__all__ += ['label_names', 'draw_pr_curves', 'plot_pr_curves']
