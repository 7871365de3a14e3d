"""Where the time of one training iteration goes: text model, forward, assignment, loss, backward.

    python tools/analysis_tools/profile_train_step.py CONFIG [--baseline CONFIG2] \
        [--batch-size 2] [--shape H [W]] [--num-gts N] [--iters 3] [--device cpu] \
        [--text-model DIR] [--text-mode both] [--channels-last | --compare-channels-last]

The model is built from the config (random weights) and trained on random images; the
work is split into phases timed separately, each the mean over ``--iters`` iterations
after one warm-up iteration. One adapter per model family says how to make a batch and run
the phases; the family is chosen from the classes the config names (the detector's
``takes_texts``, the head's ``box_type``):

- rotated YOLOX (``takes_texts`` False, ``RotatedBoxes``; defaults: batch 2, 1024 px, 50
  random rotated boxes per image, SGD): forward = backbone + neck + head convolutions;
  assignment = the label assignment of every image (``bbox_head._get_targets_single``:
  decoding, SimOTA); loss = the rest of ``loss_by_feat``; backward = ``loss.backward()``
  plus the optimizer step.
- YOLO-World (``takes_texts``, ``HorizontalBoxes``; defaults: batch 2, 640 px, the
  config's ``num_train_classes`` texts per image (its class texts), 20 random boxes per
  image, AdamW): text = the text model; forward = image backbone + VL-PAN neck + head;
  assignment = ``BatchTaskAlignedAssigner``; loss = the rest of ``loss_by_feat``; backward
  as above. ``--text-mode`` chooses how the text phase runs: ``rerun`` runs CLIP on the
  B x K texts every iteration (upstream's behaviour), ``cached`` calls the frozen
  ``HuggingCLIPLanguageBackbone``, which looks embeddings up in its per-string cache
  (ai4rs' behaviour: CLIP runs in the warm-up iteration only), ``both`` (default)
  measures the two in one run, taking turns iteration by iteration on the same model.
  ``--text-model DIR`` names a local CLIP; without it a randomly initialised CLIP
  ViT-B/32 text model is written to a temp dir (speed depends on the architecture only).
- open-vocabulary rotated: YOLO-World with ``RotatedYOLOWorldHead`` (``takes_texts``,
  ``RotatedBoxes``; defaults: batch 2, 1024 px, 50 random rotated boxes per image, the
  config's ``num_train_classes`` texts per image, AdamW): phases as YOLO-World, the
  assignment being ``BatchRotatedTaskAlignedAssigner``; the batch is a list of data
  samples (``pseudo_collate``, as the DOTA recipe) with ``texts`` and rotated
  ``gt_instances``.

``--baseline CONFIG2`` profiles a second config's model in the same run: the two models
take turns iteration by iteration (as the variants do), on the same shape and number of
boxes (the main config's defaults unless given; the rotated families draw the same boxes);
both tables are printed, then ``total main / baseline`` (per variant of the main model,
against the baseline's variant of the same name, or its only one).

``--channels-last`` runs the models and images in the channels-last memory format;
``--compare-channels-last`` profiles CONFIG's model twice in one run, taking turns: main in
channels-last, the baseline contiguous (same initial weights), and prints their ratio. Training
applies channels-last when a config says ``channels_last = True`` (the Runner converts the
model), which the recipes do where this measured faster (docs/model_zoo.md). The tables printed
are markdown.
"""

import argparse
import os.path as osp
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))  # text_model_args.py, beside it

import ai4rs  # noqa: E402,F401,I001  (first: sets the OpenMP wait policy before torch loads)
import torch  # noqa: E402
from mmengine.structures import InstanceData  # noqa: E402

from ai4rs.registry import MODELS  # noqa: E402
from ai4rs.structures import DetDataSample  # noqa: E402
from ai4rs.structures.bbox import HorizontalBoxes, RotatedBoxes  # noqa: E402
from ai4rs.utils.cli import add_config_arguments, config_from_args, shape_from_args  # noqa: E402
from ai4rs.utils.config import load_config  # noqa: E402
from text_model_args import add_text_model_argument, set_text_model, vocabulary  # noqa: E402


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


def random_rotated_samples(
    batch_size: int, shape: tuple[int, int], num_gts: int, num_classes: int, seed: int = 0
) -> dict:
    """A ``pseudo_collate`` training batch of random uint8 images (3, H, W), each with
    ``num_gts`` random DOTA-like rotated boxes (``RotatedBoxes`` (cx, cy, w, h, t), t in
    [-pi/2, pi/2), 8 to 128 px) labelled in [0, num_classes); the same ``seed`` and sizes
    give the same images and boxes whatever the model."""
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
            labels=torch.randint(0, num_classes, (num_gts,), generator=gen),
        )
        sample.ignored_instances = InstanceData(
            bboxes=RotatedBoxes(torch.zeros(0, 5)), labels=torch.zeros(0, dtype=torch.long)
        )
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


class RotatedYOLOXFamily:
    """Rotated YOLOX: DOTA-like random rotated boxes, SimOTA per image, SGD."""

    name = 'rotated YOLOX'
    takes_texts = False
    box_type = RotatedBoxes
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
        """:func:`random_rotated_samples` labelled in the head's classes."""
        return random_rotated_samples(batch_size, shape, num_gts, model.bbox_head.num_classes, seed)

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
    takes_texts = True
    box_type = HorizontalBoxes
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


class RotatedYOLOWorldFamily(YOLOWorldFamily):
    """Open-vocabulary rotated (YOLO-World detector, ``RotatedYOLOWorldHead``): B images with
    K texts each (the config's class texts) and DOTA-like random rotated boxes, rotated
    task-aligned assignment, AdamW. Variants as YOLO-World."""

    name = 'open-vocabulary rotated (YOLO-World + RotatedYOLOWorldHead)'
    box_type = RotatedBoxes
    default_shape = (1024, 1024)
    default_num_gts = 50

    def make_batch(
        self, model, batch_size: int, shape: tuple[int, int], num_gts: int, seed: int = 0
    ) -> dict:
        """The DOTA recipe's (``pseudo_collate``) training batch: ``inputs`` B uint8 images
        (3, H, W); ``data_samples`` B data samples with ``texts`` (K strings) and rotated
        ``gt_instances`` (:func:`random_rotated_samples`, labels index the K texts)."""
        batch = random_rotated_samples(batch_size, shape, num_gts, self.num_texts, seed)
        for sample in batch['data_samples']:
            sample.set_metainfo(dict(texts=list(self.texts)))
        return batch

    def losses(self, model, data: dict, timer: PhaseTimer, variant: str) -> dict:
        samples = data['data_samples']
        head = model.bbox_head
        head.num_classes = model.num_train_classes
        with timer('text'):
            txt_feats = self.text_feats(model, [list(s.texts) for s in samples], variant)
        with timer('forward'):
            img_feats = model.backbone.forward_image(data['inputs'])
            img_feats = model.neck(img_feats, txt_feats) if model.mm_neck else model.neck(img_feats)
            outs = head(img_feats, txt_feats, None)
        with timer('loss_by_feat'):
            return head.loss_from_outputs(outs, samples)


FAMILIES = (RotatedYOLOXFamily, YOLOWorldFamily, RotatedYOLOWorldFamily)


def family_of(cfg, source: str = 'config'):
    """The adapter of ``cfg.model``: the family whose ``takes_texts`` is the detector class's
    and whose ``box_type`` is the head class's (classes looked up in the registry)."""
    model_cfg = cfg.get('model')
    head_cfg = model_cfg.get('bbox_head') if model_cfg is not None else None
    if head_cfg is None or 'type' not in model_cfg or 'type' not in head_cfg:
        raise ValueError(f'{source}: model.type and model.bbox_head.type are needed')
    detector, head = MODELS.get(model_cfg.type), MODELS.get(head_cfg.type)
    for kind, name, cls in (
        ('model.type', model_cfg.type, detector),
        ('model.bbox_head.type', head_cfg.type, head),
    ):
        if cls is None:
            raise KeyError(f'{source}: {kind}={name!r} is not a registered model')
    takes_texts = bool(getattr(detector, 'takes_texts', False))
    box_type = getattr(head, 'box_type', None)
    for family in FAMILIES:
        if family.takes_texts == takes_texts and family.box_type is box_type:
            return family
    raise ValueError(
        f'{source}: no profiling adapter for {detector.__name__} (takes_texts={takes_texts}) '
        f'with {head.__name__} (box_type={getattr(box_type, "__name__", box_type)}); '
        'adapters: ' + ', '.join(f.name for f in FAMILIES)
    )


@dataclass
class Measured:
    """One model under measure: its family adapter, model, batch and variants;
    :func:`profile` fills ``iteration_totals`` (``{variant: [seconds of each measured
    iteration]}``, the sum of its phases)."""

    family: object
    model: torch.nn.Module
    batch: dict
    variants: tuple[str, ...]
    iteration_totals: dict[str, list[float]] = field(default_factory=dict)
    channels_last: bool = False


def profile(
    runs: dict[str, Measured], iters: int, device: str
) -> dict[str, dict[str, dict[str, float]]]:
    """Mean seconds per phase of each run's variants over ``iters`` iterations, after one
    warm-up iteration of each: ``{run: {variant: {phase: seconds}}}``. The runs (and a run's
    variants, which share its model and optimizer) take turns, one iteration each, so that
    a change of the machine's load affects them alike. A run's ``channels_last``: its model and
    images in the channels-last memory format."""
    timers, optimizers = {}, {}
    for label, run in runs.items():
        if run.channels_last:
            run.model.to(memory_format=torch.channels_last)
        timers[label] = {variant: PhaseTimer(device) for variant in run.variants}
        optimizers[label] = run.family.optimizer(run.model)
        run.model.train()
        run.family.start(run.model)
        run.iteration_totals = {variant: [] for variant in run.variants}
    for i in range(iters + 1):
        for label, run in runs.items():
            model, family, optimizer = run.model, run.family, optimizers[label]
            assigner_obj, assigner_attr = family.assigner(model)
            for variant in run.variants:
                timer = timers[label][variant]
                before = dict(timer.totals)
                with timer.wrap(assigner_obj, assigner_attr, 'assignment'):
                    data = model.data_preprocessor(run.batch, True)
                    if run.channels_last:
                        data['inputs'] = data['inputs'].contiguous(
                            memory_format=torch.channels_last
                        )
                    losses = family.losses(model, data, timer, variant)
                    loss = sum(v for k, v in losses.items() if 'loss' in k)
                    with timer('backward'):
                        optimizer.zero_grad()
                        loss.backward()
                        optimizer.step()
                if i == 0:
                    timer.totals.clear()
                else:
                    spent = {k: v - before.get(k, 0.0) for k, v in timer.totals.items()}
                    run.iteration_totals[variant].append(sum(phase_means(spent, 1).values()))
    return {
        label: {variant: phase_means(timer.totals, iters) for variant, timer in run_timers.items()}
        for label, run_timers in timers.items()
    }


def phase_means(totals: dict[str, float], iters: int) -> dict[str, float]:
    """Seconds per iteration of each phase from a timer's totals (``loss`` = ``loss_by_feat``
    less the assignment it calls)."""
    result = {'text': totals['text']} if 'text' in totals else {}
    assignment = totals.get('assignment', 0.0)
    result.update(
        forward=totals.get('forward', 0.0),
        assignment=assignment,
        loss=totals.get('loss_by_feat', 0.0) - assignment,
        backward=totals.get('backward', 0.0),
    )
    return {k: v / iters for k, v in result.items()}


def baseline_ratios(
    main: dict[str, dict[str, float]], baseline: dict[str, dict[str, float]]
) -> dict[str, tuple[str, float]]:
    """``{main variant: (baseline variant, total main / total baseline)}``: each variant of
    the main model against the baseline's variant of the same name, or its only one."""
    ratios = {}
    for variant, phases in main.items():
        if variant in baseline:
            other = variant
        elif len(baseline) == 1:
            other = next(iter(baseline))
        else:
            raise ValueError(
                f'baseline variants {list(baseline)}: none is {variant!r} and there are several'
            )
        ratios[variant] = (other, sum(phases.values()) / sum(baseline[other].values()))
    return ratios


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
    parser.add_argument(
        '--baseline',
        default=None,
        metavar='CONFIG2',
        help="a second config profiled in the same run, taking turns with CONFIG's model "
        'iteration by iteration; prints both tables and total CONFIG / CONFIG2',
    )
    parser.add_argument('--batch-size', type=int, default=2)
    parser.add_argument(
        '--shape',
        type=int,
        nargs='+',
        default=None,
        help="input height and width (one value: square); default (CONFIG's family, "
        'for both models): 1024 rotated YOLOX / open-vocabulary rotated, 640 YOLO-World',
    )
    parser.add_argument(
        '--num-gts',
        type=int,
        default=None,
        help='GT boxes per image (default, for both models: 50 rotated YOLOX / '
        'open-vocabulary rotated, 20 YOLO-World)',
    )
    parser.add_argument('--iters', type=int, default=3)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    add_text_model_argument(parser)
    parser.add_argument(
        '--text-mode',
        choices=('both', 'rerun', 'cached'),
        default='both',
        help='YOLO-World families: run CLIP every iteration (rerun, upstream), use the '
        "frozen text model's embedding cache (cached, ai4rs), or both",
    )
    parser.add_argument(
        '--channels-last',
        action='store_true',
        help='the models and images in the channels-last memory format (training applies '
        'it with ChannelsLastHook where it measured faster, see docs/model_zoo.md)',
    )
    parser.add_argument(
        '--compare-channels-last',
        action='store_true',
        help="CONFIG's model twice in one run, taking turns: main in channels-last, the "
        'baseline (the same config and initial weights) contiguous; prints total main / '
        'baseline',
    )
    args = parser.parse_args(argv)
    if args.compare_channels_last and (args.baseline is not None or args.channels_last):
        parser.error('--compare-channels-last takes neither --baseline nor --channels-last')
    return args


def main(argv=None):
    """Profile, print the tables (and the ratio to ``--baseline``); returns
    ``{'main': {variant: {phase: s}}}`` plus ``'baseline'`` when one is given."""
    args = parse_args(argv)
    cfgs = {'main': config_from_args(args)}
    if args.baseline is not None:
        cfgs['baseline'] = load_config(args.baseline)
    elif args.compare_channels_last:
        cfgs['baseline'] = cfgs['main']
    sources = {'main': args.config, 'baseline': args.baseline or args.config}
    channels_last = {
        'main': args.channels_last or args.compare_channels_last,
        'baseline': args.channels_last,
    }
    families = {label: family_of(cfg, sources[label]) for label, cfg in cfgs.items()}
    main_family = families['main']
    shape = main_family.default_shape if args.shape is None else shape_from_args(args)
    if args.num_gts is None:
        args.num_gts = main_family.default_num_gts
    with tempfile.TemporaryDirectory() as tmpdir:
        runs = {}
        for label, cfg in cfgs.items():
            family = families[label](cfg, args, osp.join(tmpdir, label))
            torch.manual_seed(0)
            model = family.build(args.device)
            batch = family.make_batch(model, args.batch_size, shape, args.num_gts)
            runs[label] = Measured(
                family, model, batch, family.variants, channels_last=channels_last[label]
            )
        results = profile(runs, args.iters, args.device)
    for label, run in runs.items():
        variants = results[label]
        turns = [
            what
            for what, count in (('variants', len(variants)), ('models', len(runs)))
            if count > 1
        ]
        print(
            (f'{label}: ' if len(runs) > 1 else '')
            + f'{osp.basename(sources[label])} ({run.family.name}): batch {args.batch_size}, '
            f'{shape[0]}x{shape[1]}, {run.family.describe(args)}, {args.device}, '
            f'{torch.get_num_threads()} threads, mean of {args.iters} iterations after 1 '
            'warm-up'
            + (f' ({" and ".join(turns)} taking turns)' if turns else '')
            + (', channels-last' if run.channels_last else '')
        )
        print(markdown_table(variants, getattr(run.family, 'VARIANT_LABELS', {})))
        if len(variants) == 2:
            (a, ra), (b, rb) = variants.items()
            print(f'total {b} / {a}: {sum(rb.values()) / sum(ra.values()):.3f}')
    if 'baseline' in results:
        for variant, (other, ratio) in baseline_ratios(
            results['main'], results['baseline']
        ).items():
            print(f'total main ({variant}) / baseline ({other}): {ratio:.3f}')
            main_s = runs['main'].iteration_totals[variant]
            baseline_s = runs['baseline'].iteration_totals[other]
            per_iteration = [m / b for m, b in zip(main_s, baseline_s, strict=True)]
            print(
                f'  per iteration: main {", ".join(f"{t:.3f}" for t in main_s)} s; '
                f'baseline {", ".join(f"{t:.3f}" for t in baseline_s)} s; '
                f'ratio {", ".join(f"{r:.3f}" for r in per_iteration)} '
                f'(median {statistics.median(per_iteration):.3f})'
            )
    return results


if __name__ == '__main__':
    main()
