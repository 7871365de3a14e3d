"""ai4rs imports past a truncated yapf grammar cache (the race that failed a CI run).

Two processes importing mmengine on a fresh machine can read yapf's grammar pickle while it is
being written (yapf renames it into place before flushing it): ``EOFError: Ran out of input``.
Here the cache holds empty pickles, as a reader in that race sees them: mmengine alone fails,
``import ai4rs`` (then mmengine) succeeds and leaves readable pickles behind.
"""

import os
import pickle
import subprocess
import sys

from ai4rs._yapf_cache import _grammar_pickles


def _run(code, cache_home):
    env = dict(os.environ, XDG_CACHE_HOME=str(cache_home))
    return subprocess.run(
        [sys.executable, '-c', code], env=env, capture_output=True, text=True, timeout=120
    )


def _empty_pickles(cache_home):
    first = _run('import mmengine', cache_home)  # writes the real pickles
    assert first.returncode == 0, first.stderr
    env_before = os.environ.get('XDG_CACHE_HOME')
    os.environ['XDG_CACHE_HOME'] = str(cache_home)
    try:
        paths = _grammar_pickles()
    finally:
        if env_before is None:
            del os.environ['XDG_CACHE_HOME']
        else:
            os.environ['XDG_CACHE_HOME'] = env_before
    assert len(paths) == 2, paths  # Grammar and PatternGrammar
    for path in paths:
        open(path, 'wb').close()
        # yapf regenerates a pickle older than its grammar text; keep the empty ones "newer"
        os.utime(path, (4102444800, 4102444800))
    return paths


def test_truncated_grammar_cache_breaks_plain_mmengine(tmp_path):
    _empty_pickles(tmp_path)
    plain = _run('import mmengine', tmp_path)
    assert plain.returncode != 0
    assert 'EOFError' in plain.stderr


def test_import_ai4rs_survives_truncated_grammar_cache(tmp_path):
    paths = _empty_pickles(tmp_path)
    res = _run('import ai4rs, mmengine; from mmengine.config import Config; print("ok")', tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().endswith('ok')
    for path in paths:  # regenerated, readable
        with open(path, 'rb') as f:
            assert isinstance(pickle.load(f), dict)
