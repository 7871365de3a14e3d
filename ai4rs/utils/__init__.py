from .checkpoint import (
    CheckpointSecurityError,
    NotACheckpointError,
    load_checkpoint_safely,
    register_safe_checkpoint_loader,
)
from .setup_env import register_all_modules
from .version_check import check_dependencies

__all__ = [
    'register_all_modules',
    'check_dependencies',
    'load_checkpoint_safely',
    'CheckpointSecurityError',
    'NotACheckpointError',
    'register_safe_checkpoint_loader',
]
