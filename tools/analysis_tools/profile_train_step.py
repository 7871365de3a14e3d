"""Where the time of one training iteration goes: forward, assignment, loss, backward.

    python tools/analysis_tools/profile_train_step.py CONFIG [--batch-size 2] [--shape 1024 1024] \
        [--num-gts 50] [--iters 3] [--device cpu]

Random images with ``--num-gts`` random rotated boxes each (DOTA-like sizes);
the model is built from the config (random weights) and trained with SGD.
Forward = backbone + neck + head convolutions; assignment = the label
assignment of every image (``bbox_head._get_targets_single``: decoding,
SimOTA); loss = the rest of ``loss_by_feat``; backward = ``loss.backward()``
plus the optimizer step. Times are the mean over ``--iters`` iterations after
one warm-up iteration.
"""
import argparse
import os.path as osp
import sys
import time
from collections import defaultdict

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import ai4rs  # noqa: E402,F401,I001  (first: sets the OpenMP wait policy before torch loads)
import torch  # noqa: E402
from mmengine.structures import InstanceData  # noqa: E402

from ai4rs.registry import MODELS  # noqa: E402
from ai4rs.structures import DetDataSample  # noqa: E402
from ai4rs.structures.bbox import RotatedBoxes  # noqa: E402
from ai4rs.utils.cli import (  # noqa: E402
    add_config_arguments,
    add_shape_argument,
    config_from_args,
    shape_from_args,
)


def make_batch(batch_size, shape, num_gts, num_classes, seed=0):
    gen = torch.Generator().manual_seed(seed)
    h, w = shape
    inputs, samples = [], []
    for _ in range(batch_size):
        inputs.append(torch.randint(0, 256, (3, h, w), generator=gen, dtype=torch.uint8))
        cx = torch.rand(num_gts, generator=gen) * w
        cy = torch.rand(num_gts, generator=gen) * h
        bw = 8 + torch.rand(num_gts, generator=gen) * 120
        bh = bw * (0.2 + 0.8 * torch.rand(num_gts, generator=gen))
        t = (torch.rand(num_gts, generator=gen) - 0.5) * torch.pi
        sample = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w),
                                             scale_factor=(1.0, 1.0)))
        sample.gt_instances = InstanceData(
            bboxes=RotatedBoxes(torch.stack([cx, cy, bw, bh, t], 1)),
            labels=torch.randint(0, num_classes, (num_gts, ), generator=gen))
        sample.ignored_instances = InstanceData(bboxes=RotatedBoxes(torch.zeros(0, 5)),
                                                labels=torch.zeros(0, dtype=torch.long))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def profile(model, batch, iters, device):
    head = model.bbox_head
    totals = defaultdict(float)
    original_targets = head._get_targets_single

    def sync():
        if device.startswith('cuda'):
            torch.cuda.synchronize()

    def timed_targets(*args, **kwargs):
        sync()
        t0 = time.perf_counter()
        out = original_targets(*args, **kwargs)
        sync()
        totals['assignment'] += time.perf_counter() - t0
        return out

    head._get_targets_single = timed_targets
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    model.train()
    head.use_l1 = True
    for i in range(iters + 1):
        if i == 1:
            totals.clear()
        data = model.data_preprocessor(batch, True)
        sync()
        t0 = time.perf_counter()
        feats = model.extract_feat(data['inputs'])
        outs = head(feats)
        sync()
        t1 = time.perf_counter()
        gts = [s.gt_instances for s in data['data_samples']]
        metas = [s.metainfo for s in data['data_samples']]
        losses = head.loss_by_feat(*outs, gts, metas)
        loss = sum(v for k, v in losses.items() if 'loss' in k)
        sync()
        t2 = time.perf_counter()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        sync()
        t3 = time.perf_counter()
        totals['forward'] += t1 - t0
        totals['loss_by_feat'] += t2 - t1
        totals['backward'] += t3 - t2
    head._get_targets_single = original_targets
    result = dict(forward=totals['forward'], assignment=totals['assignment'],
                  loss=totals['loss_by_feat'] - totals['assignment'], backward=totals['backward'])
    return {k: v / iters for k, v in result.items()}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_config_arguments(parser)
    parser.add_argument('--batch-size', type=int, default=2)
    add_shape_argument(parser)
    parser.add_argument('--num-gts', type=int, default=50)
    parser.add_argument('--iters', type=int, default=3)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    shape = shape_from_args(args)
    cfg = config_from_args(args)
    cfg.model.data_preprocessor.batch_augments = None
    model = MODELS.build(cfg.model).to(args.device)
    batch = make_batch(args.batch_size, shape, args.num_gts, model.bbox_head.num_classes)
    times = profile(model, batch, args.iters, args.device)
    total = sum(times.values())
    print(f'{osp.basename(args.config)}: batch {args.batch_size}, {shape[0]}x{shape[1]}, '
          f'{args.num_gts} GT boxes per image, {args.device}, {torch.get_num_threads()} threads')
    for name, seconds in times.items():
        print(f'  {name:<10s} {seconds:8.3f} s  {100 * seconds / total:5.1f} %')
    print(f'  {"total":<10s} {total:8.3f} s')


if __name__ == '__main__':
    main()
