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

import logging
import os.path as osp
import pickle
import re
import zipfile
from collections import OrderedDict
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
import torch
from mmengine.logging import HistoryBuffer, print_log
from mmengine.runner.checkpoint import CheckpointLoader


class CheckpointSecurityError(RuntimeError):
    """A checkpoint holds objects whose loading could run code; it was not loaded."""


class NotACheckpointError(ValueError):
    """The file is not a PyTorch checkpoint at all (an image, a text file, ...)."""


#: leading bytes of files that people hand to a tool in place of a checkpoint
_KNOWN_SIGNATURES = (
    (b'\xff\xd8\xff', 'a JPEG image'),
    (b'\x89PNG', 'a PNG image'),
    (b'II*\x00', 'a TIFF image'),
    (b'MM\x00*', 'a TIFF image'),
    (b'GIF8', 'a GIF image'),
    (b'BM', 'a BMP image'),
    (b'\x1f\x8b', 'a gzip archive'),
    (b'%PDF', 'a PDF document'),
    (b'\x89HDF', 'an HDF5 file (a Keras/TensorFlow model?)'),
)


def checkpoint_file_problem(filename: str) -> str | None:
    """Why ``filename`` cannot be a file written by ``torch.save``, or None if it can be.

    ``torch.save`` writes a zip archive (torch >= 1.6) or, with the legacy format, a
    pickle of protocol 2 or more, whose first byte is the PROTO opcode ``0x80``.
    """
    with open(filename, 'rb') as f:
        head = f.read(8)
    if not head:
        return 'it is empty'
    if zipfile.is_zipfile(filename) or head[:1] == b'\x80':
        return None
    for signature, kind in _KNOWN_SIGNATURES:
        if head.startswith(signature):
            return f'it is {kind}'
    if all(32 <= b < 127 or b in b'\t\r\n' for b in head):
        return f'it is a text file (starts with {head.decode("ascii")!r})'
    return f'it starts with the bytes {head.hex(" ")}'


_DEFAULT_STATISTICS = ('min', 'max', 'current', 'mean')


def _history_buffer_getattr(obj, name):
    """``getattr`` restricted to ``HistoryBuffer``'s statistic methods."""
    allowed = set(_DEFAULT_STATISTICS) | set(HistoryBuffer._statistics_methods)
    if obj is HistoryBuffer and name in allowed:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'refused getattr({obj!r}, {name!r}): only the statistic methods of '
        'mmengine HistoryBuffer may be resolved while loading a checkpoint'
    )


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
    """What torch's weights-only unpickler refused, from its error message.

    The offending global's name when the message gives it (``GLOBAL
    posix.system``: zip checkpoints say "Unsupported global", legacy non-zip
    ones "Trying to load unsupported GLOBAL ... whose module ... is blocked"),
    else the informative line.
    """
    names = list(dict.fromkeys(re.findall(r'GLOBAL ([A-Za-z_][\w.]*)', message)))
    if names:
        return ', '.join(names)
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
        NotACheckpointError: the file is no ``torch.save`` output (neither a zip
            archive nor a pickle), e.g. an image given in place of the checkpoint.
        CheckpointSecurityError: the file names a global outside the
            allow-list (e.g. ``os.system``); nothing of it was executed.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} can not be found.')
    problem = checkpoint_file_problem(filename)
    if problem is not None:
        raise NotACheckpointError(
            f'{filename} is not a PyTorch checkpoint: {problem} (a checkpoint is a .pth '
            'file written by torch.save, e.g. WORK_DIR/epoch_12.pth)'
        )
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


# --------------------------------------------------------------------------
# Does a checkpoint fit the model?
# --------------------------------------------------------------------------

#: the config key (and ``init_detector`` argument) that opts into partial loading
PARTIAL_LOAD_KEY = 'allow_partial_load'
#: the command-line flag of the tools that sets :data:`PARTIAL_LOAD_KEY`
PARTIAL_LOAD_FLAG = '--allow-partial-load'
#: a key whose name has one of these words in a component is a class layer
CLASS_LAYER_WORDS = ('cls', 'class')


class CheckpointMismatchError(RuntimeError):
    """A checkpoint does not fit the model it was to be loaded into; nothing was loaded."""


@dataclass
class CheckpointFit:
    """How the keys of a checkpoint's state dict meet those of a model.

    Attributes:
        matched (list[str]): keys in both, with equal shapes.
        missing (list[str]): model keys the checkpoint lacks.
        unexpected (list[str]): checkpoint keys the model lacks.
        wrong_shape (list[tuple[str, tuple, tuple]]): ``(key, checkpoint
            shape, model shape)`` for keys in both whose shapes differ.
        class_layers (list[str]): the wrong-shape keys that are class layers
            (see :func:`is_class_layer_change`).
        model_numel (int): elements in the model's state dict.
        missing_numel (int): elements of the model that the checkpoint does
            not provide (missing keys plus wrong-shape keys).
    """

    matched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    wrong_shape: list[tuple[str, tuple, tuple]] = field(default_factory=list)
    class_layers: list[str] = field(default_factory=list)
    model_numel: int = 0
    missing_numel: int = 0

    @property
    def other_wrong_shape(self) -> list[tuple[str, tuple, tuple]]:
        """Wrong-shape keys that are not class layers."""
        skip = set(self.class_layers)
        return [item for item in self.wrong_shape if item[0] not in skip]

    @property
    def missing_share(self) -> float:
        """Share (0..1) of the model's elements the checkpoint does not provide."""
        return self.missing_numel / self.model_numel if self.model_numel else 0.0

    @property
    def counts(self) -> str:
        return (
            f'{len(self.matched)} matched, {len(self.missing)} missing, '
            f'{len(self.unexpected)} unexpected, {len(self.wrong_shape)} wrong shape'
        )


def is_class_layer_change(key: str, ckpt_shape: tuple, model_shape: tuple) -> bool:
    """Whether a shape change is a change of the number of classes.

    True when the two shapes have the same rank and differ only in their first
    dimension (the output channels of a conv / linear layer, or its bias) and
    a dot-separated component of ``key`` contains one of
    :data:`CLASS_LAYER_WORDS` (e.g. ``bbox_head.multi_level_conv_cls.0.weight``).
    """
    if len(ckpt_shape) != len(model_shape) or not model_shape:
        return False
    if tuple(ckpt_shape[1:]) != tuple(model_shape[1:]):
        return False
    parts = key.lower().split('.')
    return any(word in part for part in parts for word in CLASS_LAYER_WORDS)


def _numel(value) -> int:
    return int(value.numel()) if isinstance(value, torch.Tensor) else 0


def _shape(value) -> tuple:
    return tuple(value.shape) if hasattr(value, 'shape') else ()


def compare_state_dicts(model_state: dict, ckpt_state: dict) -> CheckpointFit:
    """Compare a model's state dict with a checkpoint's (keys already revised).

    Args:
        model_state (dict[str, Tensor]): ``model.state_dict()``.
        ckpt_state (dict[str, Tensor]): the checkpoint's ``state_dict``.

    Returns:
        CheckpointFit: the key sets, in the model's key order.
    """
    fit = CheckpointFit()
    for key, value in model_state.items():
        fit.model_numel += _numel(value)
        if key not in ckpt_state:
            fit.missing.append(key)
            fit.missing_numel += _numel(value)
            continue
        ckpt_shape, model_shape = _shape(ckpt_state[key]), _shape(value)
        if ckpt_shape == model_shape:
            fit.matched.append(key)
            continue
        fit.wrong_shape.append((key, ckpt_shape, model_shape))
        fit.missing_numel += _numel(value)
        if is_class_layer_change(key, ckpt_shape, model_shape):
            fit.class_layers.append(key)
    fit.unexpected = [key for key in ckpt_state if key not in model_state]
    return fit


def _examples(keys: list[str], n: int = 3) -> str:
    shown = ', '.join(keys[:n])
    return shown + (f', ... ({len(keys) - n} more)' if len(keys) > n else '')


def _top_modules(keys: list[str]) -> str:
    counts: dict[str, int] = {}
    for key in keys:
        top = key.split('.', 1)[0]
        counts[top] = counts.get(top, 0) + 1
    return ', '.join(f'{name} ({n})' for name, n in counts.items())


def module_groups(keys: list[str]) -> str:
    """Keys grouped by the module they belong to, with counts, e.g.
    ``bbox_head.head_module.ang_preds (21)``: a key's module is its path up to the first
    numeric component (a ModuleList index), or without its last component when it has none."""
    counts: dict[str, int] = {}
    for key in keys:
        parts = key.split('.')
        cut = next((i for i, part in enumerate(parts) if part.isdigit()), len(parts) - 1)
        module = '.'.join(parts[: max(cut, 1)])
        counts[module] = counts.get(module, 0) + 1
    return ', '.join(f'{name} ({n})' for name, n in counts.items())


def describe_load(fit: CheckpointFit, source: str = 'the checkpoint') -> str | None:
    """The load report of an accepted checkpoint that does not cover the model exactly: the
    model weights it does not provide (they keep their initialisation) and the weights it
    holds that the model has no place for, by module. None when the two match key for key."""
    if not fit.missing and not fit.unexpected:
        return None
    total = len(fit.matched) + len(fit.missing) + len(fit.wrong_shape)
    lines = [f"{source}: loaded {len(fit.matched)} of the model's {total} weights."]
    if fit.missing:
        lines.append(
            f'  new in the model (not in the checkpoint, they keep their initialisation): '
            f'{module_groups(fit.missing)}'
        )
    if fit.unexpected:
        lines.append(
            f'  in the checkpoint but not in the model (not used): {module_groups(fit.unexpected)}'
        )
    return '\n'.join(lines)


def _common_prefix_shift(fit: CheckpointFit) -> str | None:
    """A key prefix that, added to or removed from the checkpoint's keys, explains the misfit."""
    if not fit.missing or not fit.unexpected:
        return None
    missing = set(fit.missing)
    for unexpected in fit.unexpected[:20]:
        for key in fit.missing:
            if unexpected.endswith('.' + key):
                prefix = unexpected[: -len(key)]
                hits = sum(
                    1
                    for u in fit.unexpected
                    if u.startswith(prefix) and u[len(prefix) :] in missing
                )
                if hits >= len(fit.unexpected) // 2:
                    return f"the checkpoint's keys carry the extra prefix '{prefix}'"
            if key.endswith('.' + unexpected):
                prefix = key[: -len(unexpected)]
                hits = sum(1 for u in fit.unexpected if prefix + u in missing)
                if hits >= len(fit.unexpected) // 2:
                    return (
                        f"the checkpoint's keys lack the prefix '{prefix}' (e.g. a "
                        f'{prefix.rstrip(".")}-only checkpoint: load it through that '
                        "module's init_cfg=dict(type='Pretrained', checkpoint=...) "
                        'instead of load_from)'
                    )
    return None


def likely_cause(fit: CheckpointFit) -> str:
    """A one-line guess at why a checkpoint does not fit (see :func:`describe_fit`)."""
    prefix = _common_prefix_shift(fit)
    if prefix:
        return prefix
    few_key_changes = len(fit.missing) + len(fit.unexpected) <= 0.1 * max(len(fit.matched), 1)
    if fit.other_wrong_shape and few_key_changes:
        return (
            'the checkpoint is from a different model size (same layers, other widths or '
            'channel counts, e.g. a YOLOX-t checkpoint with a YOLOX-s config): use the '
            'config the checkpoint was trained with'
        )
    if fit.class_layers and not fit.other_wrong_shape and few_key_changes:
        key, ckpt_shape, model_shape = next(
            item for item in fit.wrong_shape if item[0] == fit.class_layers[0]
        )
        return (
            f'the checkpoint was trained for {ckpt_shape[0]} classes and the model has '
            f'{model_shape[0]} (only the class layers differ): fine-tuning with '
            'tools/train.py and load_from skips them by itself'
        )
    if fit.missing and len(fit.unexpected) <= 0.1 * len(fit.missing):
        return 'the checkpoint holds only part of the model; it has nothing for: ' + _top_modules(
            fit.missing
        )
    return 'the checkpoint is from a different architecture (its key names do not match)'


def describe_fit(fit: CheckpointFit, source: str = 'the checkpoint') -> str:
    """A short summary of a misfit: counts, a few examples of each kind, likely cause."""
    lines = [
        f'{source} does not fit the model: {fit.counts} '
        f"({fit.missing_share:.1%} of the model's weights not provided)."
    ]
    if fit.wrong_shape:
        shown = '; '.join(
            f'{k}: checkpoint {tuple(c)} vs model {tuple(m)}' for k, c, m in fit.wrong_shape[:3]
        )
        more = f' ... ({len(fit.wrong_shape) - 3} more)' if len(fit.wrong_shape) > 3 else ''
        lines.append(f'  wrong shape: {shown}{more}')
    if fit.missing:
        lines.append(f'  missing: {_examples(fit.missing)}')
    if fit.unexpected:
        lines.append(f'  unexpected: {_examples(fit.unexpected)}')
    lines.append(f'  likely cause: {likely_cause(fit)}')
    return '\n'.join(lines)


def partial_load_hint() -> str:
    return (
        f'To load the matching weights anyway and leave the rest as initialised, opt in '
        f'explicitly: `{PARTIAL_LOAD_KEY} = True` in the config (tools/train.py and '
        f'tools/test.py: {PARTIAL_LOAD_FLAG} or --cfg-options {PARTIAL_LOAD_KEY}=True; '
        f'init_detector(..., {PARTIAL_LOAD_KEY}=True); demos: {PARTIAL_LOAD_FLAG}).'
    )


def revise_state_dict_keys(state_dict: dict, revise_keys=((r'^module\.', ''),)) -> dict:
    """The state dict with its keys rewritten by ``(pattern, replacement)`` pairs (as mmengine)."""
    metadata = getattr(state_dict, '_metadata', None)
    for pattern, replacement in revise_keys:
        state_dict = OrderedDict(
            (re.sub(pattern, replacement, k), v) for k, v in state_dict.items()
        )
    if metadata is not None:
        state_dict._metadata = metadata
    return state_dict


def fit_checkpoint_to_model(
    model: torch.nn.Module,
    checkpoint: dict,
    *,
    allow_partial_load: bool = False,
    allow_class_change: bool = False,
    max_missing_share: float = 0.1,
    source: str = 'the checkpoint',
    logger: str | logging.Logger = 'current',
) -> CheckpointFit:
    """Check that ``checkpoint`` fits ``model``; drop what may be skipped, or raise.

    The checkpoint is refused (:class:`CheckpointMismatchError`) when any
    weight has another shape in the model, or when the model weights it does
    not provide hold more than ``max_missing_share`` of the model's elements.
    Exceptions:

    * ``allow_class_change``: wrong-shape class layers (only the number of
      classes differs, :func:`is_class_layer_change`) are skipped, and logged,
      as when fine-tuning on a dataset with other classes;
    * ``allow_partial_load``: every wrong-shape weight is skipped, whatever is
      missing, and a warning summarises it.

    Skipped keys are removed from the checkpoint's state dict in place, so
    the loader that follows (mmengine's ``load_state_dict``) only sees
    weights of the right shape.

    Args:
        model (nn.Module): the (unwrapped) model to receive the weights.
        checkpoint (dict): a loaded checkpoint; its ``state_dict`` (or the
            dict itself when it has none) maps keys to tensors, optionally
            prefixed ``module.``.
        source (str): names the checkpoint in messages (its path).

    Returns:
        CheckpointFit: the comparison.
    """
    state_dict = checkpoint.get('state_dict', checkpoint)
    model_state = model.state_dict()
    fit = compare_state_dicts(model_state, revise_state_dict_keys(state_dict))
    bad_shapes = fit.other_wrong_shape if allow_class_change else fit.wrong_shape
    class_skip = fit.class_layers if allow_class_change else []
    not_provided = fit.missing_numel - sum(_numel(model_state[k]) for k in class_skip)
    too_much_missing = fit.model_numel and not_provided / fit.model_numel > max_missing_share
    if (bad_shapes or too_much_missing) and not allow_partial_load:
        raise CheckpointMismatchError(describe_fit(fit, source) + '\n' + partial_load_hint())

    skip = [k for k, _, _ in fit.wrong_shape] if allow_partial_load else class_skip
    if skip:
        # remove under the key as stored (possibly with a 'module.' prefix)
        stored = {re.sub(r'^module\.', '', k): k for k in state_dict}
        for key in skip:
            state_dict.pop(stored[key], None)
    if class_skip and not (allow_partial_load and bad_shapes):
        key, ckpt_shape, model_shape = next(
            item for item in fit.wrong_shape if item[0] == class_skip[0]
        )
        print_log(
            f'{source}: {ckpt_shape[0]} classes in the checkpoint, {model_shape[0]} in the '
            f'model; skipped the class layers {", ".join(class_skip)} (they keep their '
            'initialisation).',
            logger=logger,
            level=logging.WARNING,
        )
    report = describe_load(fit, source)
    if report and not allow_partial_load:
        print_log(report, logger=logger, level=logging.INFO)
    if allow_partial_load and (fit.wrong_shape or fit.missing or fit.unexpected):
        print_log(
            f'partial load ({PARTIAL_LOAD_KEY}=True): {describe_fit(fit, source)}\n  '
            f'skipped {len(skip)} wrong-shape weights; the weights not loaded keep their '
            'initialisation.',
            logger=logger,
            level=logging.WARNING,
        )
    return fit


def load_checkpoint_checked(
    model: torch.nn.Module,
    filename: str,
    *,
    allow_partial_load: bool = False,
    allow_class_change: bool = False,
    map_location='cpu',
) -> dict:
    """Load a checkpoint into ``model`` after :func:`fit_checkpoint_to_model` accepted it.

    The file is read through mmengine's :class:`CheckpointLoader` (local files
    through :func:`load_checkpoint_safely` once ai4rs is imported).

    Returns:
        dict: the checkpoint (with ``meta`` etc.).

    Raises:
        CheckpointMismatchError: see :func:`fit_checkpoint_to_model`.
    """
    from mmengine.runner.checkpoint import load_state_dict

    checkpoint = CheckpointLoader.load_checkpoint(filename, map_location=map_location)
    if not isinstance(checkpoint, dict):
        raise RuntimeError(f'no state_dict found in checkpoint file {filename}')
    fit_checkpoint_to_model(
        model,
        checkpoint,
        allow_partial_load=allow_partial_load,
        allow_class_change=allow_class_change,
        source=f'checkpoint {filename}',
    )
    state_dict = revise_state_dict_keys(checkpoint.get('state_dict', checkpoint))
    load_state_dict(model, state_dict, strict=False, logger='current')
    return checkpoint
