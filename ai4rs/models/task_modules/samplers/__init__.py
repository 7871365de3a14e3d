from .pseudo_sampler import PseudoSampler, SamplingResult

__all__ = ['PseudoSampler', 'SamplingResult']
