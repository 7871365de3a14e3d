"""Train a detector: ``python tools/train.py CONFIG [--work-dir DIR] [--resume [PATH]] ...``."""

import argparse
import os.path as osp
import sys

# The repository root (for `projects.*` custom imports and an uninstalled ai4rs)
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from ai4rs.engine.runner import run_with_runner  # noqa: E402
from ai4rs.utils.cli import (  # noqa: E402
    add_config_arguments,
    add_runner_arguments,
    enable_amp,
    parse_tool_args,
    runner_config_from_args,
)
from ai4rs.utils.config import ReservedConfigNameError  # noqa: E402
from ai4rs.utils.paths import resolve_in_work_dir  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a detector')
    add_config_arguments(parser, 'train config file path')
    add_runner_arguments(parser, 'the dir to save logs and checkpoints')
    parser.add_argument(
        '--amp',
        action='store_true',
        default=False,
        help='enable automatic mixed precision training (float16 on GPU, bfloat16 on CPU)',
    )
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the learning rate by the actual batch size',
    )
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from the given checkpoint (a relative path that is not in the current '
        'directory is looked up in the work dir), or, with no value, from the latest '
        'checkpoint in the work dir',
    )
    return parse_tool_args(parser, argv)


def build_config(args):
    """The config after the command-line overrides, as the Runner will see it."""
    # work_dir: command line > config > ./work_dirs/CONFIG_NAME
    cfg = runner_config_from_args(args)

    if args.amp:
        if cfg.optim_wrapper.get('type', 'OptimWrapper') == 'AmpOptimWrapper':
            print('AMP training is already enabled in the config.')
        enable_amp(cfg)

    if args.auto_scale_lr:
        auto = cfg.get('auto_scale_lr')
        if not auto or 'base_batch_size' not in auto:
            raise RuntimeError(
                '--auto-scale-lr needs `auto_scale_lr = dict(base_batch_size=...)` in the config'
            )
        cfg.auto_scale_lr.enable = True

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = resolve_in_work_dir(args.resume, cfg.work_dir, '--resume')
    return cfg


def main(argv=None):
    args = parse_args(argv)
    try:
        cfg = build_config(args)
    except (FileNotFoundError, ReservedConfigNameError) as e:  # config, --resume checkpoint
        sys.exit(f'error: {e}')
    run_with_runner(cfg, args.launcher, lambda runner: runner.train())


if __name__ == '__main__':
    main()
