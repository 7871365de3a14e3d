"""Angle coders: how a head's angle channels map to an angle in radians."""

from torch import Tensor

from ai4rs.registry import TASK_UTILS


@TASK_UTILS.register_module()
class PseudoAngleCoder:
    """The identity angle coder: the head regresses the angle directly (radians).

    ``encode_size`` is 1: the head predicts one angle channel.
    """

    encode_size = 1

    def encode(self, angle_targets: Tensor) -> Tensor:
        """(N, 1) angles -> (N, 1) targets, unchanged."""
        return angle_targets

    def decode(self, angle_preds: Tensor, keepdim: bool = False) -> Tensor:
        """(..., 1) predictions -> (...) angles, or (..., 1) with ``keepdim``."""
        return angle_preds if keepdim else angle_preds.squeeze(-1)
