from .csp_darknet import CSPDarknet, Focus

__all__ = ['CSPDarknet', 'Focus']
