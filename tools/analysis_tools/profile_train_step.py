"""Where the time of one training iteration goes: text model, forward, assignment, loss, backward.

    python tools/analysis_tools/profile_train_step.py CONFIG [--batch-size 2] [--shape H [W]] \
        [--num-gts N] [--iters 3] [--device cpu] [--text-model DIR] [--text-mode both] \
        [--channels-last]

The model is built from the config (random weights) and trained on random images; the
work is split into phases timed separately, each the mean over ``--iters`` iterations
after one warm-up iteration. One adapter per model family says how to make a batch and run
the phases:

- rotated YOLOX (defaults: batch 2, 1024 px, 50 random rotated boxes per image, SGD):
  forward = backbone + neck + head convolutions; assignment = the label assignment of
  every image (``bbox_head._get_targets_single``: decoding, SimOTA); loss = the rest of
  ``loss_by_feat``; backward = ``loss.backward()`` plus the optimizer step.
- YOLO-World (defaults: batch 2, 640 px, the config's ``num_train_classes`` texts per
  image (its class texts), 20 random boxes per image, AdamW): text = the text model;
  forward = image backbone + VL-PAN neck + head; assignment = ``BatchTaskAlignedAssigner``;
  loss = the rest of ``loss_by_feat``; backward as above. ``--text-mode`` chooses how the
  text phase runs: ``rerun`` runs CLIP on the B x K texts every iteration (upstream's
  behaviour), ``cached`` calls the frozen ``HuggingCLIPLanguageBackbone``, which looks
  embeddings up in its per-string cache (ai4rs' behaviour: CLIP runs in the warm-up
  iteration only), ``both`` (default) measures the two in one run, taking turns
  iteration by iteration on the same model. ``--text-model DIR``
  names a local CLIP; without it a randomly initialised CLIP ViT-B/32 text model is
  written to a temp dir (speed depends on the architecture only).

``--channels-last`` runs the model and images in the channels-last memory format (an
experiment to measure; the training tools do not apply it). The table printed at the end
is markdown.
"""

import argparse
import os.path as osp
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import contextmanager

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))  # text_model_args.py, beside it

import ai4rs  # noqa: E402,F401,I001  (first: sets the OpenMP wait policy before torch loads)
import torch  # noqa: E402
from mmengine.structures import InstanceData  # noqa: E402

from ai4rs.registry import MODELS  # noqa: E402
from ai4rs.structures import DetDataSample  # noqa: E402
from ai4rs.structures.bbox import RotatedBoxes  # noqa: E402
from ai4rs.utils.cli import add_config_arguments, config_from_args, shape_from_args  # noqa: E402
from text_model_args import (  # noqa: E402
    add_text_model_argument,
    is_yolo_world,
    set_text_model,
    vocabulary,
)


class PhaseTimer:
    """Accumulates wall time per named phase (with a CUDA sync around each)."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.totals: dict[str, float] = defaultdict(float)

    def sync(self) -> None:
        if self.device.startswith('cuda'):
            torch.cuda.synchronize()

    @contextmanager
    def __call__(self, name: str):
        self.sync()
        t0 = time.perf_counter()
        yield
        self.sync()
        self.totals[name] += time.perf_counter() - t0

    @contextmanager
    def wrap(self, obj, attr: str, name: str):
        """Time every call of ``obj.attr`` (an instance attribute shadows it meanwhile)."""
        original = getattr(obj, attr)
        shadowed = attr in vars(obj)

        def timed(*args, **kwargs):
            with self(name):
                return original(*args, **kwargs)

        setattr(obj, attr, timed)
        try:
            yield
        finally:
            if shadowed:
                setattr(obj, attr, original)
            else:
                delattr(obj, attr)


def random_boxes(
    gen: torch.Generator, num: int, h: int, w: int, min_size: float, max_size: float
) -> tuple[torch.Tensor, ...]:
    """``num`` random box centres (cx, cy) in the image and sizes (bw, bh) in pixels."""
    cx = torch.rand(num, generator=gen) * w
    cy = torch.rand(num, generator=gen) * h
    bw = min_size + torch.rand(num, generator=gen) * (max_size - min_size)
    bh = bw * (0.2 + 0.8 * torch.rand(num, generator=gen))
    return cx, cy, bw, bh


class RotatedYOLOXFamily:
    """Rotated YOLOX: DOTA-like random rotated boxes, SimOTA per image, SGD."""

    name = 'rotated YOLOX'
    default_shape = (1024, 1024)
    default_num_gts = 50
    variants = ('default',)

    def __init__(self, cfg, args, tmpdir: str) -> None:
        cfg.model.data_preprocessor.batch_augments = None
        self.cfg = cfg

    def build(self, device: str):
        model = MODELS.build(self.cfg.model).to(device)
        model.bbox_head.use_l1 = True
        return model

    @staticmethod
    def make_batch(
        model, batch_size: int, shape: tuple[int, int], num_gts: int, seed: int = 0
    ) -> dict:
        """Random uint8 images (3, H, W) with ``num_gts`` random rotated boxes each."""
        gen = torch.Generator().manual_seed(seed)
        h, w = shape
        inputs, samples = [], []
        for _ in range(batch_size):
            inputs.append(torch.randint(0, 256, (3, h, w), generator=gen, dtype=torch.uint8))
            cx, cy, bw, bh = random_boxes(gen, num_gts, h, w, 8, 128)
            t = (torch.rand(num_gts, generator=gen) - 0.5) * torch.pi
            sample = DetDataSample(
                metainfo=dict(img_shape=(h, w), ori_shape=(h, w), scale_factor=(1.0, 1.0))
            )
            sample.gt_instances = InstanceData(
                bboxes=RotatedBoxes(torch.stack([cx, cy, bw, bh, t], 1)),
                labels=torch.randint(0, model.bbox_head.num_classes, (num_gts,), generator=gen),
            )
            sample.ignored_instances = InstanceData(
                bboxes=RotatedBoxes(torch.zeros(0, 5)), labels=torch.zeros(0, dtype=torch.long)
            )
            samples.append(sample)
        return dict(inputs=inputs, data_samples=samples)

    def optimizer(self, model):
        return torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)

    def assigner(self, model) -> tuple[object, str]:
        return model.bbox_head, '_get_targets_single'

    def start(self, model) -> None:
        pass

    def losses(self, model, data: dict, timer: PhaseTimer, variant: str) -> dict:
        head = model.bbox_head
        with timer('forward'):
            outs = head(model.extract_feat(data['inputs']))
        gts = [s.gt_instances for s in data['data_samples']]
        metas = [s.metainfo for s in data['data_samples']]
        with timer('loss_by_feat'):
            return head.loss_by_feat(*outs, gts, metas)

    def describe(self, args) -> str:
        return f'{args.num_gts} GT boxes per image'


class YOLOWorldFamily:
    """YOLO-World: B images with K texts each (the config's class texts), random hboxes,
    task-aligned assignment, AdamW. Variants: CLIP re-run every iteration / cached."""

    name = 'YOLO-World'
    default_shape = (640, 640)
    default_num_gts = 20
    VARIANT_LABELS = {
        'rerun': 'CLIP re-run every iteration (upstream)',
        'cached': 'text embeddings cached (ai4rs)',
    }

    def __init__(self, cfg, args, tmpdir: str) -> None:
        self.num_texts = cfg.model.get('num_train_classes', 80)
        self.texts = vocabulary(cfg, self.num_texts)
        self.text_dir, self.random_text = set_text_model(
            cfg, args.text_model, tmpdir, words=self.texts
        )
        self.variants = ('rerun', 'cached') if args.text_mode == 'both' else (args.text_mode,)
        self.cfg = cfg

    def build(self, device: str):
        return MODELS.build(self.cfg.model).to(device)

    def make_batch(
        self, model, batch_size: int, shape: tuple[int, int], num_gts: int, seed: int = 0
    ) -> dict:
        """The YOLO-World collate's training batch: ``inputs`` (B, 3, H, W) uint8 and
        ``data_samples = dict(bboxes_labels=(B * num_gts, 6), texts=B lists of K)``."""
        gen = torch.Generator().manual_seed(seed)
        h, w = shape
        inputs = torch.randint(0, 256, (batch_size, 3, h, w), generator=gen, dtype=torch.uint8)
        rows = []
        for i in range(batch_size):
            cx, cy, bw, bh = random_boxes(gen, num_gts, h, w, 16, min(h, w) / 3)
            x1, y1 = (cx - bw / 2).clamp(0, w - 2), (cy - bh / 2).clamp(0, h - 2)
            x2 = torch.maximum((cx + bw / 2).clamp(0, w), x1 + 2)
            y2 = torch.maximum((cy + bh / 2).clamp(0, h), y1 + 2)
            labels = torch.randint(0, self.num_texts, (num_gts,), generator=gen).float()
            rows.append(torch.stack([torch.full_like(x1, i), labels, x1, y1, x2, y2], 1))
        texts = [list(self.texts) for _ in range(batch_size)]
        return dict(inputs=inputs, data_samples=dict(bboxes_labels=torch.cat(rows), texts=texts))

    def optimizer(self, model):
        return torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad], lr=2e-4, weight_decay=0.05
        )

    def assigner(self, model) -> tuple[object, str]:
        return model.bbox_head.assigner, 'forward'

    def start(self, model) -> None:
        model.backbone.text_model.clear_cache()

    def text_feats(self, model, texts: list[list[str]], variant: str) -> torch.Tensor:
        """(B, K, D) text embeddings: ``rerun`` encodes all B x K strings with CLIP as
        upstream does; ``cached`` is the ai4rs text backbone (cache of a frozen model)."""
        text_model = model.backbone.text_model
        if variant == 'rerun':
            flat = [t for image_texts in texts for t in image_texts]
            with torch.no_grad():
                return text_model.encode(flat).reshape(len(texts), len(texts[0]), -1)
        return model.backbone.forward_text(texts)

    def losses(self, model, data: dict, timer: PhaseTimer, variant: str) -> dict:
        samples = data['data_samples']
        head = model.bbox_head
        head.num_classes = model.num_train_classes
        with timer('text'):
            txt_feats = self.text_feats(model, samples['texts'], variant)
        with timer('forward'):
            img_feats = model.backbone.forward_image(data['inputs'])
            img_feats = model.neck(img_feats, txt_feats) if model.mm_neck else model.neck(img_feats)
            outs = head(img_feats, txt_feats, None)
        with timer('loss_by_feat'):
            return head.loss_by_feat(*outs, samples['bboxes_labels'], samples['img_metas'])

    def describe(self, args) -> str:
        source = (
            'random-weight CLIP ViT-B/32 text model'
            if self.random_text
            else f'text model {args.text_model}'
        )
        return f'{self.num_texts} texts and {args.num_gts} GT boxes per image, {source}'


def family_of(cfg):
    return YOLOWorldFamily if is_yolo_world(cfg) else RotatedYOLOXFamily


def profile(
    family,
    model,
    batch: dict,
    iters: int,
    device: str,
    variants: tuple[str, ...],
    channels_last: bool = False,
) -> dict[str, dict[str, float]]:
    """Mean seconds per phase of each variant over ``iters`` iterations, after one warm-up
    iteration of each. The variants share the model and optimizer and take turns, one
    iteration each, so that a change of the machine's load affects them alike.
    ``channels_last``: model and images in the channels-last memory format (an experiment:
    the training tools do not apply it)."""
    if channels_last:
        model.to(memory_format=torch.channels_last)
    timers = {variant: PhaseTimer(device) for variant in variants}
    optimizer = family.optimizer(model)
    model.train()
    family.start(model)
    assigner_obj, assigner_attr = family.assigner(model)
    for i in range(iters + 1):
        for variant in variants:
            timer = timers[variant]
            with timer.wrap(assigner_obj, assigner_attr, 'assignment'):
                data = model.data_preprocessor(batch, True)
                if channels_last:
                    data['inputs'] = data['inputs'].contiguous(memory_format=torch.channels_last)
                losses = family.losses(model, data, timer, variant)
                loss = sum(v for k, v in losses.items() if 'loss' in k)
                with timer('backward'):
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
            if i == 0:
                timer.totals.clear()
    results = {}
    for variant, timer in timers.items():
        totals = timer.totals
        result = {'text': totals['text']} if 'text' in totals else {}
        result.update(
            forward=totals['forward'],
            assignment=totals['assignment'],
            loss=totals['loss_by_feat'] - totals['assignment'],
            backward=totals['backward'],
        )
        results[variant] = {k: v / iters for k, v in result.items()}
    return results


def markdown_table(results: dict[str, dict[str, float]], labels: dict[str, str]) -> str:
    """One row per phase, one seconds + share column pair per variant, then totals."""
    variants = list(results)
    header = '| phase | ' + ' | '.join(f'{labels.get(v, "time")} (s) | share' for v in variants)
    lines = [header + ' |', '|---|' + '---:|---:|' * len(variants)]
    phases = list(results[variants[0]])
    totals = {v: sum(results[v].values()) for v in variants}
    for phase in phases:
        cells = ' | '.join(
            f'{results[v][phase]:.3f} | {100 * results[v][phase] / totals[v]:.1f} %'
            for v in variants
        )
        lines.append(f'| {phase} | {cells} |')
    lines.append(
        '| **total** | ' + ' | '.join(f'**{totals[v]:.3f}** | 100 %' for v in variants) + ' |'
    )
    if 'text' in phases:
        lines.append(
            '| image side (total - text) | '
            + ' | '.join(f'{totals[v] - results[v]["text"]:.3f} | ' for v in variants)
            + ' |'
        )
    return '\n'.join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_config_arguments(parser)
    parser.add_argument('--batch-size', type=int, default=2)
    parser.add_argument(
        '--shape',
        type=int,
        nargs='+',
        default=None,
        help='input height and width (one value: square); default 1024 for '
        'rotated YOLOX, 640 for YOLO-World',
    )
    parser.add_argument(
        '--num-gts',
        type=int,
        default=None,
        help='GT boxes per image (default 50 rotated YOLOX, 20 YOLO-World)',
    )
    parser.add_argument('--iters', type=int, default=3)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    add_text_model_argument(parser)
    parser.add_argument(
        '--text-mode',
        choices=('both', 'rerun', 'cached'),
        default='both',
        help='YOLO-World: run CLIP every iteration (rerun, upstream), use the '
        "frozen text model's embedding cache (cached, ai4rs), or both",
    )
    parser.add_argument(
        '--channels-last',
        action='store_true',
        help='experiment: model and images in channels-last memory format '
        '(tools/train.py does not apply it)',
    )
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = config_from_args(args)
    with tempfile.TemporaryDirectory() as tmpdir:
        family = family_of(cfg)(cfg, args, tmpdir)
        shape = family.default_shape if args.shape is None else shape_from_args(args)
        if args.num_gts is None:
            args.num_gts = family.default_num_gts
        torch.manual_seed(0)
        model = family.build(args.device)
        batch = family.make_batch(model, args.batch_size, shape, args.num_gts)
        results = profile(
            family, model, batch, args.iters, args.device, family.variants, args.channels_last
        )
    print(
        f'{osp.basename(args.config)}: batch {args.batch_size}, {shape[0]}x{shape[1]}, '
        f'{family.describe(args)}, {args.device}, {torch.get_num_threads()} threads, '
        f'mean of {args.iters} iterations after 1 warm-up'
        + (' (variants taking turns)' if len(results) > 1 else '')
        + (', channels-last' if args.channels_last else '')
    )
    print(markdown_table(results, getattr(family, 'VARIANT_LABELS', {})))
    if len(results) == 2:
        (a, ra), (b, rb) = results.items()
        print(f'total {b} / {a}: {sum(rb.values()) / sum(ra.values()):.3f}')
    return results


if __name__ == '__main__':
    main()
