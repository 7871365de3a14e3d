from .amp_optimizer_wrapper import AmpOptimWrapper

__all__ = ['AmpOptimWrapper']
