from .local_visualizer import (
    DetLocalVisualizer,
    RotLocalVisualizer,
    draw_predictions,
    label_names,
)

__all__ = ['DetLocalVisualizer', 'RotLocalVisualizer', 'draw_predictions']
__all__ += ['label_names']
