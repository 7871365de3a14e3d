"""Inference speed (images/s) of a config's model on the current device.

    python tools/analysis_tools/benchmark.py CONFIG [--checkpoint CKPT] [--shape 1024 1024] \
        [--batch-size 1] [--num-iters 20] [--warmup 5] [--device cpu|cuda]

Times ``model.test_step`` (data preprocessing, network, post-processing with
rotated NMS) on random images of the given size, after ``--warmup``
iterations, and prints images per second. Random weights give few detections
after the score threshold; with ``--checkpoint`` the post-processing cost is
the real one.
"""
import argparse
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import ai4rs  # noqa: E402,F401,I001  (first: sets the OpenMP wait policy before torch loads)
import torch  # noqa: E402

from ai4rs.apis import init_detector  # noqa: E402
from ai4rs.structures import DetDataSample  # noqa: E402
from ai4rs.utils.cli import (  # noqa: E402
    add_config_arguments,
    add_shape_argument,
    config_from_args,
    shape_from_args,
)


def benchmark(model, shape, batch_size, num_iters, warmup, device):
    """Images per second of ``model.test_step`` on random uint8 images."""
    h, w = shape
    gen = torch.Generator().manual_seed(0)
    inputs = [torch.randint(0, 256, (3, h, w), generator=gen, dtype=torch.uint8)
              for _ in range(batch_size)]
    meta = dict(img_shape=(h, w), ori_shape=(h, w), scale_factor=(1.0, 1.0), pad_shape=(h, w),
                batch_input_shape=(h, w))
    samples = [DetDataSample(metainfo=meta) for _ in range(batch_size)]

    def sync():
        if device.startswith('cuda'):
            torch.cuda.synchronize()

    times = []
    with torch.no_grad():
        for i in range(warmup + num_iters):
            sync()
            t0 = time.perf_counter()
            model.test_step(dict(inputs=inputs, data_samples=samples))
            sync()
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    return batch_size * len(times) / sum(times)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Inference speed of a model')
    add_config_arguments(parser)
    parser.add_argument('--checkpoint', default=None, help='checkpoint (random weights if none)')
    add_shape_argument(parser)
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--num-iters', type=int, default=20)
    parser.add_argument('--warmup', type=int, default=5)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    shape = shape_from_args(args)
    cfg = config_from_args(args, init_scope=False)
    model = init_detector(cfg, args.checkpoint, device=args.device)
    fps = benchmark(model, shape, args.batch_size, args.num_iters, args.warmup, args.device)
    threads = torch.get_num_threads()
    print(f'{osp.basename(args.config)}: {fps:.2f} images/s on {args.device} '
          f'(input {shape[0]}x{shape[1]}, batch {args.batch_size}, {args.num_iters} iterations'
          + (f', {threads} CPU threads' if args.device == 'cpu' else '') + ')')


if __name__ == '__main__':
    main()
