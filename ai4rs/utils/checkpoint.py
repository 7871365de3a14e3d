"""Loading checkpoints without letting them run code.

``torch.load(weights_only=True)`` only rebuilds tensors, containers and the
classes it is told are safe. OpenMMLab checkpoints also contain mmengine's
``HistoryBuffer`` (inside ``message_hub``) and numpy arrays and scalars, which
the default allow-list refuses, so with torch >= 2.6 ``--resume`` fails. The
usual work-around, ``weights_only=False``, lets a crafted file execute
arbitrary code. Here the allow-list is extended by exactly the inert classes
those checkpoints hold, only while an ai4rs loader runs, and a file that
needs anything else is refused before any of its objects is rebuilt.

``HistoryBuffer`` pickles its statistic methods as ``getattr(HistoryBuffer,
'mean')``. ``builtins.getattr`` is never allowed as such: in its place the
unpickler gets :func:`_history_buffer_getattr`, which resolves nothing but
those statistic methods.
"""
import os.path as osp
import pickle
from contextlib import nullcontext

import numpy as np
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader


class CheckpointSecurityError(RuntimeError):
    """A checkpoint holds objects whose loading could run code; it was not loaded."""


_DEFAULT_STATISTICS = ('min', 'max', 'current', 'mean')


def _history_buffer_getattr(obj, name):
    """``getattr`` restricted to ``HistoryBuffer``'s statistic methods."""
    allowed = set(_DEFAULT_STATISTICS) | set(HistoryBuffer._statistics_methods)
    if obj is HistoryBuffer and name in allowed:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'refused getattr({obj!r}, {name!r}): only the statistic methods of '
        'mmengine HistoryBuffer may be resolved while loading a checkpoint')


def _numpy_globals():
    core = np._core if hasattr(np, '_core') else np.core
    items = [np.ndarray, np.dtype]
    # numpy >= 2 pickles from numpy._core, numpy 1.x from numpy.core: accept both names.
    for mod in ('numpy._core', 'numpy.core'):
        items.append((core.multiarray._reconstruct, f'{mod}.multiarray._reconstruct'))
        items.append((core.multiarray.scalar, f'{mod}.multiarray.scalar'))
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        for name in dir(dtypes):
            cls = getattr(dtypes, name)
            if isinstance(cls, type) and issubclass(cls, np.dtype):
                items.append(cls)
    return items


def safe_checkpoint_globals():
    """The classes and functions, beyond torch's defaults, that a checkpoint may name."""
    return [HistoryBuffer, (_history_buffer_getattr, 'builtins.getattr')] + _numpy_globals()


def _safe_globals_context():
    if hasattr(torch.serialization, 'safe_globals'):
        return torch.serialization.safe_globals(safe_checkpoint_globals())
    return nullcontext()


def _unsafe_globals(filename):
    try:
        found = torch.serialization.get_unsafe_globals_in_checkpoint(filename)
    except Exception:  # older torch, or a file that is not a zip checkpoint
        return []
    allowed = set()
    for item in safe_checkpoint_globals():
        if isinstance(item, tuple):
            allowed.add(item[1])
        else:
            allowed.add(f'{item.__module__}.{item.__qualname__}')
    return [g for g in found if g not in allowed]


def _unpickler_reason(message):
    """The informative line of torch's weights-only error message."""
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    for ln in lines:
        if 'Unsupported global' in ln or 'refused getattr' in ln:
            return ln
    for i, ln in enumerate(lines):
        if ln.endswith('WeightsUnpickler error:') and i + 1 < len(lines):
            return lines[i + 1]
    return lines[0] if lines else 'an object outside the allow-list'


def load_checkpoint_safely(filename, map_location='cpu'):
    """Load a local checkpoint with ``weights_only=True`` and ai4rs' allow-list.

    Args:
        filename (str): path of a ``.pth`` file.
        map_location: as for :func:`torch.load`.

    Returns:
        dict: the checkpoint (``state_dict``, ``meta``, ``optimizer``,
        ``message_hub``, ... as saved by mmengine), or a bare state dict.

    Raises:
        FileNotFoundError: no such file.
        CheckpointSecurityError: the file names a global outside the
            allow-list (e.g. ``os.system``); nothing of it was executed.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} can not be found.')
    try:
        with _safe_globals_context():
            return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        names = _unsafe_globals(filename)
        what = ', '.join(names) if names else _unpickler_reason(str(e))
        raise CheckpointSecurityError(
            f'Refused to load checkpoint {filename}: it refers to {what}, which is '
            'not an allowed type. Rebuilding it could execute code, so nothing in it '
            'was run. ai4rs loads only tensors, containers, numpy arrays and mmengine '
            'logging buffers. If you created this file yourself and trust it, extract '
            'its state_dict with torch.load(weights_only=False) in a separate step.'
        ) from None


def register_safe_checkpoint_loader():
    """Route mmengine's local-file checkpoint loading through the safe loader.

    After this, ``Runner(resume=True)``, ``load_from`` and
    ``mmengine.runner.load_checkpoint`` use :func:`load_checkpoint_safely`.
    """
    CheckpointLoader.register_scheme(prefixes='', force=True)(load_from_local_safely)


def load_from_local_safely(filename, map_location):
    """mmengine's local-file scheme, through :func:`load_checkpoint_safely`.

    (mmengine logs the backend as this function's name without ``load_from_``.)
    """
    return load_checkpoint_safely(filename, map_location)
