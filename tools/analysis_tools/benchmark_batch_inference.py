"""Batched YOLO-World inference and the text-embedding cache, through ``inference_detector``.

    python tools/analysis_tools/benchmark_batch_inference.py \
        CONFIG [--checkpoint CKPT] [--shape 480 640] [--batch-sizes 1 4 8] \
        [--num-images 16] [--rounds 3] [--num-texts 80] [--text-model DIR] \
        [--cache-texts 1203] [--channels-last] [--bf16 [auto]]

Two measurements, in one run, on the user's path (``inference_detector``: pipeline,
letterbox, data preprocessing, network, post-processing, mapping back per image):

1. images/s of ``inference_detector(model, images, texts=..., batch_size=N)`` for each
   ``N`` of ``--batch-sizes`` on ``--num-images`` generated images of ``--shape``
   (H W, letterboxed to the config's test size), the batch sizes taking turns round by
   round (so a change of the machine's load affects them alike); printed with each
   one's ratio to the first batch size. The vocabulary's embeddings are cached before
   timing (the same for every batch size).
2. the text model's time in a first ``inference_detector`` call with a vocabulary of
   ``--cache-texts`` distinct prompts (LVIS has 1,203 classes) and in a second call with
   the same vocabulary: the time spent inside the text model (its ``forward``), and
   their ratio.

CONFIG is a YOLO-World config, e.g. configs/yolo_world_v2/
yolo_world_v2_s_vlpan_bn_2e-4_80e_8gpus_mask-refine_finetune_coco.py. Without ``--checkpoint`` the
weights are random (the time does not depend on them, but for the post-processing: a
checkpoint gives the real number of boxes); without ``--text-model`` a randomly
initialised text model of CLIP ViT-B/32's architecture is written to a temporary folder
(the vocabulary's words single tokens, as CLIP's tokenizer makes common words).

The model is ``init_detector``'s inference model (Conv+BN fused; channels-last on CPU, its
default ``channels_last='auto'``); ``--channels-last`` / ``--no-channels-last`` and ``--bf16``
(a bfloat16 network, as ``tools/test.py --bf16``) are its options of the same names.
"""

import argparse
import copy
import os.path as osp
import sys
import tempfile
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))  # text_model_args.py, beside it

import ai4rs  # noqa: E402,F401,I001  (first: sets the OpenMP wait policy before torch loads)
import numpy as np  # noqa: E402
import torch  # noqa: E402

from ai4rs.apis import inference_detector, init_detector  # noqa: E402
from ai4rs.utils.cli import (  # noqa: E402
    add_bf16_argument,
    add_config_arguments,
    add_shape_argument,
    config_from_args,
    shape_from_args,
    warnings_only,
)
from text_model_args import add_text_model_argument, set_text_model  # noqa: E402


def generated_images(num: int, shape: tuple[int, int], seed: int = 0) -> list[np.ndarray]:
    """``num`` BGR uint8 images of ``shape`` (H, W): smooth noise with filled shapes."""
    import cv2

    rng = np.random.default_rng(seed)
    h, w = shape
    images = []
    for _ in range(num):
        img = cv2.resize((rng.random((h // 16 + 1, w // 16 + 1, 3)) * 255).astype(np.uint8), (w, h))
        for _ in range(6):
            x, y = int(rng.integers(0, w - 40)), int(rng.integers(0, h - 40))
            color = tuple(int(c) for c in rng.integers(0, 256, 3))
            cv2.rectangle(img, (x, y), (x + int(rng.integers(20, 120)), y + 40), color, -1)
        images.append(img)
    return images


def time_batch_sizes(model, images, texts, batch_sizes, rounds) -> dict[int, float]:
    """Images/s of ``inference_detector`` per batch size, the sizes taking turns per round."""
    seconds = {b: 0.0 for b in batch_sizes}
    inference_detector(model, images[: max(batch_sizes)], texts=texts, batch_size=max(batch_sizes))
    for _ in range(rounds):
        for b in batch_sizes:
            t0 = time.perf_counter()
            inference_detector(model, images, texts=texts, batch_size=b)
            seconds[b] += time.perf_counter() - t0
    return {b: rounds * len(images) / s for b, s in seconds.items()}


class TextTimer:
    """Accumulates the seconds spent in the text model's forward while installed (forward
    hooks on ``model.backbone.text_model``)."""

    def __init__(self, model) -> None:
        self.text_model = model.backbone.text_model
        self.seconds = 0.0
        self._start = None
        self._hooks = []

    def _pre(self, *_):
        self._start = time.perf_counter()

    def _post(self, *_):
        self.seconds += time.perf_counter() - self._start

    def __enter__(self):
        self._hooks = [
            self.text_model.register_forward_pre_hook(self._pre),
            self.text_model.register_forward_hook(self._post),
        ]
        return self

    def __exit__(self, *exc) -> None:
        for hook in self._hooks:
            hook.remove()


def time_text_cache(model, image, texts) -> tuple[float, float]:
    """Seconds inside the text model in a first call with ``texts`` (cache emptied) and in
    a second call with the same ``texts``."""
    model.backbone.text_model.clear_cache()
    times = []
    for _ in range(2):
        with TextTimer(model) as timer:
            inference_detector(model, image, texts=texts)
        times.append(timer.seconds)
    return times[0], times[1]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_config_arguments(parser, 'a YOLO-World config (e.g. the v2-S COCO recipe)')
    parser.add_argument('--checkpoint', default=None, help='checkpoint (random weights if none)')
    add_shape_argument(parser, default=(480, 640))
    parser.add_argument('--batch-sizes', type=int, nargs='+', default=[1, 4, 8])
    parser.add_argument('--num-images', type=int, default=16)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--num-texts', type=int, default=80, help='vocabulary size of part 1')
    parser.add_argument(
        '--cache-texts', type=int, default=1203, help='vocabulary size of part 2 (0: skip it)'
    )
    add_text_model_argument(parser)
    layout = parser.add_mutually_exclusive_group()
    layout.add_argument(
        '--channels-last',
        action='store_const',
        const=True,
        dest='channels_last',
        default='auto',
        help="init_detector's channels_last=True (default 'auto': channels-last on CPU)",
    )
    layout.add_argument(
        '--no-channels-last',
        action='store_const',
        const=False,
        dest='channels_last',
        help="init_detector's channels_last=False (contiguous)",
    )
    add_bf16_argument(parser)
    args = parser.parse_args(argv)
    if min(args.batch_sizes) < 1 or args.num_images < 1 or args.rounds < 1:
        parser.error('--batch-sizes, --num-images and --rounds take positive integers')
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    with warnings_only():
        return _main(args)


def _main(args) -> dict:
    shape = shape_from_args(args)
    cfg = config_from_args(args, init_scope=False)
    texts = [f'object{i:04d}' for i in range(args.num_texts)]
    cache_texts = [f'category{i:04d}' for i in range(args.cache_texts)]
    with tempfile.TemporaryDirectory() as tmpdir:
        _, random_text = set_text_model(cfg, args.text_model, tmpdir, words=texts + cache_texts)
        model = init_detector(
            copy.deepcopy(cfg), args.checkpoint, channels_last=args.channels_last, bf16=args.bf16
        )
    images = generated_images(args.num_images, shape)
    fps = time_batch_sizes(model, images, texts, args.batch_sizes, args.rounds)
    threads = torch.get_num_threads()
    print(
        f'{osp.basename(args.config)}: inference_detector on {args.num_images} images of '
        f'{shape[0]}x{shape[1]}, {args.rounds} rounds, {threads} CPU threads, '
        f'{len(texts)} texts (cached), '
        + ('random weights' if args.checkpoint is None else args.checkpoint)
        + (', channels-last' if model._ai4rs_inference_mode['channels_last'] else ', contiguous')
        + (f', --bf16 {args.bf16}' if args.bf16 else '')
    )
    first = args.batch_sizes[0]
    print(f'| batch size | images/s | vs batch {first} |\n|---:|---:|---:|')
    for b, value in fps.items():
        print(f'| {b} | {value:.3f} | {value / fps[first]:.2f}x |')
    result = dict(fps=fps)
    if args.cache_texts:
        t1, t2 = time_text_cache(model, images[0], cache_texts)
        source = 'random-weight CLIP ViT-B/32' if random_text else args.text_model
        print(
            f'text model ({source}), {len(cache_texts)} prompts: first call {t1:.3f} s, '
            f'second call with the same vocabulary {t2 * 1e3:.2f} ms '
            f'({100 * t2 / t1:.3f} % of the first)'
        )
        result['text_seconds'] = (t1, t2)
    return result


if __name__ == '__main__':
    main()
