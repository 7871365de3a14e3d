from .quadratic_warmup import (
    QuadraticWarmupLR,
    QuadraticWarmupMomentum,
    QuadraticWarmupParamScheduler,
)

__all__ = ['QuadraticWarmupParamScheduler', 'QuadraticWarmupLR', 'QuadraticWarmupMomentum']
