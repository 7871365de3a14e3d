"""What every rotated-box head shares: the angle version, the angle coder, decoding angles.

Rotated YOLOX and the open-vocabulary rotated YOLO-World head predict one angle per prior
through an angle coder (``PseudoAngleCoder``: the angle in radians) and report boxes as
:class:`RotatedBoxes` (cx, cy, w, h, t) with ``t`` wrapped into the range of ``angle_version``
(w and h are never swapped: see :func:`ai4rs.structures.bbox.norm_angle`). Their
post-processing is :class:`BaseDenseHead`'s with a rotated NMS in ``test_cfg.nms``
(``type='nms_rotated'``) and no clipping to the image.
"""

from torch import Tensor

from ai4rs.registry import TASK_UTILS
from ai4rs.structures.bbox import ANGLE_VERSIONS, RotatedBoxes, norm_angle


class RotatedHeadMixin:
    """Angle handling of rotated heads (mix in before :class:`BaseDenseHead`).

    Call :meth:`init_angle` in ``__init__``; then ``self.angle_version``, ``self.angle_coder``
    and :meth:`decode_angle` are available.
    """

    box_type = RotatedBoxes
    clip_to_image = False

    def init_angle(self, angle_version: str, angle_coder: dict) -> None:
        """Check ``angle_version`` ('le90', 'le135' or 'oc') and build ``angle_coder``."""
        if angle_version not in ANGLE_VERSIONS:
            raise ValueError(
                f'{type(self).__name__}: angle_version must be one of {ANGLE_VERSIONS}, '
                f'got {angle_version!r}'
            )
        self.angle_version = angle_version
        self.angle_coder = TASK_UTILS.build(angle_coder)

    def decode_angle(self, angle_preds: Tensor, normalise: bool = True) -> Tensor:
        """(..., encode_size) raw angle outputs -> (..., 1) angles in radians, wrapped into
        ``angle_version``'s range unless ``normalise`` is False."""
        angles = self.angle_coder.decode(angle_preds).unsqueeze(-1)
        return norm_angle(angles, self.angle_version) if normalise else angles
