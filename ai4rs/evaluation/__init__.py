"""Evaluation: metrics (registered in ``ai4rs.registry.METRICS``) and pure functions."""

from .functional import *  # noqa: F401,F403
from .functional import __all__ as _functional_all
from .metrics import *  # noqa: F401,F403
from .metrics import __all__ as _metrics_all

__all__ = list(_functional_all) + list(_metrics_all)
