from .seeded_sampler import DefaultSampler, SeededIndex, sample_rng, sample_seed

__all__ = ['DefaultSampler', 'SeededIndex', 'sample_rng', 'sample_seed']
