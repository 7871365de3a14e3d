"""Survive yapf's grammar cache race when several processes import mmengine at once.

mmengine imports ``yapf``, whose first import on a machine pickles two grammar tables into the
user's cache folder (``~/.cache/YAPF/<version>/``). yapf renames the pickle into place before
it has flushed it, so a second process importing at that moment (two ``torchrun`` ranks, two
pytest-xdist workers on a fresh machine) can read an empty file and fail with
``EOFError: Ran out of input``; a process killed while writing leaves a truncated pickle that
fails every later import the same way. ai4rs imports yapf once here, before mmengine: on such
an error it waits for the writer and retries, and if the file stays unreadable it removes it
so that yapf regenerates it. This module must not import torch.
"""

import glob
import os
import pickle
import sys
import time

_RETRIES = 5
_WAIT_S = 0.2


def _drop_yapf_modules() -> None:
    for name in list(sys.modules):
        if name == 'yapf' or name.startswith(('yapf.', 'yapf_third_party')):
            del sys.modules[name]


def _grammar_pickles() -> list:
    """The grammar pickles yapf would load in this interpreter (none when yapf is absent)."""
    try:
        import importlib.metadata as metadata

        from platformdirs import user_cache_dir

        yapf_version = metadata.version('yapf')  # importing yapf._version would import yapf
    except Exception:
        return []
    cache_dir = user_cache_dir(appname='YAPF', appauthor='Google', version=yapf_version)
    py = '.'.join(map(str, sys.version_info))
    return glob.glob(os.path.join(cache_dir, f'*-py{py}.pickle'))


def import_yapf() -> None:
    """Import yapf, retrying past a half-written grammar cache (see the module docstring)."""
    for attempt in range(_RETRIES + 1):
        try:
            import yapf  # noqa: F401

            return
        except ImportError:
            return  # not installed: mmengine's own import reports it
        except (EOFError, pickle.UnpicklingError):
            _drop_yapf_modules()
            if attempt == _RETRIES:
                raise
            if attempt == _RETRIES - 1:
                # Still unreadable after the waits: a truncated file nobody is writing.
                for path in _grammar_pickles():
                    try:
                        with open(path, 'rb') as f:
                            pickle.load(f)
                    except Exception:
                        try:
                            os.remove(path)
                        except OSError:
                            pass
            time.sleep(_WAIT_S)
