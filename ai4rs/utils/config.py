"""Reading configs the way every ai4rs tool does."""
import os.path as osp

from mmengine.config import Config


def load_config(path, cfg_options=None):
    """``Config.fromfile(path)`` with the ``--cfg-options`` overrides merged in."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'config file {path} does not exist')
    cfg = Config.fromfile(path)
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
