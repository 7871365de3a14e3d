"""Inference speed (images/s) of a config's model on the current device.

    python tools/analysis_tools/benchmark.py CONFIG [--checkpoint CKPT] [--shape 1024 1024] \
        [--batch-size 1] [--num-iters 20] [--warmup 5] [--device cpu|cuda] \
        [--text-model DIR] [--num-texts N] [--peak-rss]

Times ``model.test_step`` (data preprocessing, network, post-processing with
NMS) on random images of the given size, after ``--warmup``
iterations, and prints images per second. Random weights give few detections
after the score threshold; with ``--checkpoint`` the post-processing cost is
the real one.

YOLO-World configs are measured with a fixed vocabulary (``--num-texts``, default the
config's ``num_test_classes``, taken from its class texts) along three paths, in one run:

- ``text model, CLIP re-run``: the data samples carry the texts and the text-embedding
  cache is emptied before every batch, so CLIP encodes the vocabulary per batch (what
  upstream does);
- ``text model, cached``: the same with the frozen text model's per-string cache (ai4rs'
  default: CLIP runs once);
- ``reparameterized``: ``model.reparameterize(texts, drop_text_model=True)``, image-only
  inference with the vocabulary baked in (what is exported).

The three take turns batch by batch (copies of one model), so a change of the machine's
load affects them alike.

It prints the images/s of each and their ratios to the CLIP re-run path, and the memory
of the model with and without its text model (bytes of parameters and buffers; with
``--peak-rss`` also the peak resident memory of a fresh process running each path:
the text-model path and the reparameterized path without the text model, with random
weights: memory does not depend on their values). ``--text-model DIR`` names a local CLIP
directory; without it a randomly initialised CLIP ViT-B/32 text model is used (speed and
memory depend on the architecture only).
"""

import argparse
import copy
import json
import os.path as osp
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))  # text_model_args.py, beside it

import ai4rs  # noqa: E402,F401,I001  (first: sets the OpenMP wait policy before torch loads)
import torch  # noqa: E402

from ai4rs.apis import init_detector  # noqa: E402
from ai4rs.structures import DetDataSample  # noqa: E402
from ai4rs.utils.cli import (  # noqa: E402
    warnings_only,
    add_config_arguments,
    add_shape_argument,
    config_from_args,
    shape_from_args,
)
from text_model_args import (  # noqa: E402
    add_text_model_argument,
    is_yolo_world,
    set_text_model,
    vocabulary,
)

WORLD_PATHS = ('rerun', 'cached', 'reparameterized')
WORLD_LABELS = {
    'rerun': 'text model, CLIP re-run per batch (upstream)',
    'cached': 'text model, cached embeddings (ai4rs)',
    'reparameterized': 'reparameterized, no text model',
}


def random_batch(shape, batch_size, texts=None) -> dict:
    """``batch_size`` random uint8 (3, H, W) images with their data samples; ``texts`` (K
    strings) are given to every sample (YOLO-World)."""
    h, w = shape
    gen = torch.Generator().manual_seed(0)
    inputs = [
        torch.randint(0, 256, (3, h, w), generator=gen, dtype=torch.uint8)
        for _ in range(batch_size)
    ]
    meta = dict(
        img_shape=(h, w),
        ori_shape=(h, w),
        scale_factor=(1.0, 1.0),
        pad_shape=(h, w),
        batch_input_shape=(h, w),
    )
    if texts is not None:
        meta['texts'] = list(texts)
    return dict(
        inputs=inputs, data_samples=[DetDataSample(metainfo=meta) for _ in range(batch_size)]
    )


def benchmark_runs(runs: dict, batch_size, num_iters, warmup, device) -> dict[str, float]:
    """Images per second of each run ``name: (model, batch, before_batch)``: ``model.test_step``
    on the batch, ``before_batch()`` (if any) before it, timed together. The runs take
    turns batch by batch, so that a change of the machine's load affects them alike."""

    def sync():
        if device.startswith('cuda'):
            torch.cuda.synchronize()

    times = {name: [] for name in runs}
    with torch.no_grad():
        for i in range(warmup + num_iters):
            for name, (model, batch, before_batch) in runs.items():
                sync()
                t0 = time.perf_counter()
                if before_batch is not None:
                    before_batch()
                model.test_step(batch)
                sync()
                if i >= warmup:
                    times[name].append(time.perf_counter() - t0)
    return {name: batch_size * len(t) / sum(t) for name, t in times.items()}


def benchmark(model, shape, batch_size, num_iters, warmup, device):
    """Images per second of ``model.test_step`` on random uint8 images."""
    runs = {'model': (model, random_batch(shape, batch_size), None)}
    return benchmark_runs(runs, batch_size, num_iters, warmup, device)['model']


def tensor_bytes(module) -> int:
    """Bytes of the parameters and buffers of ``module``."""
    return sum(
        t.numel() * t.element_size() for t in list(module.parameters()) + list(module.buffers())
    )


def world_model_bytes(model) -> dict:
    """``dict(total=, text_model=, image_model=)`` bytes of a YOLO-World detector."""
    text = model.backbone.text_model
    text_bytes = tensor_bytes(text) if text is not None else 0
    total = tensor_bytes(model)
    return dict(total=total, text_model=text_bytes, image_model=total - text_bytes)


def benchmark_world(
    model, texts, shape, batch_size, num_iters, warmup, device, paths=WORLD_PATHS
) -> dict:
    """Images/s of the YOLO-World paths (see the module docstring), taking turns batch by
    batch. The reparameterized path runs on a copy of ``model`` without its text model (or
    on ``model`` itself when it is already reparameterized)."""
    runs = {}
    if 'rerun' in paths or 'cached' in paths:
        batch = random_batch(shape, batch_size, texts)
        text_model = model.backbone.text_model
        if 'rerun' in paths:
            runs['rerun'] = (model, batch, text_model.clear_cache)
        if 'cached' in paths:
            # a copy, so that the re-run path's clearing does not empty this cache
            cached = copy.deepcopy(model) if 'rerun' in paths else model
            runs['cached'] = (cached, batch, None)
    if 'reparameterized' in paths:
        image_model = model
        if not model.is_reparameterized:
            image_model = copy.deepcopy(model)
            image_model.reparameterize(texts, drop_text_model=True)
        runs['reparameterized'] = (image_model, random_batch(shape, batch_size), None)
    return benchmark_runs(runs, batch_size, num_iters, warmup, device)


def peak_rss_child(args, path: str, feats_file: str) -> int:
    """Peak resident bytes of a fresh process running the benchmark along ``path``."""
    cmd = [
        sys.executable,
        osp.abspath(__file__),
        args.config,
        '--shape',
        *map(str, args.shape),
        '--batch-size',
        str(args.batch_size),
        '--num-iters',
        str(args.num_iters),
        '--warmup',
        str(args.warmup),
        '--device',
        args.device,
        '--_rss-child',
        path,
        '--_texts-file',
        feats_file,
    ]
    if args.inference_mode:
        cmd.append('--inference-mode')
    if args.cfg_options:
        cmd += ['--cfg-options'] + [f'{k}={v}' for k, v in args.cfg_options.items()]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f'peak RSS run ({path}) failed:\n{out.stderr[-3000:]}')
    return int(out.stdout.strip().splitlines()[-1].split()[-1])


def rss_child(args, cfg, shape):
    """Body of a ``--_rss-child`` process: run one path, print ``peak_rss <bytes>``."""
    import resource

    with open(args._texts_file, encoding='utf-8') as f:
        spec = json.load(f)
    texts = spec['texts']
    if args._rss_child == 'reparameterized':
        cfg.model.backbone.with_text_model = False
        model = init_detector(cfg, None, device=args.device, inference_mode=args.inference_mode)
        # the vocabulary the parent computed with the text model, baked in as reparameterize
        # would (this process never builds, or imports, the text model)
        model.texts = [texts]
        model.text_feats = torch.load(spec['feats'], weights_only=True).to(args.device)
    else:
        cfg.model.backbone.text_model.model_name = spec['text_model']
        model = init_detector(cfg, None, device=args.device, inference_mode=args.inference_mode)
    benchmark_world(
        model,
        texts,
        shape,
        args.batch_size,
        args.num_iters,
        args.warmup,
        args.device,
        paths=(args._rss_child,),
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f'peak_rss {peak * (1 if sys.platform == "darwin" else 1024)}')


def main_world(args, cfg, shape):
    if args._rss_child:
        return rss_child(args, cfg, shape)
    num_texts = args.num_texts or cfg.model.get('num_test_classes', 80)
    texts = vocabulary(cfg, num_texts)
    with tempfile.TemporaryDirectory() as tmpdir:
        text_dir, random_text = set_text_model(cfg, args.text_model, tmpdir, words=texts)
        model = init_detector(
            cfg, args.checkpoint, device=args.device, inference_mode=args.inference_mode
        )
        nbytes = world_model_bytes(model)
        num_params = sum(p.numel() for p in model.parameters())
        text_params = sum(p.numel() for p in model.backbone.text_model.parameters())
        rss = {}
        if args.peak_rss:
            feats_file = osp.join(tmpdir, 'feats.pt')
            spec_file = osp.join(tmpdir, 'texts.json')
            with torch.no_grad():
                torch.save(model.backbone.forward_text([texts])[0:1].cpu(), feats_file)
            with open(spec_file, 'w', encoding='utf-8') as f:
                json.dump(dict(texts=texts, feats=feats_file, text_model=text_dir), f)
            for path in ('cached', 'reparameterized'):
                rss[path] = peak_rss_child(args, path, spec_file)
        fps = benchmark_world(
            model, texts, shape, args.batch_size, args.num_iters, args.warmup, args.device
        )
    threads = torch.get_num_threads()
    source = 'random-weight CLIP ViT-B/32' if random_text else args.text_model
    print(
        f'{osp.basename(args.config)}: {args.device}, input {shape[0]}x{shape[1]}, batch '
        f'{args.batch_size}, {args.num_iters} iterations after {args.warmup} warm-up'
        + (f', {threads} CPU threads' if args.device == 'cpu' else '')
        + f', {num_texts} texts, text model: {source}'
    )
    print('| path | images/s | vs CLIP re-run |\n|---|---:|---:|')
    for path, value in fps.items():
        print(f'| {WORLD_LABELS[path]} | {value:.3f} | {value / fps["rerun"]:.2f}x |')
    mib = 1024**2
    print(
        f'model memory (parameters + buffers): with text model {nbytes["total"] / mib:.1f} '
        f'MiB ({num_params:,} parameters), without {nbytes["image_model"] / mib:.1f} MiB '
        f'({num_params - text_params:,} parameters), text model '
        f'{nbytes["text_model"] / mib:.1f} MiB'
    )
    if rss:
        print(
            f'peak RSS of a process: text-model path {rss["cached"] / mib:.0f} MiB, '
            f'reparameterized path without text model {rss["reparameterized"] / mib:.0f} MiB '
            f'(ratio {rss["reparameterized"] / rss["cached"]:.2f})'
        )
    return dict(fps=fps, bytes=nbytes, peak_rss=rss)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Inference speed of a model')
    add_config_arguments(parser)
    parser.add_argument('--checkpoint', default=None, help='checkpoint (random weights if none)')
    add_shape_argument(parser)
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--num-iters', type=int, default=20)
    parser.add_argument('--warmup', type=int, default=5)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    add_text_model_argument(parser)
    parser.add_argument(
        '--num-texts',
        type=int,
        default=None,
        help='YOLO-World: vocabulary size (default: num_test_classes)',
    )
    parser.add_argument(
        '--peak-rss',
        action='store_true',
        help='YOLO-World: also measure the peak RSS of a fresh process per '
        'path (text model / reparameterized without it)',
    )
    parser.add_argument(
        '--inference-mode',
        action='store_true',
        help='the model init_detector returns by default (Conv+BN fused); without it the '
        'eager model, as built from the config',
    )
    parser.add_argument('--_rss-child', default=None, help=argparse.SUPPRESS)
    parser.add_argument('--_texts-file', default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    with warnings_only():
        return _main(args)


def _main(args):
    shape = shape_from_args(args)
    cfg = config_from_args(args, init_scope=False)
    if is_yolo_world(cfg):
        return main_world(args, copy.deepcopy(cfg), shape)
    model = init_detector(
        cfg, args.checkpoint, device=args.device, inference_mode=args.inference_mode
    )
    fps = benchmark(model, shape, args.batch_size, args.num_iters, args.warmup, args.device)
    threads = torch.get_num_threads()
    print(
        f'{osp.basename(args.config)}: {fps:.2f} images/s on {args.device} '
        f'(input {shape[0]}x{shape[1]}, batch {args.batch_size}, {args.num_iters} iterations'
        + (f', {threads} CPU threads' if args.device == 'cpu' else '')
        + ')'
    )
    return fps


if __name__ == '__main__':
    main()
