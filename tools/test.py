"""Test a detector: ``python tools/test.py CONFIG CHECKPOINT [--out FILE.pkl] [--show-dir DIR]``."""

import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from ai4rs.engine.runner import run_with_runner  # noqa: E402
from ai4rs.utils.cli import (  # noqa: E402
    add_config_arguments,
    add_runner_arguments,
    parse_tool_args,
    runner_config_from_args,
)
from ai4rs.utils.config import ReservedConfigNameError  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and evaluate) a detector')
    add_config_arguments(parser, 'test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    add_runner_arguments(parser, 'the directory to save the evaluation metrics')
    parser.add_argument(
        '--out',
        type=str,
        help='dump the predictions to a pickle file (.pkl) for offline evaluation',
    )
    parser.add_argument('--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir',
        help="directory, under the work dir's timestamped folder, where painted images are saved",
    )
    parser.add_argument('--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument(
        '--tta',
        action='store_true',
        help='test time augmentation (needs tta_model and tta_pipeline in the config)',
    )
    return parse_tool_args(parser, argv)


def trigger_visualization_hook(cfg, args):
    default_hooks = cfg.default_hooks
    if 'visualization' not in default_hooks:
        raise RuntimeError(
            '--show and --show-dir need default_hooks.visualization '
            "(e.g. dict(type='DetVisualizationHook')) in the config"
        )
    vis = default_hooks['visualization']
    vis['draw'] = True
    if args.show:
        vis['show'] = True
        vis['wait_time'] = args.wait_time
    if args.show_dir:
        vis['test_out_dir'] = args.show_dir
    return cfg


def build_config(args):
    cfg = runner_config_from_args(args)
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
    try:
        cfg = build_config(args)
    except (FileNotFoundError, ReservedConfigNameError) as e:
        sys.exit(f'error: {e}')

    def test(runner):
        if args.out is not None:
            from ai4rs.evaluation.metrics.dump_det_results import DumpDetResults

            runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=args.out))
        return runner.test()

    run_with_runner(cfg, args.launcher, test)


if __name__ == '__main__':
    main()
