from .csp_darknet import CSPDarknet, Focus

__all__ = ['CSPDarknet', 'Focus']
from .clip_text import HuggingCLIPLanguageBackbone, PseudoLanguageBackbone  # noqa: E402

__all__ += ['HuggingCLIPLanguageBackbone', 'PseudoLanguageBackbone']
