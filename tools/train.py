"""Train a detector: ``python tools/train.py CONFIG [--work-dir DIR] [--resume [PATH]] ...``."""
import argparse
import os
import os.path as osp
import sys

# The repository root (for `projects.*` custom imports and an uninstalled ai4rs)
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import DictAction  # noqa: E402
from mmengine.registry import RUNNERS  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from ai4rs.utils import register_all_modules  # noqa: E402
from ai4rs.utils.checkpoint import CheckpointMismatchError  # noqa: E402
from ai4rs.utils.config import load_runner_config  # noqa: E402
from ai4rs.utils.dist import prepare_distributed, teardown_distributed  # noqa: E402
from ai4rs.utils.paths import add_project_paths  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a detector')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and checkpoints')
    parser.add_argument('--amp', action='store_true', default=False,
                        help='enable automatic mixed precision training '
                        '(float16 on GPU, bfloat16 on CPU)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rate by the actual batch size')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from the given checkpoint, or, with no value, from '
                        'the latest checkpoint in the work dir')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. '
                        'train_dataloader.batch_size=2 "model.backbone.out_indices=(2,3,4)"')
    parser.add_argument('--allow-partial-load', action='store_true',
                        help='load a checkpoint that does not fit the model: weights of '
                        'another shape are skipped, the rest loads (default: refuse it)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    # torch.distributed.launch passes --local_rank, torchrun sets LOCAL_RANK
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def build_config(args):
    """The config after the command-line overrides, as the Runner will see it."""
    # work_dir: command line > config > ./work_dirs/CONFIG_NAME
    cfg = load_runner_config(args.config, args.cfg_options, args.work_dir, args.launcher)
    if args.allow_partial_load:
        cfg.allow_partial_load = True

    if args.amp:
        optim_wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if optim_wrapper == 'AmpOptimWrapper':
            print('AMP training is already enabled in the config.')
        else:
            if optim_wrapper != 'OptimWrapper':
                raise ValueError('--amp needs optim_wrapper.type OptimWrapper, '
                                 f'got {optim_wrapper}')
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'

    if args.auto_scale_lr:
        auto = cfg.get('auto_scale_lr')
        if not auto or 'base_batch_size' not in auto:
            raise RuntimeError('--auto-scale-lr needs `auto_scale_lr = dict(base_batch_size=...)` '
                               'in the config')
        cfg.auto_scale_lr.enable = True

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    return cfg


def main(argv=None):
    args = parse_args(argv)
    add_project_paths()
    register_all_modules(init_default_scope=False)
    cfg = build_config(args)
    prepare_distributed(cfg, args.launcher)
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    try:
        runner.train()
    except CheckpointMismatchError as e:
        # the summary, not a traceback: the checkpoint does not fit this config's model
        print(f'error: {e}', file=sys.stderr)
        sys.exit(1)
    teardown_distributed()


if __name__ == '__main__':
    main()
