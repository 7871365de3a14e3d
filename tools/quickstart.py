"""The quick start: generate a small DOTA-style dataset, train a rotated YOLOX on it, evaluate it.

    python tools/quickstart.py [--work-dir work_dirs/quickstart] [--data-root data/synthetic_dota]

1. writes (once, deterministically) 160 training and 40 held-out 256-px images
   of rotated objects of three classes, in the split-DOTA layout;
2. trains configs/rotated_yolox/rotated_yolox_quickstart_synthetic.py with the
   ordinary mmengine Runner (GPU if present, else CPU);
3. evaluates the held-out images with DOTAMetric and prints ``AP50: ...``;
4. leaves prediction drawings (``WORK_DIR/<timestamp>/predictions``), the Task1
   files and their zip (``WORK_DIR/<timestamp>/Task1``) and the checkpoints in the work
   dir. The config saved there is reusable: ``tools/test.py WORK_DIR/CONFIG.py
   WORK_DIR/epoch_N.pth`` writes its Task1 files under its own ``<timestamp>`` folder.
"""

import argparse
import os.path as osp
import sys
import time

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)


from ai4rs.datasets.preparation.synthetic_dota import generate_dataset  # noqa: E402
from ai4rs.engine.runner import Runner, load_trained_weights  # noqa: E402
from ai4rs.utils import register_all_modules  # noqa: E402
from ai4rs.utils.cli import add_quickstart_arguments, enable_amp  # noqa: E402
from ai4rs.utils.config import load_config  # noqa: E402

CONFIG = osp.join(REPO_ROOT, 'configs', 'rotated_yolox', 'rotated_yolox_quickstart_synthetic.py')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_quickstart_arguments(parser, 'work_dirs/quickstart', 'data/synthetic_dota')
    return parser.parse_args(argv)


def build_config(args):
    cfg = load_config(CONFIG)
    data_root = osp.abspath(args.data_root) + '/'
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].dataset.data_root = data_root
    cfg.work_dir = args.work_dir
    if args.epochs is not None:
        cfg.train_cfg.max_epochs = args.epochs
        cfg.train_cfg.val_interval = args.epochs
        cfg.train_cfg.dynamic_intervals = None
        # warm-up (2 epochs in the config) then cosine; shorter runs keep at least one
        # cosine epoch, and a single epoch is warm-up only
        warmup = min(cfg.param_scheduler[0].end, args.epochs - 1)
        if warmup < 1:
            cfg.param_scheduler = [dict(cfg.param_scheduler[0], end=args.epochs)]
        else:
            cfg.param_scheduler[0].end = warmup
            cfg.param_scheduler[-1].begin = warmup
            cfg.param_scheduler[-1].end = args.epochs
            cfg.param_scheduler[-1].T_max = args.epochs - warmup
        for hook in cfg.custom_hooks:
            if hook.type == 'YOLOXModeSwitchHook':
                hook.num_last_epochs = max(1, args.epochs // 6)
    # held-out evaluation after training: Task1 files + zip, and drawings, in this run's
    # folder (WORK_DIR/TIMESTAMP); the placeholders stay in the config saved in the work
    # dir, so tools/test.py reusing it writes under its own run's folder
    cfg.test_evaluator = dict(
        type='DOTAMetric',
        format_only=True,
        merge_patches=True,
        outfile_prefix='{work_dir}/{timestamp}/Task1',
    )
    cfg.default_hooks.visualization = dict(
        type='DetVisualizationHook', draw=True, test_out_dir='predictions', score_thr=0.3
    )
    if args.amp:
        enable_amp(cfg)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    return cfg


def main(argv=None):
    args = parse_args(argv)
    start = time.time()
    generate_dataset(args.data_root, num_train=args.num_train, num_val=args.num_val)
    print(
        f'dataset: {osp.abspath(args.data_root)} ({args.num_train} train, {args.num_val} '
        'held-out images)'
    )
    register_all_modules(init_default_scope=False)
    cfg = build_config(args)
    runner = Runner.from_cfg(cfg)
    task1 = osp.join(runner.log_dir, 'Task1')
    runner.train()
    # evaluate the weights the checkpoint holds (EMA), as tools/test.py does
    load_trained_weights(runner)
    metrics = runner.val()
    runner.test()
    minutes = (time.time() - start) / 60
    work_dir = osp.abspath(cfg.work_dir)
    print(f'\nwork dir: {work_dir}')
    print(f'predictions drawn under: {osp.join(work_dir, runner.timestamp, "predictions")}')
    print(f'Task1 submission: {osp.join(task1, osp.basename(task1) + ".zip")}')
    print(f'time: {minutes:.1f} min')
    print(f'AP50: {metrics["dota/AP50"]:.4f}')


if __name__ == '__main__':
    main()
