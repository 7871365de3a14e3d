"""Post-processing time as a share of the network time, with N boxes entering NMS per image.

    python tools/analysis_tools/benchmark_postprocess.py CONFIG [--shape H W] [--batch-size B] \
        [--boxes 1024] [--iters 5] [--text-model DIR] [--num-texts K] [--cfg-options ...]

Builds the config's model with random weights (YOLO-World configs: a randomly initialised CLIP
ViT-B/32 text model unless ``--text-model``; the vocabulary of ``--num-texts`` texts is baked in
with ``reparameterize`` and the text model dropped, as image-only inference runs), puts it in
inference mode (eval, Conv+BN fused) and times, in one run and taking turns:

- ``network``: ``model(x, mode='tensor')`` on a random (B, 3, H, W) batch, in
  ``torch.inference_mode``;
- the post-processing of the decoded outputs (``bbox_head.decode_by_feat``) of that batch, whose
  scores are planted so that exactly ``--boxes`` priors per image pass the test config's
  ``score_thr`` (with one class each), and so enter NMS. The boxes are the real decoded boxes of
  the priors nearest to ``boxes // 32`` random object centres (clusters of overlapping boxes of
  every level, as detector output around objects); every other score is put below the
  threshold. Stages, per image: candidate selection (``select_candidates``), NMS
  (``ai4rs.ops.batched_nms`` with the config's ``nms``) and the rest (rescale, ``min_bbox_size``,
  ``max_per_img``, clipping: ``finish_detections`` without NMS on the candidates, an upper
  bound); the whole of it image by image (``postprocess_decoded``), and the whole batch at
  once (``bbox_head.postprocess_batch``, what ``predict_by_feat`` runs).

Printed: medians in ms (after one untimed round) and each as % of the network time of the
same batch.
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
import torch  # noqa: E402

from ai4rs.apis import init_detector  # noqa: E402
from ai4rs.models.utils.inference_mode import to_inference_mode  # noqa: E402
from ai4rs.ops import batched_nms  # noqa: E402
from ai4rs.utils.cli import (  # noqa: E402
    add_config_arguments,
    config_from_args,
    parse_tool_args,
    shape_from_args,
    warnings_only,
)
from text_model_args import (  # noqa: E402
    add_text_model_argument,
    is_yolo_world,
    set_text_model,
    vocabulary,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_config_arguments(parser)
    parser.add_argument(
        '--shape',
        type=int,
        nargs='+',
        default=None,
        help='input height and width (one value: square; default 640 for YOLO-World '
        'configs, else 1024)',
    )
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--boxes', type=int, default=1024, help='boxes entering NMS per image')
    parser.add_argument('--iters', type=int, default=5, help='timed rounds (medians)')
    parser.add_argument(
        '--num-texts', type=int, default=None, help="YOLO-World: vocabulary size (the config's)"
    )
    parser.add_argument('--seed', type=int, default=0)
    add_text_model_argument(parser)
    args = parse_tool_args(parser, argv)
    for name in ('batch_size', 'boxes', 'iters'):
        if getattr(args, name) < 1:
            parser.error(f'--{name.replace("_", "-")} must be >= 1, got {getattr(args, name)}')
    return args


def build_model(cfg, text_model: str | None, num_texts: int | None, tmpdir: str):
    """The config's model with random weights, in inference mode (YOLO-World: reparameterized
    on its vocabulary without the text model)."""
    texts = None
    if is_yolo_world(cfg):
        num_texts = num_texts or cfg.model.get('num_test_classes', 80)
        texts = vocabulary(cfg, num_texts)
        set_text_model(cfg, text_model, tmpdir, words=texts)
    model = init_detector(cfg, None, inference_mode=False)
    if texts is not None:
        model.reparameterize([[t] for t in texts], drop_text_model=True)
    return to_inference_mode(model)


def plant_scores(
    boxes: torch.Tensor, scores: torch.Tensor, score_thr: float, num_boxes: int, seed: int = 0
) -> torch.Tensor:
    """Scores (B, P, K) where exactly ``num_boxes`` priors per image, each with one class,
    score above ``score_thr``: the priors nearest to ``num_boxes // 32`` random centres (box
    centres of random priors), so their decoded boxes form overlapping clusters. Every other
    score is at most ``score_thr / 2`` (the network's own score, capped)."""
    b, p, k = scores.shape
    if num_boxes > p:
        raise ValueError(f'--boxes {num_boxes}: the model has only {p} priors at this shape')
    gen = torch.Generator().manual_seed(seed)
    low = max(score_thr, 0.0) / 2
    out = scores.float().clamp(max=low).clone()
    centres = boxes[..., :2] if boxes.size(-1) == 5 else (boxes[..., :2] + boxes[..., 2:4]) / 2
    num_clusters = max(1, num_boxes // 32)
    for i in range(b):
        seeds = torch.randperm(p, generator=gen)[:num_clusters]
        dist = torch.cdist(centres[i].float(), centres[i, seeds].float())  # (P, M)
        nearest, cluster = dist.min(dim=1)
        chosen = nearest.argsort(stable=True)[:num_boxes]
        cls = torch.randint(0, k, (num_clusters,), generator=gen)[cluster[chosen]]
        hi = max(score_thr, 0.0) + 0.05
        out[i, chosen, cls] = hi + (1 - hi) * torch.rand(num_boxes, generator=gen)
    return out.to(scores.dtype)


def _ms(fn, *args) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn(*args)
    return (time.perf_counter() - start) * 1000, result


def time_stages(head, boxes, scores, cfg, x, model, iters):
    """Median ms of the network and of each post-processing stage (whole batch)."""
    cfg = copy.deepcopy(cfg)
    nms_cfg = dict(cfg['nms'])
    times = {k: [] for k in ('network', 'select', 'nms', 'rest', 'per-image', 'batched')}
    info = {}
    for it in range(iters + 1):  # the first round warms up, untimed
        t_net, _ = _ms(model, x, None, 'tensor')
        t_sel = t_nms = t_rest = 0.0
        t_all, kept = 0.0, 0
        entered = []
        for i in range(boxes.size(0)):
            ts, cand = _ms(head.select_candidates, boxes[i], scores[i], cfg)
            entered.append(len(cand))
            tn, _ = _ms(batched_nms, cand.bboxes.tensor, cand.scores, cand.labels, nms_cfg)
            tf, _ = _ms(head.finish_detections, cand, cfg, {}, False, False)
            t_sel, t_nms, t_rest = t_sel + ts, t_nms + tn, t_rest + tf
            ta, det2 = _ms(head.postprocess_decoded, boxes[i], scores[i], {}, cfg, False, True)
            t_all += ta
            kept += len(det2)
        tb, _ = _ms(head.postprocess_batch, boxes, scores, None, cfg, False, True)
        if it == 0:
            continue
        for name, t in zip(times, (t_net, t_sel, t_nms, t_rest, t_all, tb)):
            times[name].append(t)
        info = dict(entered=entered, kept=kept)
    return {k: statistics.median(v) for k, v in times.items()}, info


def main(argv=None):
    args = parse_args(argv)
    with warnings_only():
        return _main(args)


def _main(args):
    cfg = config_from_args(args, init_scope=False)
    world = is_yolo_world(cfg)
    if args.shape is None:
        args.shape = [640] if world else [1024]
    h, w = shape_from_args(args)
    torch.manual_seed(args.seed)
    with tempfile.TemporaryDirectory() as tmpdir:
        model = build_model(cfg, args.text_model, args.num_texts, tmpdir)
    head = model.bbox_head
    test_cfg = copy.deepcopy(head.test_cfg)
    x = torch.randn(args.batch_size, 3, h, w)
    with torch.inference_mode():
        boxes, scores = head.decode_by_feat(*model(x, None, 'tensor'))
        scores = plant_scores(
            boxes, scores, test_cfg.get('score_thr', 0.0), args.boxes, seed=args.seed
        )
        t, info = time_stages(head, boxes, scores, test_cfg, x, model, args.iters)
    net = t['network']
    print(
        f'{osp.basename(args.config)}: input {h}x{w}, batch {args.batch_size}, '
        f'{scores.size(1)} priors x {scores.size(2)} classes, {torch.get_num_threads()} CPU '
        f'threads, medians of {args.iters} rounds'
    )
    print(f'boxes entering NMS per image: {info["entered"]}; kept in all: {info["kept"]}')
    print('| stage | ms (batch) | % of network |')
    print('|---|---:|---:|')
    rows = (
        ('network forward', 'network'),
        ('candidate selection', 'select'),
        ('NMS', 'nms'),
        ('the rest (rescale, filters, max_per_img, clip)', 'rest'),
        ('post-processing, image by image', 'per-image'),
        ('post-processing, postprocess_batch', 'batched'),
    )
    for label, key in rows:
        print(f'| {label} | {t[key]:.1f} | {100 * t[key] / net:.1f} |')
    return t, info


if __name__ == '__main__':
    main()
