from .local_visualizer import DetLocalVisualizer, RotLocalVisualizer, boxes_to_polygons

__all__ = ['DetLocalVisualizer', 'RotLocalVisualizer', 'boxes_to_polygons']
