"""ConvertBoxType: change the box type of box fields of a results dict."""

from mmcv.transforms import BaseTransform

from ai4rs.registry import TRANSFORMS
from ai4rs.structures.bbox import BaseBoxes


@TRANSFORMS.register_module()
class ConvertBoxType(BaseTransform):
    """Convert box objects in ``results`` to other box types.

    Example: ``ConvertBoxType(box_type_mapping=dict(gt_bboxes='rbox'))`` turns the
    (N, 8) quadrilaterals loaded by ``LoadAnnotations(box_type='qbox')`` into
    (N, 5) rotated boxes (``cv2.minAreaRect`` of each quadrilateral).

    Args:
        box_type_mapping (dict): ``{results key: destination box type}``; the
            type is a name accepted by ``get_box_type`` ('hbox', 'rbox', 'qbox')
            or a box class. Missing keys are skipped.
    """

    def __init__(self, box_type_mapping: dict) -> None:
        if not isinstance(box_type_mapping, dict):
            raise TypeError(
                f'box_type_mapping must be a dict, got {type(box_type_mapping).__name__}'
            )
        self.box_type_mapping = box_type_mapping

    def transform(self, results: dict) -> dict:
        for key, dst_type in self.box_type_mapping.items():
            if key not in results:
                continue
            boxes = results[key]
            if not isinstance(boxes, BaseBoxes):
                raise TypeError(
                    f"ConvertBoxType: results['{key}'] is a {type(boxes).__name__}, "
                    f'not a box object (load it with LoadAnnotations(box_type=...))'
                )
            results[key] = boxes.convert_to(dst_type)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(box_type_mapping={self.box_type_mapping})'
