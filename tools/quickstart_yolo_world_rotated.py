"""Open-vocabulary oriented quick start: DOTA-style data, a small rotated YOLO-World, texts.

    python tools/quickstart_yolo_world_rotated.py \
        [--work-dir work_dirs/quickstart_yolo_world_rotated] [--data-root data/synthetic_dota] \
        [--text-model CLIP_DIR] [--texts "vehicle,pool"]

1. writes (once, deterministically) the rotated quick start's 160 training and 40 held-out 256-px
   images of rotated objects ('vehicle', 'pool', 'court') in the split-DOTA layout, and their
   class texts (``texts/class_texts.json``: the class names);
2. uses your CLIP text model (``--text-model``: a local directory such as a download of
   ``openai/clip-vit-base-patch32``) or, without one, writes a tiny randomly initialised CLIP text
   model (real loading code, meaningless embeddings: only the trained words are recognised);
3. trains configs/yolo_world_rotated/yolo_world_rotated_quickstart_synthetic.py with the ordinary
   mmengine Runner (GPU if present, else CPU), evaluates the held-out images with DOTAMetric and
   prints ``AP50: ...``;
4. runs the YOLO-World demo on a held-out image with the vocabulary given by ``--texts`` and
   writes the drawing of the oriented boxes it finds.
"""

import importlib.util
import os.path as osp
import sys
import time

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from ai4rs.datasets.preparation.synthetic_dota import (  # noqa: E402
    CLASSES,
    generate_dataset,
    write_class_texts,
)
from ai4rs.engine.runner import Runner, load_trained_weights  # noqa: E402
from ai4rs.utils import register_all_modules  # noqa: E402

CONFIG = osp.join(
    REPO_ROOT, 'configs', 'yolo_world_rotated', 'yolo_world_rotated_quickstart_synthetic.py'
)


def _sibling():
    """tools/quickstart_yolo_world.py, whose options, text-model and demo steps this one shares."""
    path = osp.join(REPO_ROOT, 'tools', 'quickstart_yolo_world.py')
    spec = importlib.util.spec_from_file_location('quickstart_yolo_world', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_args(argv=None):
    return _sibling().parse_args(
        argv,
        classes=CLASSES,
        work_dir='work_dirs/quickstart_yolo_world_rotated',
        data_root='data/synthetic_dota',
        default_texts='vehicle,pool',
        description=__doc__.splitlines()[0],
    )


def main(argv=None):
    args = parse_args(argv)
    sibling = _sibling()
    start = time.time()
    generate_dataset(args.data_root, num_train=args.num_train, num_val=args.num_val)
    write_class_texts(args.data_root)
    print(
        f'dataset: {osp.abspath(args.data_root)} ({args.num_train} train, {args.num_val} '
        f'held-out images; classes: {", ".join(CLASSES)})'
    )
    text_model = sibling.resolve_text_model(args)
    register_all_modules(init_default_scope=False)
    cfg = sibling.build_config(args, osp.abspath(text_model), CONFIG, coco=False)
    runner = Runner.from_cfg(cfg)
    runner.train()
    # evaluate the weights the checkpoint holds (EMA), as tools/test.py does
    checkpoint = osp.abspath(load_trained_weights(runner))
    metrics = runner.val()
    work_dir = osp.abspath(cfg.work_dir)
    config = osp.join(work_dir, osp.basename(CONFIG))
    minutes = (time.time() - start) / 60

    image = args.demo_image or _first_val_image(args.data_root)
    print(f'\ndemo: {image} with the vocabulary "{args.texts}"')
    drawing, found = sibling.run_demo(
        config, checkpoint, image, args.texts, osp.join(work_dir, 'demo')
    )
    print(f'\nwork dir: {work_dir}')
    print(f'config: {config}')
    print(f'checkpoint: {checkpoint}')
    print(f'demo drawing: {drawing}')
    print(f'time: {minutes:.1f} min (training and evaluation)')
    ap50 = metrics['dota/AP50']
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
    import glob

    return sorted(glob.glob(osp.join(osp.abspath(data_root), 'val', 'images', '*.png')))[0]


if __name__ == '__main__':
    main()
