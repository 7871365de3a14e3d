from .local_visualizer import (
                               DetLocalVisualizer,
                               RotLocalVisualizer,
                               boxes_to_polygons,
                               draw_predictions,
)

__all__ = ['DetLocalVisualizer', 'RotLocalVisualizer', 'boxes_to_polygons', 'draw_predictions']
