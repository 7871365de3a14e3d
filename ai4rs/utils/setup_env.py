"""Registering every ai4rs module and choosing the default scope (as in mmdet)."""

import datetime
import importlib
import warnings

from mmengine import DefaultScope

#: packages whose import registers ai4rs' classes
MODULE_PACKAGES = (
    'ai4rs.datasets',
    'ai4rs.datasets.transforms',
    'ai4rs.engine',
    'ai4rs.evaluation',
    'ai4rs.models',
    'ai4rs.structures',
    'ai4rs.visualization',
)


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import every ai4rs module that registers classes into the registries.

    Args:
        init_default_scope (bool): also make ``'ai4rs'`` the default scope, so
            that unscoped type names in configs are looked up in ai4rs first.
            When another scope is current, a new ``ai4rs`` scope instance is
            created (and a warning says so) rather than silently reusing it.
    """
    for name in MODULE_PACKAGES:
        importlib.import_module(name)
    if not init_default_scope:
        return
    current = DefaultScope.get_current_instance()
    if current is None or not DefaultScope.check_instance_created('ai4rs'):
        DefaultScope.get_instance('ai4rs', scope_name='ai4rs')
        return
    if current.scope_name != 'ai4rs':
        warnings.warn(
            f'The current default scope "{current.scope_name}" is not "ai4rs": '
            '`register_all_modules` creates a new default scope "ai4rs".'
        )
        DefaultScope.get_instance(f'ai4rs-{datetime.datetime.now()}', scope_name='ai4rs')
