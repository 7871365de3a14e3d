"""Test a detector: ``python tools/test.py CONFIG CHECKPOINT [--out FILE.pkl] [--show-dir DIR]``."""
import argparse
import os
import os.path as osp
import sys

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
    parser = argparse.ArgumentParser(description='Test (and evaluate) a detector')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the directory to save the evaluation metrics')
    parser.add_argument('--out', type=str,
                        help='dump the predictions to a pickle file (.pkl) for offline evaluation')
    parser.add_argument('--show', action='store_true', help='show prediction results')
    parser.add_argument('--show-dir', help='directory, under the work dir\'s timestamped '
                        'folder, where painted images are saved')
    parser.add_argument('--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings')
    parser.add_argument('--allow-partial-load', action='store_true',
                        help='load a checkpoint that does not fit the model: weights of '
                        'another shape are skipped, the rest loads (default: refuse it)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--tta', action='store_true',
                        help='test time augmentation (needs tta_model and tta_pipeline '
                        'in the config)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def trigger_visualization_hook(cfg, args):
    default_hooks = cfg.default_hooks
    if 'visualization' not in default_hooks:
        raise RuntimeError('--show and --show-dir need default_hooks.visualization '
                           "(e.g. dict(type='DetVisualizationHook')) in the config")
    vis = default_hooks['visualization']
    vis['draw'] = True
    if args.show:
        vis['show'] = True
        vis['wait_time'] = args.wait_time
    if args.show_dir:
        vis['test_out_dir'] = args.show_dir
    return cfg


def build_config(args):
    cfg = load_runner_config(args.config, args.cfg_options, args.work_dir, args.launcher)
    if args.allow_partial_load:
        cfg.allow_partial_load = True
    cfg.load_from = args.checkpoint
    if args.show or args.show_dir:
        cfg = trigger_visualization_hook(cfg, args)
    if args.tta:
        if 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
            raise RuntimeError(f'--tta: {args.config} defines no tta_model / tta_pipeline')
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        raise ValueError(f'--out must be a .pkl or .pickle file, got {args.out}')
    return cfg


def main(argv=None):
    args = parse_args(argv)
    add_project_paths()
    register_all_modules(init_default_scope=False)
    cfg = build_config(args)
    prepare_distributed(cfg, args.launcher)
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    if args.out is not None:
        from ai4rs.evaluation.metrics.dump_det_results import DumpDetResults
        runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=args.out))
    try:
        runner.test()
    except CheckpointMismatchError as e:
        # the summary, not a traceback: the checkpoint does not fit this config's model
        print(f'error: {e}', file=sys.stderr)
        sys.exit(1)
    teardown_distributed()


if __name__ == '__main__':
    main()
