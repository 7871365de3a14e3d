"""ai4rs: oriented and open-vocabulary object detection in pure PyTorch."""

from ._threads import apply_omp_wait_policy

apply_omp_wait_policy()  # before torch is imported, when it is not yet

from ._yapf_cache import import_yapf  # noqa: E402

import_yapf()  # before mmengine imports it (see ai4rs/_yapf_cache.py)

from .utils.version_check import check_dependencies  # noqa: E402

check_dependencies()

from .utils.checkpoint import register_safe_checkpoint_loader  # noqa: E402
from .version import __version__  # noqa: E402

register_safe_checkpoint_loader()

__all__ = ['__version__']
