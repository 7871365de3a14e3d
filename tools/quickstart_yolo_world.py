"""Open-vocabulary quick start: generate COCO-format shapes, train a small YOLO-World v2, detect.

    python tools/quickstart_yolo_world.py [--work-dir work_dirs/quickstart_yolo_world] \
        [--data-root data/synthetic_coco] [--text-model CLIP_DIR] [--texts "blue square,red circle"]

1. writes (once, deterministically) 160 training and 40 held-out 256-px images of four kinds of
   coloured shapes ('red circle', 'blue square', 'green triangle', 'yellow star') in COCO format;
2. uses your CLIP text model (``--text-model``: a local directory such as a download of
   ``openai/clip-vit-base-patch32``) or, without one, writes a tiny randomly initialised CLIP text
   model (real loading code, meaningless embeddings: only the trained words are recognised);
3. trains configs/yolo_world_v2/yolo_world_v2_quickstart_synthetic.py with the ordinary mmengine
   Runner (GPU if present, else CPU), evaluates the held-out images with CocoMetric and prints
   ``AP50: ...``;
4. runs the YOLO-World demo on a held-out image with the vocabulary given by ``--texts`` and
   writes the drawing.
"""

import argparse
import importlib.util
import json
import math
import os.path as osp
import sys
import time

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from ai4rs.datasets.class_texts import read_vocabulary  # noqa: E402
from ai4rs.datasets.preparation.synthetic_coco import CLASSES, generate_dataset  # noqa: E402
from ai4rs.engine.runner import Runner, load_trained_weights  # noqa: E402
from ai4rs.utils import register_all_modules  # noqa: E402
from ai4rs.utils.cli import add_quickstart_arguments, enable_amp  # noqa: E402
from ai4rs.utils.config import load_config  # noqa: E402

CONFIG = osp.join(REPO_ROOT, 'configs', 'yolo_world_v2', 'yolo_world_v2_quickstart_synthetic.py')


def parse_args(
    argv=None,
    classes=CLASSES,
    work_dir='work_dirs/quickstart_yolo_world',
    data_root='data/synthetic_coco',
    default_texts='blue square,yellow star',
    description=None,
):
    """The quick start's options (also those of its rotated sibling, with its own classes,
    folders and default demo vocabulary)."""
    parser = argparse.ArgumentParser(description=description or __doc__.splitlines()[0])
    add_quickstart_arguments(parser, work_dir, data_root)
    parser.add_argument(
        '--text-model',
        default=None,
        help='a local CLIP text model directory (default: write a tiny random one '
        'into the work dir)',
    )
    parser.add_argument(
        '--texts',
        default=default_texts,
        help='comma-separated vocabulary for the demo after training',
    )
    parser.add_argument(
        '--demo-image', default=None, help='image for the demo (default: the first held-out image)'
    )
    args = parser.parse_args(argv)
    # checked now, not after the training that precedes the demo
    try:
        texts = read_vocabulary(args.texts)
    except (ValueError, FileNotFoundError) as e:
        parser.error(str(e))
    untrained = untrained_texts(texts, classes)
    if untrained and args.text_model is None:
        parser.error(
            f'--texts: {", ".join(repr(t) for t in untrained)} not among the trained names '
            f'({", ".join(classes)}). The tiny random text model that the quick start writes '
            'gives other words no meaning, so the demo would label objects with them at random; '
            'use trained names, or a real CLIP (--text-model DIR) for other phrasings'
        )
    if untrained:
        print(
            f'warning: --texts: {", ".join(repr(t) for t in untrained)} not among the trained '
            f'names ({", ".join(classes)}); the demo finds what the CLIP of --text-model '
            'matches to them',
            file=sys.stderr,
        )
    if args.demo_image is not None and not osp.isfile(args.demo_image):
        parser.error(f'--demo-image: image file not found: {args.demo_image}')
    return args


def untrained_texts(texts: list[str], classes=CLASSES) -> list[str]:
    """The texts that are none of the trained class names ``classes`` (compared as CLIP's
    tokenizer reads them: case and repeated spaces do not matter)."""
    trained = {' '.join(c.lower().split()) for c in classes}
    return [t for t in texts if ' '.join(t.lower().split()) not in trained]


def build_config(args, text_model: str, config: str = CONFIG, coco: bool = True):
    """The quick-start ``config`` with the script's data root, its class-text file, the text
    model and the options; ``coco``: the evaluators read the COCO validation annotations."""
    cfg = load_config(config)
    data_root = osp.abspath(args.data_root) + '/'
    class_texts = osp.join(data_root, 'texts', 'class_texts.json')
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].dataset.dataset.data_root = data_root
        cfg[key].dataset.class_text_path = class_texts
    if coco:
        for key in ('val_evaluator', 'test_evaluator'):
            cfg[key].ann_file = osp.join(data_root, 'annotations', 'instances_val.json')
    cfg.model.backbone.text_model.model_name = text_model
    cfg.work_dir = args.work_dir
    if args.epochs is not None:
        cfg.train_cfg.max_epochs = args.epochs
        cfg.default_hooks.param_scheduler.max_epochs = args.epochs
        cfg.default_hooks.checkpoint.interval = args.epochs
    if args.amp:
        enable_amp(cfg)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    # the script evaluates once after training (runner.val()), not also at the last epoch
    cfg.train_cfg.val_interval = cfg.train_cfg.max_epochs + 1
    return cfg


def resolve_text_model(args) -> str:
    """``--text-model``, or a tiny random CLIP written into the work dir."""
    if args.text_model is not None:
        return args.text_model
    from ai4rs.testing.tiny_clip import make_tiny_clip

    text_model = make_tiny_clip(osp.join(osp.abspath(args.work_dir), 'tiny_clip'))
    print(
        f'text model: a tiny random CLIP written to {text_model} (pass --text-model for a real one)'
    )
    return text_model


def format_box(box: list[float]) -> str:
    """``(x1, y1, x2, y2)`` in pixels, or a rotated ``(cx, cy, w, h, angle deg)``."""
    if len(box) == 5:
        cx, cy, w, h, t = box
        return f'({cx:.0f}, {cy:.0f}, {w:.0f}, {h:.0f}, {math.degrees(t):.0f} deg)'
    return '(' + ', '.join(f'{v:.0f}' for v in box) + ')'


def run_demo(
    config: str, checkpoint: str, image: str, texts: str, out_dir: str
) -> tuple[str, list[dict]]:
    """demo/yolo_world_demo.py on ``image`` with the vocabulary ``texts``; prints the
    detections and returns the drawing and the detections (its JSON)."""
    path = osp.join(REPO_ROOT, 'demo', 'yolo_world_demo.py')
    spec = importlib.util.spec_from_file_location('yolo_world_demo', path)
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    drawing = demo.main([image, config, checkpoint, '--texts', texts, '--out-dir', out_dir])[0]
    with open(osp.splitext(drawing)[0] + '.json') as f:
        found = json.load(f)
    for det in found:
        print(f'  {det["text"]}: {det["score"]:.2f} at {format_box(det["bbox"])}')
    return drawing, found


def main(argv=None):
    args = parse_args(argv)
    start = time.time()
    generate_dataset(args.data_root, num_train=args.num_train, num_val=args.num_val, img_size=256)
    print(
        f'dataset: {osp.abspath(args.data_root)} ({args.num_train} train, {args.num_val} '
        f'held-out images; classes: {", ".join(CLASSES)})'
    )
    text_model = resolve_text_model(args)
    register_all_modules(init_default_scope=False)
    cfg = build_config(args, osp.abspath(text_model))
    runner = Runner.from_cfg(cfg)
    runner.train()
    # evaluate the weights the checkpoint holds (EMA), as tools/test.py does
    checkpoint = osp.abspath(load_trained_weights(runner))
    metrics = runner.val()
    work_dir = osp.abspath(cfg.work_dir)
    # the Runner wrote the config as trained (data paths, text model) there: for test.py, the demo
    config = osp.join(work_dir, osp.basename(CONFIG))
    minutes = (time.time() - start) / 60

    image = args.demo_image or _first_val_image(args.data_root)
    print(f'\ndemo: {image} with the vocabulary "{args.texts}"')
    drawing, found = run_demo(config, checkpoint, image, args.texts, osp.join(work_dir, 'demo'))

    print(f'\nwork dir: {work_dir}')
    print(f'config: {config}')
    print(f'checkpoint: {checkpoint}')
    print(f'demo drawing: {drawing}')
    print(f'time: {minutes:.1f} min (training and evaluation)')
    # CocoMetric returns no metrics when the model detected nothing at all (e.g. after a
    # single warm-up epoch): that is an AP50 of 0
    ap50 = metrics.get('coco/bbox_mAP_50', 0.0)
    if 'coco/bbox_mAP_50' not in metrics:
        print('no detections on the held-out images')
    print(f'AP50: {ap50:.4f}')
    return dict(
        ap50=ap50,
        minutes=minutes,
        config=config,
        checkpoint=checkpoint,
        drawing=drawing,
        detections=found,
    )


def _first_val_image(data_root: str) -> str:
    with open(osp.join(data_root, 'annotations', 'instances_val.json')) as f:
        first = json.load(f)['images'][0]['file_name']
    return osp.join(osp.abspath(data_root), 'val', first)


if __name__ == '__main__':
    main()
