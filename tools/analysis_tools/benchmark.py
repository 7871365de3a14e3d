"""Inference speed (images/s) of a config's model on the current device.

    python tools/analysis_tools/benchmark.py CONFIG [--checkpoint CKPT] [--shape 1024 1024] \
        [--batch-size 1] [--num-iters 20] [--warmup 5] [--device cpu|cuda] \
        [--text-model DIR] [--num-texts N] [--peak-rss] [--inference-mode] [--bf16 [auto]]

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

``--compare`` (CPU) measures a model against the machine's own limit, in one run:

    python tools/analysis_tools/benchmark.py CONFIG --compare [--batch-sizes 1 4 8] \
        [--shape 1024 1024] [--modes eager inference inference_cl inference_bf16 onnxruntime \
        inference_cl_two_kernels] \
        [--matmul-size 2048] [--out report.json]

For each batch size the modes (:func:`compare_modes`) take turns batch by batch with
``--matmul-reps`` (3) float32 and bfloat16 N x N matmuls (``--matmul-size``, 2048):
``eager`` (the model as built, no fusion, ``torch.no_grad``), ``inference``
(``to_inference_mode``: Conv+BN fused, ``torch.inference_mode``), ``inference_cl`` (the
same, channels-last), ``inference_bf16`` (the inference mode with a bfloat16 network, as
``--bf16``; where the CPU has native bfloat16) and ``onnxruntime``
(the same weights exported with ``export_onnx`` at the fixed (H, W) input, dynamic batch, to
a temporary file, run by ``OnnxDetector`` one graph run per batch, its session with torch's
number of intra-op threads). Images/s are of ``test_step`` (preprocessing, network,
post-processing).
Each mode's FLOP/s is the model's FLOPs per image (2 x get_flops.py's multiply-adds: the
network forward, post-processing not counted) x images/s, printed with its share of the
float32 matmul's FLOP/s (2 N^3 per product) measured in the same rounds. Before timing,
every mode's decoded network outputs and detections on one batch are compared with the
eager model's (largest difference relative to the eager values' scale, ``--tolerance``
1e-4; for bfloat16 the network outputs only, within 0.05). YOLO-World configs are compared
reparameterized (``--num-texts`` texts baked in, the text model dropped), as they are
exported.

``inference_cl_two_kernels`` (only when ``--modes`` names it): ``inference_cl`` with each
conv and its activation as two kernels (``to_inference_mode(..., fuse_act=False)``), to
measure what the fused conv + activation kernels give. After the timed rounds, the
``inference_cl`` model's convolution kernels are timed alone (forward hooks around each
one, ``--num-iters`` more steps per batch size): the row ``inference_cl: its N convolutions
alone (P % of its step time)`` gives their FLOPs (2 x C_out x C_in / groups x kH x kW x
H_out x W_out each) over their own time, the share of the matmul rate that mode would
reach if nothing but its convolutions took time.
"""

import argparse
import copy
import json
import os.path as osp
import subprocess
import sys
import tempfile
import time
import warnings

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))  # text_model_args.py, beside it

import ai4rs  # noqa: E402,F401,I001  (first: sets the OpenMP wait policy before torch loads)
import torch  # noqa: E402

from ai4rs.apis import init_detector  # noqa: E402
from ai4rs.structures import DetDataSample  # noqa: E402
from ai4rs.utils.cli import (  # noqa: E402
    add_bf16_argument,
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
    if args.bf16 is not None:
        cmd += ['--bf16', args.bf16]
    if args.cfg_options:
        cmd += ['--cfg-options'] + [f'{k}={v}' for k, v in args.cfg_options.items()]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f'peak RSS run ({path}) failed:\n{out.stderr[-3000:]}')
    return int(out.stdout.strip().splitlines()[-1].split()[-1])


def model_mode(args) -> dict:
    """``init_detector``'s ``inference_mode`` / ``bf16`` from ``--inference-mode`` and
    ``--bf16`` (which implies the inference mode)."""
    return dict(inference_mode=args.inference_mode or args.bf16 is not None, bf16=args.bf16)


def rss_child(args, cfg, shape):
    """Body of a ``--_rss-child`` process: run one path, print ``peak_rss <bytes>``."""
    import resource

    with open(args._texts_file, encoding='utf-8') as f:
        spec = json.load(f)
    texts = spec['texts']
    if args._rss_child == 'reparameterized':
        cfg.model.backbone.with_text_model = False
        model = init_detector(cfg, None, device=args.device, **model_mode(args))
        # the vocabulary the parent computed with the text model, baked in as reparameterize
        # would (this process never builds, or imports, the text model)
        model.texts = [texts]
        model.text_feats = torch.load(spec['feats'], weights_only=True).to(args.device)
    else:
        cfg.model.backbone.text_model.model_name = spec['text_model']
        model = init_detector(cfg, None, device=args.device, **model_mode(args))
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
        model = init_detector(cfg, args.checkpoint, device=args.device, **model_mode(args))
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


# --- --compare: the model's modes against the machine's own matmul rate -------------------

FLOPS_NOTE = (
    "FLOPs = 2 x get_flops.py's multiply-adds (network forward at the input size, one image; "
    'post-processing not counted)'
)


def compare_modes() -> dict:
    """The modes of ``--compare``: name -> (label, builder). A builder takes ``(eager, ctx)``
    (the eager model and a dict with ``cfg``, ``shape``, ``tmpdir``, ``threads``) and returns
    ``(runner, grad_context)``: something with ``test_step`` and the autograd context to run
    it in. ``inference_bf16`` is listed where the CPU has native bfloat16 only."""
    from ai4rs.models.utils.inference_mode import bf16_supported

    modes = {
        'eager': ('eager (as built, no fusion)', _build_eager),
        'inference': (
            'inference mode (Conv+BN fused, torch.inference_mode)',
            _inference_builder(),
        ),
        'inference_cl': ('inference mode + channels-last', _inference_builder(channels_last=True)),
        'inference_cl_two_kernels': (
            'inference mode + channels-last, conv and activation as two kernels',
            _inference_builder(channels_last=True, fuse_act=False),
        ),
        'inference_bf16': (
            'inference mode, bfloat16 network (--bf16)',
            _inference_builder(bf16=True),
        ),
        'onnxruntime': ('onnxruntime (fixed-shape export, CPU provider)', _build_onnx),
    }
    if not bf16_supported('cpu'):
        del modes['inference_bf16']
    return modes


#: the mode whose convolution kernels ``--compare`` also times alone (``conv_kernel_time``):
#: the ceiling that mode's share of the matmul rate would reach if nothing but its
#: convolutions took time
CONV_MODE = 'inference_cl'

#: the agreement with the eager model a mode is held to when it computes in another precision
#: (relative to the values' scale): bfloat16 keeps 8 bits of mantissa (0.4 % per rounding)
MODE_TOLERANCE = {'inference_bf16': 0.05}


def _build_eager(eager, ctx):
    return eager, torch.no_grad


def _inference_builder(**options):
    """A builder of a copy of the eager model made an inference model with ``options``
    (``to_inference_mode``'s ``channels_last`` / ``bf16``)."""
    from ai4rs.models.utils.inference_mode import to_inference_mode

    def build(eager, ctx):
        return to_inference_mode(copy.deepcopy(eager), **options), torch.inference_mode

    return build


def _build_onnx(eager, ctx):
    """The eager model's weights exported (``export_onnx``, fixed (H, W) input, dynamic batch
    axis, no NMS in the graph, as ``init_detector(..., backend='onnxruntime')`` exports) and
    run by :class:`OnnxDetector` with ``ctx['threads']`` intra-op threads: one graph run per
    batch."""
    from ai4rs.apis.deployment.export import export_onnx
    from ai4rs.apis.deployment.runtime import OnnxDetector

    onnx_file = osp.join(ctx['tmpdir'], 'compare.onnx')
    model = copy.deepcopy(eager).eval()
    inputs = preprocessed(model, random_batch(ctx['shape'], 1))[0:1]
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # the tracer's warnings on the export wrapper
        export_onnx(model, inputs, onnx_file, dynamic_batch=True)
    return OnnxDetector(onnx_file, ctx['cfg'], threads=ctx['threads']), torch.inference_mode


def preprocessed(model, batch: dict):
    """(B, 3, H, W) float network input of ``batch`` through ``model``'s data preprocessor."""
    with torch.no_grad():
        return model.data_preprocessor(copy.deepcopy(batch), False)['inputs'].float()


def max_rel_diff(a, b) -> float:
    """max |a - b| / max(1, max |b|) (``b`` the reference); inf if the shapes differ."""
    a, b = torch.as_tensor(a).float(), torch.as_tensor(b).float()
    if a.shape != b.shape:
        return float('inf')
    if b.numel() == 0:
        return 0.0
    return float((a - b).abs().max() / max(1.0, float(b.abs().max())))


def detections_diff(samples, reference) -> tuple[float, int]:
    """(worst ``max_rel_diff`` of boxes, scores, labels of each sample against
    ``reference``'s, number of reference detections)."""
    worst, count = 0.0, 0
    for got, ref in zip(samples, reference, strict=True):
        g, r = got.pred_instances, ref.pred_instances
        count += len(r)
        for key in ('bboxes', 'scores', 'labels'):
            gv, rv = g[key], r[key]
            gv = getattr(gv, 'tensor', gv)
            rv = getattr(rv, 'tensor', rv)
            worst = max(worst, max_rel_diff(gv, rv))
    return worst, count


def network_outputs(runner, inputs):
    """The decoded outputs (boxes, scores) of one (1, 3, H, W) input: the export wrapper's
    for a PyTorch ``runner``, the graph's for an ``OnnxDetector``."""
    from ai4rs.apis.deployment.export import DecodedDetector

    if hasattr(runner, 'raw'):
        return runner.raw(inputs)
    with torch.no_grad():
        return [o[0] for o in DecodedDetector(runner).eval()(inputs)]


def check_agreement(runs: dict, batch: dict, tol: float) -> dict:
    """Each mode against the eager model on ``batch``: ``{mode: dict(network=, detections=,
    num_detections=, agree=bool, note=str)}``; differences are relative to the reference's
    largest value (at least 1)."""
    eager = runs['eager'][0]
    with torch.no_grad():
        ref = eager.test_step(copy.deepcopy(batch))
    inputs = preprocessed(eager, batch)[0:1]
    ref_net = network_outputs(eager, inputs)
    out = {}
    for name, (runner, grad) in runs.items():
        if name == 'eager':
            continue
        with grad():
            got = runner.test_step(copy.deepcopy(batch))
            net = network_outputs(runner, inputs)
        net_diff = max(max_rel_diff(g, r) for g, r in zip(net, ref_net, strict=True))
        det_diff, count = detections_diff(got, ref)
        if name in MODE_TOLERANCE:  # another precision: the network outputs are compared
            mode_tol = max(tol, MODE_TOLERANCE[name])
            agree = net_diff <= mode_tol
            note = (
                f'{"agrees" if agree else "DIFFERS"}: network outputs '
                f'{"within" if agree else "beyond"} {mode_tol:g} (its precision); its rounding '
                'reorders near-tied scores, so the detections are not compared'
            )
        elif net_diff <= tol and det_diff <= tol:
            agree = True
            note = 'agrees' + ('' if count else ' (no detections at the score threshold)')
        elif net_diff <= tol:
            agree = False
            note = (
                'network outputs agree; detections differ (can be float rounding reordering '
                'near-tied scores)'
            )
        else:
            agree = False
            note = 'DIFFERS'
        out[name] = dict(
            network=net_diff, detections=det_diff, num_detections=count, agree=agree, note=note
        )
    return out


def matmul_operands(n: int, dtype):
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(dtype)
    b = torch.randn(n, n, generator=gen).to(dtype)
    return a, b


def compare_timings(runs: dict, batches: dict, matmuls: dict, num_iters, warmup, matmul_reps=1):
    """Per batch size: the modes' images/s and the matmuls' FLOP/s, taken in turns round by
    round (``matmul_reps`` matmuls of each dtype, then one batch of each mode), so that the
    machine's load hits them alike.

    Returns:
        dict: ``{batch_size: dict(fps={mode: images/s}, matmul={dtype: FLOP/s})}``.
    """
    result = {}
    for bs, batch in batches.items():
        times = {name: [] for name in runs}
        mm_times = {name: [] for name in matmuls}
        for i in range(warmup + num_iters):
            for name, (a, b) in matmuls.items():
                for _ in range(matmul_reps):
                    t0 = time.perf_counter()
                    torch.mm(a, b)
                    if i >= warmup:
                        mm_times[name].append(time.perf_counter() - t0)
            for name, (runner, grad) in runs.items():
                with grad():
                    t0 = time.perf_counter()
                    runner.test_step(batch)
                    if i >= warmup:
                        times[name].append(time.perf_counter() - t0)
        result[bs] = dict(
            fps={name: bs * len(t) / sum(t) for name, t in times.items()},
            matmul={
                name: 2 * matmuls[name][0].shape[0] ** 3 * len(t) / sum(t)
                for name, t in mm_times.items()
            },
        )
    return result


def _conv_kernels(model) -> list:
    """The modules of ``model`` that each run one convolution kernel: every ``FusedConvAct``
    (conv + activation in one oneDNN call) and every other ``nn.Conv2d``."""
    from ai4rs.models.utils.inference_ops import FusedConvAct

    fused = [m for m in model.modules() if isinstance(m, FusedConvAct)]
    inner = {id(m.conv) for m in fused}
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and id(m) not in inner]
    return fused + convs


def conv_kernel_time(runner, grad, batch, num_iters) -> dict:
    """The convolutions' share of ``runner.test_step(batch)``: each convolution kernel
    (:func:`_conv_kernels`) timed by forward hooks over ``num_iters`` steps.

    Returns:
        dict: ``flops`` (2 x multiply-adds of the convolutions per step: C_out x C_in /
        groups x kH x kW x N x H_out x W_out each), ``seconds`` (their time per step),
        ``step_seconds`` (the whole step's), ``calls`` (convolutions per step).
    """
    state = dict(t0=0.0, seconds=0.0, flops=0, calls=0)

    def pre(module, args):
        state['t0'] = time.perf_counter()

    def post(module, args, out):
        state['seconds'] += time.perf_counter() - state['t0']
        conv = getattr(module, 'conv', module)
        state['flops'] += 2 * conv.weight.numel() * out.shape[0] * out.shape[2] * out.shape[3]
        state['calls'] += 1

    handles = []
    for m in _conv_kernels(runner):
        handles += [m.register_forward_pre_hook(pre), m.register_forward_hook(post)]
    try:
        start = time.perf_counter()
        for _ in range(num_iters):
            with grad():
                runner.test_step(batch)
        step = (time.perf_counter() - start) / num_iters
    finally:
        for h in handles:
            h.remove()
    return dict(
        flops=state['flops'] / num_iters,
        seconds=state['seconds'] / num_iters,
        step_seconds=step,
        calls=state['calls'] // num_iters,
    )


def compare_flops(args, cfg, shape, text_dir=None, num_texts=None) -> int:
    """Multiply-adds of one (1, 3, H, W) image: get_flops.py's count (YOLO-World: the image
    network with the vocabulary baked in, what the compared models run)."""
    import logging

    from get_flops import model_complexity, world_complexity
    from mmengine.logging import MMLogger

    # the analyzer's unsupported-operator warnings
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        if is_yolo_world(cfg):
            cfg = copy.deepcopy(cfg)
            return world_complexity(cfg, shape, text_dir, num_texts)['image_flops']
        return model_complexity(copy.deepcopy(cfg), shape)['flops']
    finally:
        logger.setLevel(level)


def compare_table(report: dict) -> str:
    """The markdown table of a ``--compare`` report."""
    lines = [
        "| batch | mode | images/s | GFLOP/s | % of the machine's float32 matmul rate |",
        '|---:|---|---:|---:|---:|',
    ]
    for row in report['rows']:
        ips = '-' if row['images_per_s'] is None else f'{row["images_per_s"]:.3f}'
        lines.append(
            f'| {row["batch_size"]} | {row["mode"]} | {ips} | {row["flop_per_s"] / 1e9:.2f} | '
            f'{row["pct_float32_matmul"]:.2f} % |'
        )
    return '\n'.join(lines)


def main_compare(args, cfg, shape):
    """``--compare``: see :func:`parse_args`' help and docs/model_zoo.md."""
    modes = compare_modes()
    unknown = [m for m in args.modes if m not in modes]
    if unknown or 'eager' not in args.modes:
        raise SystemExit(
            f'--modes {" ".join(args.modes)}: the modes are {", ".join(modes)} and eager '
            f'(the reference) is needed; unknown: {unknown}'
        )
    if args.device != 'cpu':
        raise SystemExit('--compare measures against the CPU matmul rate: --device cpu')
    for name in ('batch_sizes', 'num_iters', 'matmul_size', 'matmul_reps'):
        values = getattr(args, name)
        if min(values if isinstance(values, list) else [values]) < 1:
            raise SystemExit(f'--{name.replace("_", "-")} {values}: must be at least 1')
    threads = torch.get_num_threads()
    world = is_yolo_world(cfg)
    with tempfile.TemporaryDirectory() as tmpdir:
        texts = text_dir = None
        num_texts = None
        if world:
            num_texts = args.num_texts or cfg.model.get('num_test_classes', 80)
            texts = vocabulary(cfg, num_texts)
            text_dir, _ = set_text_model(cfg, args.text_model, tmpdir, words=texts)
        macs = compare_flops(args, cfg, shape, text_dir, num_texts)
        eager = init_detector(cfg, args.checkpoint, device='cpu', inference_mode=False)
        if world:
            eager.reparameterize(texts, drop_text_model=True)
        ctx = dict(cfg=eager.cfg, shape=shape, tmpdir=tmpdir, threads=threads)
        runs = {m: modes[m][1](eager, ctx) for m in modes if m in args.modes}
        batches = {bs: random_batch(shape, bs) for bs in args.batch_sizes}
        agreement = check_agreement(runs, batches[args.batch_sizes[0]], args.tolerance)
        matmuls = {
            'float32': matmul_operands(args.matmul_size, torch.float32),
            'bfloat16': matmul_operands(args.matmul_size, torch.bfloat16),
        }
        timings = compare_timings(
            runs, batches, matmuls, args.num_iters, args.warmup, args.matmul_reps
        )
        convs = {}
        if CONV_MODE in runs:
            convs = {
                bs: conv_kernel_time(*runs[CONV_MODE], batch, args.num_iters)
                for bs, batch in batches.items()
            }
    flops = 2 * macs
    rows = []
    for bs, t in timings.items():
        rate = t['matmul']['float32']
        for name, fps in t['fps'].items():
            rows.append(
                dict(
                    batch_size=bs,
                    mode=name,
                    images_per_s=fps,
                    flop_per_s=flops * fps,
                    pct_float32_matmul=100 * flops * fps / rate,
                )
            )
        if bs in convs:
            c = convs[bs]
            rows.append(
                dict(
                    batch_size=bs,
                    mode=f'{CONV_MODE}: its {c["calls"]} convolutions alone '
                    f'({100 * c["seconds"] / c["step_seconds"]:.0f} % of its step time)',
                    images_per_s=None,
                    flop_per_s=c['flops'] / c['seconds'],
                    pct_float32_matmul=100 * c['flops'] / c['seconds'] / rate,
                    conv_flops_per_image=c['flops'] / bs,
                    conv_seconds=c['seconds'],
                    step_seconds=c['step_seconds'],
                    calls=c['calls'],
                )
            )
        for name, value in t['matmul'].items():
            rows.append(
                dict(
                    batch_size=bs,
                    mode=f'matmul {args.matmul_size}x{args.matmul_size} {name}',
                    images_per_s=None,
                    flop_per_s=value,
                    pct_float32_matmul=100 * value / rate,
                )
            )
    report = dict(
        config=osp.basename(args.config),
        shape=list(shape),
        num_iters=args.num_iters,
        warmup=args.warmup,
        torch_threads=threads,
        onnxruntime_intra_op_threads=threads if 'onnxruntime' in runs else None,
        multiply_adds_per_image=macs,
        flops_per_image=flops,
        flops_note=FLOPS_NOTE,
        matmul_size=args.matmul_size,
        matmul_reps=args.matmul_reps,
        matmul={bs: t['matmul'] for bs, t in timings.items()},
        agreement=agreement,
        rows=rows,
    )
    print(
        f'{report["config"]}: cpu, input {shape[0]}x{shape[1]}, batch sizes '
        f'{" ".join(map(str, args.batch_sizes))}, {args.num_iters} iterations after '
        f'{args.warmup} warm-up, modes and matmuls taking turns; torch {threads} threads'
        + (f', onnxruntime {threads} intra-op threads' if 'onnxruntime' in runs else '')
        + (f'; {num_texts} texts baked in (reparameterized)' if world else '')
    )
    print(
        f'model: {macs / 1e9:.4f} G multiply-adds = {flops / 1e9:.4f} GFLOPs per image '
        f'({FLOPS_NOTE}); images/s: data preprocessing + network + post-processing'
    )
    bs0 = args.batch_sizes[0]
    for name, a in agreement.items():
        print(
            f'check against eager (batch {bs0}): {name}: {a["note"]} (network outputs max '
            f'rel. diff {a["network"]:.2g}, detections {a["detections"]:.2g}, '
            f'{a["num_detections"]} detections)'
        )
    print(compare_table(report))
    if args.out:
        with open(args.out, 'w', encoding='utf-8') as f:
            json.dump(report, f, indent=1)
        print(f'wrote {args.out}')
    return report


def default_modes() -> list[str]:
    """``--compare``'s modes unless ``--modes`` names others (``inference_cl_two_kernels``, the
    fused conv + activation kernels turned off, only on request)."""
    return [m for m in compare_modes() if m != 'inference_cl_two_kernels']


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
    add_bf16_argument(parser)
    parser.add_argument(
        '--compare',
        action='store_true',
        help='CPU: eager vs inference mode vs inference mode + channels-last vs onnxruntime '
        'at each --batch-sizes, against a float32 and a bfloat16 matmul timed in the same '
        'run (see the module docstring)',
    )
    parser.add_argument(
        '--batch-sizes', type=int, nargs='+', default=[1, 4, 8], help='--compare: batch sizes'
    )
    parser.add_argument(
        '--modes',
        nargs='+',
        default=default_modes(),
        help=f'--compare: the modes (default: {" ".join(default_modes())}; eager needed)',
    )
    parser.add_argument(
        '--matmul-size', type=int, default=2048, help='--compare: N of the N x N matmuls'
    )
    parser.add_argument(
        '--matmul-reps',
        type=int,
        default=3,
        help='--compare: matmuls of each dtype per round (more samples of the rate)',
    )
    parser.add_argument(
        '--tolerance',
        type=float,
        default=1e-4,
        help='--compare: the largest relative difference of a mode from eager that agrees',
    )
    parser.add_argument('--out', default=None, help='--compare: write the report as JSON')
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
    if args.compare:
        return main_compare(args, copy.deepcopy(cfg), shape)
    if is_yolo_world(cfg):
        return main_world(args, copy.deepcopy(cfg), shape)
    model = init_detector(cfg, args.checkpoint, device=args.device, **model_mode(args))
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
