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


def resolve_in_work_dir(path: str, work_dir: str | None, what: str = '--resume') -> str:
    """A checkpoint path as given, or, when relative and absent there, in the work dir.

    ``tools/train.py --work-dir W --resume epoch_3.pth`` means ``W/epoch_3.pth`` unless the
    current directory has an ``epoch_3.pth``. Absolute paths and URLs (``scheme://``) are
    returned unchanged when the file exists or is remote.

    Raises:
        FileNotFoundError: the file is in neither place; the message names both.
    """
    if '://' in path or osp.isfile(path):
        return path
    tried = [osp.abspath(path)]
    if not osp.isabs(path) and work_dir:
        in_work_dir = osp.join(work_dir, path)
        if osp.isfile(in_work_dir):
            return in_work_dir
        tried.append(osp.abspath(in_work_dir))
    raise FileNotFoundError(f'{what} {path}: no such checkpoint (tried {" and ".join(tried)})')
