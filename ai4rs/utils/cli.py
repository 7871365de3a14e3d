"""The command-line pieces every ai4rs tool shares: config, ``--cfg-options``, launcher, work dir.

A tool builds its own ``argparse`` parser and adds these groups, so the same
option has the same name, help and behaviour everywhere::

    parser = argparse.ArgumentParser(description='...')
    add_config_arguments(parser)           # CONFIG and --cfg-options
    add_runner_arguments(parser)           # --work-dir --allow-partial-load --launcher
    args = parse_tool_args(parser, argv)   # also exports LOCAL_RANK
    cfg = runner_config_from_args(args)
    # then ai4rs.engine.runner.run_with_runner(cfg, args.launcher, lambda r: r.train())
"""

import argparse
import contextlib
import logging
import os

from mmengine.config import Config, DictAction
from mmengine.logging import MMLogger

from .checkpoint import PARTIAL_LOAD_FLAG, PARTIAL_LOAD_KEY
from .config import load_config, load_runner_config
from .paths import add_project_paths

LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')

CFG_OPTIONS_HELP = (
    'override config settings, KEY=VALUE pairs merged into the config, e.g. '
    'train_dataloader.batch_size=2 "model.backbone.out_indices=(2,3,4)"; a list '
    'item by its index: test_dataloader.dataset.pipeline.1.scale="(512,512)"'
)


def add_cfg_options_argument(parser: argparse.ArgumentParser) -> None:
    """``--cfg-options KEY=VALUE ...`` (mmengine's ``DictAction``) into ``args.cfg_options``."""
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE', help=CFG_OPTIONS_HELP
    )


def add_quickstart_arguments(
    parser: argparse.ArgumentParser, work_dir: str, data_root: str
) -> None:
    """The options both quick starts take: ``--work-dir``, ``--data-root`` (the generated
    dataset), ``--epochs``, ``--num-train``, ``--num-val``, ``--amp`` and ``--cfg-options``."""
    parser.add_argument('--work-dir', default=work_dir)
    parser.add_argument(
        '--data-root',
        default=data_root,
        help='where the generated dataset is written (reused if present)',
    )
    parser.add_argument(
        '--epochs', type=int, default=None, help="training epochs (default: the config's)"
    )
    parser.add_argument('--num-train', type=int, default=160)
    parser.add_argument('--num-val', type=int, default=40)
    parser.add_argument(
        '--amp',
        action='store_true',
        help='mixed precision training (float16 on a GPU, bfloat16 on the CPU)',
    )
    add_cfg_options_argument(parser)


def add_config_arguments(
    parser: argparse.ArgumentParser, config_help: str = 'config file path'
) -> None:
    """The positional ``config`` and ``--cfg-options``."""
    parser.add_argument('config', help=config_help)
    add_cfg_options_argument(parser)


def add_launcher_arguments(parser: argparse.ArgumentParser) -> None:
    """``--launcher`` and the ``--local_rank`` that ``torch.distributed.launch`` passes."""
    parser.add_argument('--launcher', choices=LAUNCHERS, default='none', help='job launcher')
    # torch.distributed.launch passes --local_rank, torchrun sets LOCAL_RANK
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0, help=argparse.SUPPRESS)


def add_runner_arguments(
    parser: argparse.ArgumentParser,
    work_dir_help: str = 'the directory for logs, checkpoints and '
    "metrics (default: the config's work_dir, else ./work_dirs/CONFIG)",
) -> None:
    """``--work-dir``, ``--allow-partial-load`` and the launcher options of Runner tools."""
    parser.add_argument('--work-dir', help=work_dir_help)
    parser.add_argument(
        PARTIAL_LOAD_FLAG,
        action='store_true',
        help='load a checkpoint that does not fit the model: weights of '
        'another shape are skipped, the rest loads (default: refuse it with '
        'a summary)',
    )
    add_launcher_arguments(parser)


def add_shape_argument(parser: argparse.ArgumentParser, default=(1024, 1024)) -> None:
    """``--shape H [W]``; read it with :func:`shape_from_args`."""
    parser.add_argument(
        '--shape',
        type=int,
        nargs='+',
        default=list(default),
        help='input height and width (one value: square)',
    )


def shape_from_args(args: argparse.Namespace) -> tuple[int, int]:
    """``(h, w)`` from ``--shape`` (one value means a square)."""
    shape = tuple(args.shape) * (2 if len(args.shape) == 1 else 1)
    if len(shape) != 2 or min(shape) < 1:
        raise SystemExit(f'--shape takes one or two positive integers, got {args.shape}')
    return shape


def parse_tool_args(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """``parser.parse_args(argv)``; with launcher options, ``LOCAL_RANK`` is exported."""
    args = parser.parse_args(argv)
    if hasattr(args, 'local_rank') and 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def config_from_args(args: argparse.Namespace, init_scope: bool = True) -> Config:
    """The config named by ``args.config`` with ``args.cfg_options`` merged in.

    ``projects.*`` packages become importable (:func:`add_project_paths`);
    with ``init_scope``, every ai4rs module is registered and the config's
    ``default_scope`` (``'ai4rs'`` when absent) is made current, so registries
    can build what the config names.
    """
    add_project_paths()
    cfg = load_config(args.config, getattr(args, 'cfg_options', None))
    if init_scope:
        from mmengine.registry import init_default_scope

        from .setup_env import register_all_modules

        register_all_modules(init_default_scope=False)
        init_default_scope(cfg.get('default_scope', 'ai4rs'))
    return cfg


def runner_config_from_args(args: argparse.Namespace) -> Config:
    """The config for a Runner tool (train / test): overrides, launcher, work dir, partial load."""
    from .setup_env import register_all_modules

    add_project_paths()
    register_all_modules(init_default_scope=False)
    cfg = load_runner_config(args.config, args.cfg_options, args.work_dir, args.launcher)
    if getattr(args, PARTIAL_LOAD_KEY, False):
        cfg[PARTIAL_LOAD_KEY] = True
    return cfg


def enable_amp(cfg: Config) -> None:
    """Train with automatic mixed precision, as ``tools/train.py --amp`` does.

    ``optim_wrapper.type`` becomes ``AmpOptimWrapper`` with dynamic loss scaling: float16
    autocast on a GPU (mmengine's wrapper), bfloat16 on the CPU (ai4rs's wrapper of that
    name). A config that already uses it is left as it is.

    Raises:
        ValueError: the config's optimizer wrapper is neither ``OptimWrapper`` nor
            ``AmpOptimWrapper``.
    """
    wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if wrapper == 'AmpOptimWrapper':
        return
    if wrapper != 'OptimWrapper':
        raise ValueError(f'AMP needs optim_wrapper.type OptimWrapper, got {wrapper}')
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.loss_scale = 'dynamic'


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    """What the image demos share: ``IMG CONFIG CHECKPOINT`` (a ``.pth`` checkpoint or an
    exported ``.onnx`` file), ``--out-file``, ``--allow-partial-load``, ``--device``,
    ``--score-thr``. Check the files with :func:`check_demo_files` after parsing."""
    parser.add_argument('img', help='image file')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint (.pth) or exported model (.onnx)')
    parser.add_argument('--out-file', default=None, help='write the drawing here')
    parser.add_argument(
        '--allow-partial-load',
        action='store_true',
        help='load a checkpoint that does not fit the model (default: refuse it)',
    )
    parser.add_argument('--device', default='cpu', help='e.g. cpu or cuda:0')
    parser.add_argument('--score-thr', type=float, default=0.3, help='draw scores above this')


def add_bf16_argument(parser: argparse.ArgumentParser) -> None:
    """``--bf16`` (a bfloat16 network; an error where the device has no native bfloat16) or
    ``--bf16 auto`` (bfloat16 where supported, else float32 with a logged line); absent:
    float32. The value (None, 'on' or 'auto') is ``init_detector``'s ``bf16``."""
    parser.add_argument(
        '--bf16',
        nargs='?',
        const='on',
        choices=['on', 'auto'],
        help='bfloat16 network (decoding and post-processing stay float32): --bf16 (an error '
        'where the device has no native bfloat16) or --bf16 auto (float32 there, logged)',
    )


def check_demo_files(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """A usage error (one line, exit 2) for an ``img`` / ``config`` / ``checkpoint`` that is
    not a file (URLs pass)."""
    for what, path in (
        ('image', args.img),
        ('config', args.config),
        ('checkpoint', args.checkpoint),
    ):
        if '://' not in path and not os.path.isfile(path):
            parser.error(f'{what} file not found: {path}')


@contextlib.contextmanager
def warnings_only():
    """Within the block the current MMLogger's handlers show warnings and errors only.

    For tools that print their results: mmengine's INFO log would add, before them, one
    entry per parameter of a randomly initialised model (``init_weights``' report, ~1,000
    lines).
    """
    logger = MMLogger.get_current_instance()
    levels = [(handler, handler.level) for handler in logger.handlers]
    for handler, level in levels:
        handler.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        for handler, level in levels:
            handler.setLevel(level)
