"""Import paths for the command-line tools."""

import os
import os.path as osp
import sys

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def add_project_paths(extra=()):
    """Make ``projects.*`` packages importable from any working directory.

    Configs that ``custom_imports`` a ``projects.<name>`` package need the
    folder holding ``projects/`` on the import path. This adds the ai4rs
    repository root and the current working directory (and ``extra``) to
    ``sys.path`` and to ``PYTHONPATH``, so worker processes started with
    ``spawn`` find them too.
    """
    paths = [osp.abspath(p) for p in (*extra, os.getcwd(), REPO_ROOT)]
    for p in reversed(paths):
        if p not in sys.path:
            sys.path.insert(0, p)
    old = [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]
    os.environ['PYTHONPATH'] = os.pathsep.join(dict.fromkeys(paths + old))
