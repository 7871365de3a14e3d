"""Test a detector: ``python tools/test.py CONFIG CHECKPOINT [--out FILE.pkl] [--show-dir DIR]``.

CHECKPOINT may be an ``.onnx`` file (``init_detector(..., backend='onnxruntime',
onnx_file=...)`` or ``tools/deployment/export_onnx.py``): the test loop then runs it with
onnxruntime (:func:`ai4rs.apis.deployment.backend.run_test_loop_with_onnx`).

The test loop runs the model in inference mode (Conv+BN fused: see
:func:`ai4rs.models.utils.inference_mode.to_inference_mode`) unless ``--no-inference-mode``;
``--bf16`` makes its network bfloat16 (``--bf16 auto``: where the device supports it; see
docs/model_zoo.md, "bfloat16 inference"). On CPU the inference model is channels-last (as
``init_detector``'s default ``channels_last='auto'``) unless ``--no-channels-last``.
"""

import argparse
import copy
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from ai4rs.engine.runner import replace_test_step, run_with_runner  # noqa: E402
from ai4rs.utils.cli import (  # noqa: E402
    add_bf16_argument,
    add_config_arguments,
    add_runner_arguments,
    parse_tool_args,
    runner_config_from_args,
)
from ai4rs.utils.config import ReservedConfigNameError  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and evaluate) a detector')
    add_config_arguments(parser, 'test config file path')
    parser.add_argument(
        'checkpoint', help='checkpoint file (.pth), or an exported model (.onnx: onnxruntime)'
    )
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
    parser.add_argument(
        '--no-inference-mode',
        action='store_true',
        help='test the eager model (no Conv+BN fusion)',
    )
    parser.add_argument(
        '--no-channels-last',
        action='store_true',
        help='keep the inference model contiguous (default on CPU: channels-last, faster)',
    )
    add_bf16_argument(parser)
    return parse_tool_args(parser, argv)


def inference_mode_test_step(bf16=None, channels_last='auto'):
    """``runner -> test_step`` of an inference-mode copy of the runner's model (Conv+BN fused;
    ``bf16``: None (float32), 'on' or 'auto', :func:`ai4rs.models.utils.inference_mode.
    resolve_bf16`; ``channels_last``: True, False or 'auto', ``resolve_channels_last``), for
    :func:`ai4rs.engine.runner.replace_test_step`: the copy is made when the test epoch starts,
    after the checkpoint is loaded and an EMA hook swapped its weights in; the runner's model
    itself stays eager."""
    from ai4rs.models.utils.inference_mode import (
        resolve_bf16,
        resolve_channels_last,
        to_inference_mode,
    )

    def make(runner):
        device = next(runner.model.parameters()).device
        kwargs = dict(fuse=True, channels_last=resolve_channels_last(channels_last, device))
        if bf16 is not None:
            if resolve_bf16(bf16, device):
                kwargs['bf16'] = True
        return to_inference_mode(copy.deepcopy(runner.model), **kwargs).test_step

    return make


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


def is_onnx(args) -> bool:
    return str(args.checkpoint).endswith('.onnx')


def build_config(args):
    cfg = runner_config_from_args(args)
    # an .onnx file is not loaded into the model: its graph replaces the model's test_step
    cfg.load_from = None if is_onnx(args) else args.checkpoint
    if args.show or args.show_dir:
        cfg = trigger_visualization_hook(cfg, args)
    if args.tta and is_onnx(args):
        raise ValueError(f'--tta runs the PyTorch model: give the .pth, not {args.checkpoint}')
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
    if args.bf16 is not None and args.no_inference_mode:
        sys.exit('error: --bf16 converts the inference model: drop --no-inference-mode')
    if args.bf16 == 'on' and is_onnx(args):
        sys.exit(
            f'error: --bf16: {args.checkpoint} runs on onnxruntime, in the precision of the '
            'export (float32); give the .pth'
        )
    if args.bf16 == 'on':
        import torch

        from ai4rs.models.utils.inference_mode import resolve_bf16

        device = 'cuda' if torch.cuda.is_available() else 'cpu'  # the runner's device
        try:
            resolve_bf16(args.bf16, device)  # an unsupported --bf16 fails before any work
        except ValueError as e:
            sys.exit(f'error: --bf16: {e}')
    try:
        cfg = build_config(args)
    except (FileNotFoundError, ReservedConfigNameError, ValueError) as e:
        sys.exit(f'error: {e}')

    def test(runner):
        if args.out is not None:
            from ai4rs.evaluation.metrics.dump_det_results import DumpDetResults

            runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=args.out))
        if is_onnx(args):
            from ai4rs.apis.deployment.backend import run_test_loop_with_onnx

            run_test_loop_with_onnx(runner, args.checkpoint)
        elif not args.no_inference_mode:
            channels_last = False if args.no_channels_last else 'auto'
            replace_test_step(runner, inference_mode_test_step(args.bf16, channels_last))
        return runner.test()

    return run_with_runner(cfg, args.launcher, test)


if __name__ == '__main__':
    main()
