"""Registration of the conversions between horizontal (hbox), rotated (rbox) and
quadrilateral (qbox) boxes as box converters.

The conversions themselves are pure tensor functions in :mod:`.geometry` (formats and corner
order documented there); this module ties them to the box classes, so that
``boxes.convert_to('qbox')`` and :func:`convert_box_type` find them.
"""

from .base_boxes import register_box_converter
from .geometry import hbox2qbox, hbox2rbox, qbox2hbox, qbox2rbox, rbox2hbox, rbox2qbox
from .horizontal_boxes import HorizontalBoxes
from .quadri_boxes import QuadriBoxes
from .rotated_boxes import RotatedBoxes

register_box_converter(HorizontalBoxes, RotatedBoxes, hbox2rbox)
register_box_converter(HorizontalBoxes, QuadriBoxes, hbox2qbox)
register_box_converter(RotatedBoxes, HorizontalBoxes, rbox2hbox)
register_box_converter(RotatedBoxes, QuadriBoxes, rbox2qbox)
register_box_converter(QuadriBoxes, HorizontalBoxes, qbox2hbox)
register_box_converter(QuadriBoxes, RotatedBoxes, qbox2rbox)

__all__ = ['hbox2rbox', 'hbox2qbox', 'rbox2hbox', 'rbox2qbox', 'qbox2hbox', 'qbox2rbox']
