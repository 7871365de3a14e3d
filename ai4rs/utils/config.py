"""Reading configs the way every ai4rs tool does."""

import ast
import os.path as osp

from mmengine.config import Config

#: names a config may not define at its top level: mmengine's ``Config`` keeps its own
#: attributes under them (``mmengine.config.config.RESERVED_KEYS``)
RESERVED_CONFIG_NAMES = ('filename', 'text', 'pretty_text', 'env_variables')


class ReservedConfigNameError(ValueError):
    """A config (or one of its ``_base_`` files) defines a name that mmengine reserves.

    Attributes:
        filename (str): the file that defines it.
        lineno (int): the line of the definition.
        name (str): the reserved name.
    """

    def __init__(self, message: str, filename: str, lineno: int, name: str):
        super().__init__(message)
        self.filename, self.lineno, self.name = filename, lineno, name


def _base_files(path: str, tree: ast.Module) -> list[str]:
    """Local files a config inherits: ``_base_ = ...``, ``from .x import *`` in ``read_base()``.

    Package-scoped names (``'mmdet::...'``) are left out: they are not this
    project's files.
    """
    folder = osp.dirname(osp.abspath(path))
    found: list[str] = []
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id == '_base_'
        ):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                continue
            for name in [value] if isinstance(value, str) else list(value):
                if isinstance(name, str) and '::' not in name:
                    found.append(osp.normpath(osp.join(folder, name)))
        elif isinstance(node, ast.With):
            for sub in node.body:
                if isinstance(sub, ast.ImportFrom) and sub.level > 0 and sub.module:
                    base = folder
                    for _ in range(sub.level - 1):
                        base = osp.dirname(base)
                    found.append(osp.join(base, *sub.module.split('.')) + '.py')
    return found


def _config_files(path: str):
    """``(file, the file that inherits it or None, its parsed tree or its SyntaxError)`` for a
    config and its bases, each file parsed once.

    Breadth first, each file once; files that do not exist or are not Python are left out,
    and so are the bases of a file that does not parse.
    """
    todo, seen = [(osp.abspath(path), None)], set()
    while todo:
        file, child = todo.pop(0)
        if file in seen or not file.endswith('.py') or not osp.isfile(file):
            continue
        seen.add(file)
        with open(file, encoding='utf-8') as f:
            text = f.read()
        try:
            tree = ast.parse(text, filename=file)
        except SyntaxError as e:
            yield file, child, e
            continue
        yield file, child, tree
        todo += [(base, file) for base in _base_files(file, tree)]


def _assigned_names(target: ast.expr):
    """The plain names an assignment target binds (``a``, ``a, b = ...``, ``[a, *b] = ...``)."""
    if isinstance(target, ast.Name):
        yield target
    elif isinstance(target, (ast.Tuple, ast.List)):
        for elt in target.elts:
            yield from _assigned_names(elt)
    elif isinstance(target, ast.Starred):
        yield from _assigned_names(target.value)


def find_reserved_config_name(path: str) -> ReservedConfigNameError | None:
    """The first top-level definition of a name in :data:`RESERVED_CONFIG_NAMES`.

    Looks at the config and, recursively, at the files it inherits: assignments
    (``text = ...``, ``text: list = ...``, ``a, text = ...``, ``text += ...``) and
    ``for`` / ``with ... as`` bindings at module level.

    Returns:
        ReservedConfigNameError | None: naming the file, the line and the name;
        ``None`` when no file defines one (or a file does not parse).
    """
    for file, child, tree in _config_files(path):
        if isinstance(tree, SyntaxError):
            return None
        for node in tree.body:
            targets = []
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, (ast.AnnAssign, ast.AugAssign, ast.For)):
                targets = [node.target]
            elif isinstance(node, ast.With):
                targets = [i.optional_vars for i in node.items if i.optional_vars is not None]
            names = [n for t in targets for n in _assigned_names(t)]
            for name in names:
                if name.id in RESERVED_CONFIG_NAMES:
                    via = f' (a _base_ of {child})' if child else ''
                    return ReservedConfigNameError(
                        f'{file}, line {name.lineno}{via}: the config defines {name.id!r}, a '
                        f'name that mmengine reserves for its own use (reserved: '
                        f'{", ".join(RESERVED_CONFIG_NAMES)}); rename the variable, e.g. '
                        f'{name.id}_',
                        file,
                        name.lineno,
                        name.id,
                    )
    return None


def find_config_syntax_error(path: str) -> SyntaxError | None:
    """The first syntax error in a Python config or in the files it inherits, with its file.

    Returns:
        SyntaxError | None: an error whose ``filename`` / ``lineno`` name the
        file (the config or one of its ``_base_`` files, recursively) and the
        line; ``None`` when they all parse.
    """
    for file, child, parsed in _config_files(path):
        if isinstance(parsed, SyntaxError):
            e = parsed
            via = f' (a _base_ of {child})' if child else ''
            return SyntaxError(
                f'{e.msg} in config file {file}{via}',
                (
                    file,
                    e.lineno,
                    e.offset,
                    e.text,
                    getattr(e, 'end_lineno', None),
                    getattr(e, 'end_offset', None),
                ),
            )
    return None


def load_config(path, cfg_options=None):
    """``Config.fromfile(path)`` with the ``--cfg-options`` overrides merged in.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        SyntaxError: the config or one of its ``_base_`` files does not parse;
            the message and ``filename`` / ``lineno`` name that file and line
            (mmengine reports ``File "<unknown>"``).
        ReservedConfigNameError: the config or one of its ``_base_`` files defines a
            top-level name that mmengine reserves (``text``, ``filename``, ...); the
            message names the file, the line and the name (mmengine's ``KeyError``
            names neither file nor line).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'config file {path} does not exist')
    try:
        cfg = Config.fromfile(path)
    except SyntaxError:
        located = find_config_syntax_error(path)
        if located is None:
            raise
        raise located from None
    except KeyError as e:
        if 'is reserved for config file' not in str(e):
            raise
        located = find_reserved_config_name(path)
        if located is None:
            raise
        raise located from None
    if cfg_options is not None:
        cfg.merge_from_dict(cfg_options)
    return cfg


def load_runner_config(path, cfg_options=None, work_dir=None, launcher='none'):
    """A config for the Runner: overrides merged, launcher and work dir set.

    The work dir is, by priority: ``work_dir``, the config's ``work_dir``,
    ``./work_dirs/{config file name without .py}``.
    """
    cfg = load_config(path, cfg_options)
    add_checkpoint_fit_hook(cfg)
    cfg.launcher = launcher
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(path))[0])
    return cfg


def add_checkpoint_fit_hook(cfg):
    """Make sure the Runner checks checkpoints against the model (``CheckpointFitHook``).

    Configs that inherit ``configs/_base_/default_runtime.py`` have it as
    ``default_hooks.checkpoint_fit``; others get it here. Setting
    ``default_hooks.checkpoint_fit=None`` in a config removes it.
    """
    hooks = cfg.get('default_hooks')
    if hooks is None:
        cfg.default_hooks = dict(checkpoint_fit=dict(type='CheckpointFitHook'))
    elif 'checkpoint_fit' not in hooks:
        hooks['checkpoint_fit'] = dict(type='CheckpointFitHook')
    return cfg
