"""PyTorch (inference mode) vs ONNX Runtime behind ``inference_detector``: which is faster.

    python tools/analysis_tools/benchmark_onnxruntime.py CONFIG [--sizes 320 1024] \
        [--batch-sizes 1 4] [--num-images 4] [--rounds 3] [--text-model DIR] \
        [--cfg-options KEY=VALUE ...]

For each input size of ``--sizes`` (the test pipeline's resizes set to it; square
generated images of that size, so the network input is the export size) the same random
weights are built twice: ``init_detector(cfg)`` (PyTorch, inference mode: Conv+BN fused,
``torch.inference_mode``) and ``init_detector(cfg, backend='onnxruntime')`` (exported with
a dynamic batch; onnxruntime's ``intra_op_num_threads`` = ``torch.get_num_threads()``).
Then, round by round, each backend and batch size takes its turn on
``inference_detector(model, images, batch_size=B)`` over ``--num-images`` images (the user's
path: pipeline, preprocessing, network, post-processing), so a change of the machine's
load affects them alike; the table gives the median images/s and the ratio
onnxruntime / PyTorch (> 1: onnxruntime is faster). YOLO-World configs run with a
vocabulary of the config's 80 class texts, its embeddings cached before timing; without
``--text-model`` the text model is a random CLIP ViT-B/32 (the text model is not timed).
"""

import argparse
import copy
import os.path as osp
import statistics
import sys
import tempfile
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))  # text_model_args.py, beside it

import ai4rs  # noqa: E402,F401,I001  (first: sets the OpenMP wait policy before torch loads)
import numpy as np  # noqa: E402
import torch  # noqa: E402
from text_model_args import (  # noqa: E402
    add_text_model_argument,
    is_yolo_world,
    set_text_model,
    vocabulary,
)

from ai4rs.apis import inference_detector, init_detector  # noqa: E402
from ai4rs.apis.pipeline import test_dataset_cfg  # noqa: E402
from ai4rs.utils.cli import add_config_arguments, config_from_args  # noqa: E402

RESIZES = ('Resize', 'YOLOv5KeepRatioResize', 'LetterResize', 'mmdet.Resize')


def with_test_size(cfg, size: int):
    """A copy of ``cfg`` whose test pipeline resizes to ``size`` x ``size``."""
    cfg = copy.deepcopy(cfg)
    for transform in test_dataset_cfg(cfg)['pipeline']:
        if transform.get('type') in RESIZES and 'scale' in transform:
            transform['scale'] = (size, size)
        if 'Pad' in transform.get('type') and 'size' in transform:
            transform['size'] = (size, size)
    return cfg


def images_of(size: int, num: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [(rng.random((size, size, 3)) * 255).astype(np.uint8) for _ in range(num)]


def time_call(model, images, texts, batch_size) -> float:
    start = time.perf_counter()
    inference_detector(model, images, texts=texts, batch_size=batch_size)
    return len(images) / (time.perf_counter() - start)


def benchmark(cfg, size, batch_sizes, num_images, rounds, texts) -> list[dict]:
    cfg = with_test_size(cfg, size)
    models = {
        'pytorch': init_detector(cfg),
        'onnxruntime': init_detector(cfg, backend='onnxruntime'),
    }
    images = images_of(size, num_images)
    for model in models.values():  # warm-up (and the vocabulary's embeddings cached)
        inference_detector(model, images[:1], texts=texts)
    speeds = {(name, b): [] for name in models for b in batch_sizes}
    for _ in range(rounds):
        for b in batch_sizes:
            for name, model in models.items():
                speeds[(name, b)].append(time_call(model, images, texts, b))
    rows = []
    for b in batch_sizes:
        torch_ips = statistics.median(speeds[('pytorch', b)])
        ort_ips = statistics.median(speeds[('onnxruntime', b)])
        rows.append(
            dict(
                size=size,
                batch=b,
                pytorch=torch_ips,
                onnxruntime=ort_ips,
                ratio=ort_ips / torch_ips,
            )
        )
    return rows


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_config_arguments(parser)
    parser.add_argument('--sizes', type=int, nargs='+', default=[320, 1024])
    parser.add_argument('--batch-sizes', type=int, nargs='+', default=[1, 4])
    parser.add_argument('--num-images', type=int, default=4)
    parser.add_argument('--rounds', type=int, default=3)
    add_text_model_argument(parser)
    return parser.parse_args(argv)


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    cfg = config_from_args(args, init_scope=False)
    texts = None
    with tempfile.TemporaryDirectory() as tmpdir:
        if is_yolo_world(cfg):
            texts = vocabulary(cfg, 80)
            set_text_model(cfg, args.text_model, tmpdir, words=texts)
        print(f'{osp.basename(args.config)}: torch threads {torch.get_num_threads()}')
        print('| input | batch | PyTorch img/s | onnxruntime img/s | onnxruntime / PyTorch |')
        print('|---|---|---|---|---|')
        rows = []
        for size in args.sizes:
            for row in benchmark(cfg, size, args.batch_sizes, args.num_images, args.rounds, texts):
                rows.append(row)
                print(
                    f'| {size} | {row["batch"]} | {row["pytorch"]:.2f} | '
                    f'{row["onnxruntime"]:.2f} | {row["ratio"]:.2f} |',
                    flush=True,
                )
    return rows


if __name__ == '__main__':
    main()
