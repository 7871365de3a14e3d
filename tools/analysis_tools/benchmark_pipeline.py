"""Training-pipeline speed: images/s of one data-loading worker for a config's train pipeline.

    python tools/analysis_tools/benchmark_pipeline.py \
        configs/yolo_world_v2/yolo_world_v2_l_vlpan_bn_2e-4_80e_8gpus_mask-refine_finetune_coco.py \
        [--num-images 48] [--img-size 640] [--num-iters 100] [--warmup 10] [--profile 25]

The config's ``train_dataloader.dataset`` (with its real ``train_pipeline``: Mosaic, affine with
mask refinement, MixUp, ...) is pointed at a generated COCO-format set
(:func:`ai4rs.datasets.preparation.synthetic_coco.generate_dataset`: ``--num-images`` images of
``--img-size`` pixels, written to a temporary folder, or ``--data-root`` to reuse one); its
classes and class texts become the generated set's. Samples are produced in the main process,
one after the other, as one data-loader worker does (OpenCV threads as the config's
``env_cfg.mp_cfg.opencv_num_threads``, default 0 = none, as mmengine's Runner sets them; one torch
thread): the figure is per worker (a DataLoader with ``num_workers=N`` on N free cores gives about
N times as much). Both wall-clock images/s and images per CPU second of the process are
printed; on a machine shared with other jobs the second is the steadier figure.

``Albu`` needs the optional ``albumentations``; when it is not installed the step is dropped
from the pipeline (with a printed note), as the recipe itself must be edited to train without
it. ``--profile N`` runs the timed loop once more under cProfile and prints the N functions
with the largest cumulative time.
"""

import argparse
import copy
import cProfile
import io
import os.path as osp
import pstats
import random
import sys
import tempfile
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import ai4rs  # noqa: E402,F401,I001  (first: sets the OpenMP wait policy before torch loads)
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from ai4rs.datasets.preparation.synthetic_coco import CLASSES, PALETTE, generate_dataset  # noqa: E402
from ai4rs.registry import DATASETS  # noqa: E402
from ai4rs.utils.cli import add_config_arguments, config_from_args  # noqa: E402


def albumentations_installed() -> bool:
    try:
        import albumentations  # noqa: F401
    except ImportError:
        return False
    return True


def drop_transforms(pipeline: list, type_name: str) -> tuple[list, int]:
    """``pipeline`` without the steps of type ``type_name``, also inside the ``pre_transform``
    lists of mixing transforms; returns (new pipeline, number of steps dropped)."""
    kept, dropped = [], 0
    for step in pipeline:
        if isinstance(step, dict) and step.get('type') == type_name:
            dropped += 1
            continue
        if isinstance(step, dict) and isinstance(step.get('pre_transform'), list):
            step = dict(step)
            step['pre_transform'], n = drop_transforms(step['pre_transform'], type_name)
            dropped += n
        kept.append(step)
    return kept, dropped


def point_to_synthetic(dataset_cfg: dict, data_root: str, split: str = 'train') -> dict:
    """A copy of a dataset config (possibly wrapped, e.g. ``MultiModalDataset``) whose
    annotated dataset reads the generated set under ``data_root`` (its classes, palette and
    class texts)."""
    cfg = copy.deepcopy(dataset_cfg)
    node = cfg
    while 'ann_file' not in node:
        if 'dataset' not in node:
            raise KeyError(
                "benchmark_pipeline: no dataset with an ann_file in the config's "
                'train_dataloader.dataset'
            )
        if 'class_text_path' in node:
            node['class_text_path'] = osp.join(data_root, 'texts', 'class_texts.json')
        node = node['dataset']
    node.update(
        data_root=data_root,
        ann_file=f'annotations/instances_{split}.json',
        data_prefix=dict(img=f'{split}/'),
        metainfo=dict(classes=CLASSES, palette=PALETTE),
    )
    return cfg


def time_samples(dataset, num_iters: int, warmup: int, seed: int = 0) -> tuple[float, float]:
    """``dataset[i]`` (i cycling over the set) in this process: (images per wall-clock second,
    images per CPU second of this process). On a machine shared with other jobs the CPU
    figure is the steadier estimate of one worker on a free core."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    n = len(dataset)
    for i in range(warmup):
        dataset[i % n]
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(num_iters):
        dataset[(warmup + i) % n]
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return num_iters / wall, num_iters / max(cpu, 1e-9)


def profile_samples(dataset, num_iters: int, top: int, seed: int = 0) -> str:
    """cProfile of ``num_iters`` samples: the ``top`` functions by cumulative time."""
    profiler = cProfile.Profile()
    random.seed(seed)
    np.random.seed(seed)
    profiler.enable()
    for i in range(num_iters):
        dataset[i % len(dataset)]
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats('cumulative').print_stats(top)
    return out.getvalue()


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_config_arguments(parser)
    parser.add_argument(
        '--data-root',
        default=None,
        help='a folder made by the synthetic COCO generator (default: generate '
        'one in a temporary folder)',
    )
    parser.add_argument('--num-images', type=int, default=48, help='images to generate')
    parser.add_argument('--img-size', type=int, default=640, help='side of generated images')
    parser.add_argument('--num-iters', type=int, default=100, help='timed samples')
    parser.add_argument('--warmup', type=int, default=10, help='untimed samples first')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--profile',
        type=int,
        default=0,
        metavar='N',
        help='also profile the loop and print the top N functions',
    )
    return parser.parse_args(argv)


def train_dataset_cfg(cfg) -> dict:
    """The config's ``train_dataloader.dataset`` as a plain dict, ``Albu`` dropped (with a
    printed note) when albumentations is not installed."""
    dataset_cfg = cfg.train_dataloader.dataset
    dataset_cfg = dataset_cfg.to_dict() if hasattr(dataset_cfg, 'to_dict') else dict(dataset_cfg)
    if not albumentations_installed():
        dataset_cfg['pipeline'], dropped = drop_transforms(dataset_cfg['pipeline'], 'Albu')
        if dropped:
            print(
                f'note: albumentations is not installed; {dropped} Albu step(s) dropped from '
                'the pipeline (the recipe applies Blur/MedianBlur/ToGray/CLAHE at p=0.01)'
            )
    return dataset_cfg


def main(argv=None) -> float:
    """Print (and return) the train pipeline's images/s per worker."""
    args = parse_args(argv)
    cfg = config_from_args(args)
    # as mmengine's Runner sets it up for the data-loading processes (env_cfg.mp_cfg)
    opencv_threads = cfg.get('env_cfg', {}).get('mp_cfg', {}).get('opencv_num_threads', 0)
    saved_threads = cv2.getNumThreads(), torch.get_num_threads()
    cv2.setNumThreads(opencv_threads)
    torch.set_num_threads(1)
    dataset_cfg = train_dataset_cfg(cfg)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            data_root = args.data_root
            source = f'images from {data_root}'
            if data_root is None:
                data_root = osp.join(tmp, 'synthetic_coco')
                generate_dataset(
                    data_root,
                    num_train=args.num_images,
                    num_val=1,
                    img_size=args.img_size,
                    seed=args.seed,
                )
                source = f'generated images of {args.img_size} px'
            dataset = DATASETS.build(point_to_synthetic(dataset_cfg, data_root))
            fps, cpu_fps = time_samples(dataset, args.num_iters, args.warmup, args.seed)
            print(
                f'{osp.basename(args.config)}: train pipeline {fps:.2f} images/s per worker '
                f'(wall clock), {cpu_fps:.2f} images per CPU second (1 worker = this process, '
                f'cv2.setNumThreads({opencv_threads}), 1 torch thread; {len(dataset)} '
                f'{source}, {args.num_iters} samples after {args.warmup} warm-up)'
            )
            if args.profile:
                print(profile_samples(dataset, args.num_iters, args.profile, args.seed))
    finally:
        cv2.setNumThreads(saved_threads[0])
        torch.set_num_threads(saved_threads[1])
    return fps


if __name__ == '__main__':
    main()
