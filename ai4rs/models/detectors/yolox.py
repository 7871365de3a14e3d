"""YOLOX detector."""

from ai4rs.registry import MODELS

from .single_stage import SingleStageDetector


@MODELS.register_module()
class YOLOX(SingleStageDetector):
    """YOLOX (https://arxiv.org/abs/2107.08430): CSPDarknet, YOLOXPAFPN and a
    YOLOX head (here :class:`RotatedYOLOXHead` for oriented boxes).

    Arguments are those of :class:`SingleStageDetector`.
    """
