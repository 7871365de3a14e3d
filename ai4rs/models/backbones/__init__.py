from .csp_darknet import CSPDarknet, Focus

__all__ = ['CSPDarknet', 'Focus']
from .mm_backbone import MultiModalYOLOBackbone  # noqa: E402
from .yolov8_csp_darknet import YOLOv8CSPDarknet  # noqa: E402

__all__ += ['MultiModalYOLOBackbone', 'YOLOv8CSPDarknet']
from .clip_text import HuggingCLIPLanguageBackbone, PseudoLanguageBackbone  # noqa: E402

__all__ += ['HuggingCLIPLanguageBackbone', 'PseudoLanguageBackbone']
from .prompt_table import PromptEmbeddingTable  # noqa: E402

__all__ += ['PromptEmbeddingTable']
