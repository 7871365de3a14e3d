from .local_visualizer import (
                               DetLocalVisualizer,
                               RotLocalVisualizer,
                               draw_predictions,
)

__all__ = ['DetLocalVisualizer', 'RotLocalVisualizer', 'draw_predictions']
