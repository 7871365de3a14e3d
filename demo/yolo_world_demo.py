"""Open-vocabulary detection with YOLO-World on an image, a folder of images or a video.

    python demo/yolo_world_demo.py IMG CONFIG CHECKPOINT --texts "person,dog,bus"
    python demo/yolo_world_demo.py FOLDER CONFIG CHECKPOINT --texts vocab.txt
    python demo/yolo_world_demo.py VIDEO.mp4 CONFIG CHECKPOINT --texts "car,truck"
        [--score-thr 0.3] [--topk 100] [--out-dir outputs] [--device cpu]
        [--text-embeddings F.pt] [--batch-size 1] [--image-prompts DIR|F.json|F.pt]
        [--bf16 [auto]]
    python demo/yolo_world_demo.py IMG CONFIG MODEL.onnx     # vocabulary baked in at export

``--texts`` is a comma-separated list, or a .txt file (one text per line) or a .json
file (strings, or lists whose first string is used, as coco_class_texts.json). With a
checkpoint the model may also carry a vocabulary (saved after ``reparameterize``); with
``--text-embeddings`` (a file of tools/misc/generate_text_embeddings.py) the CLIP model
is replaced by the saved embeddings (``PseudoLanguageBackbone``) and the vocabulary
defaults to the file's texts. An .onnx CHECKPOINT (tools/deployment/export_onnx.py) runs
with onnxruntime; its vocabulary is the one stored in the file at export, or, for a file
exported with ``--text-input``, the ``--texts`` of the run, encoded by the config's CLIP or
read from ``--text-embeddings``. ``--batch-size N``
runs N images of a folder per forward pass (same detections as one by one).
``--image-prompts DIR_OR_JSON_OR_PT`` adds classes given by example crops (CLIP's image
tower, ``--vision-model``; see ai4rs/apis/image_prompts.py), mixed with ``--texts``.

Writes to ``--out-dir``: the drawing of each image (same file name), for a video an
annotated ``<name>.mp4``; and ``<name>.json`` with the kept detections (boxes in
original-image pixels, x1, y1, x2, y2, or cx, cy, w, h, angle (radians) for a rotated model;
scores; labels and their texts; per frame for a video). Rotated YOLO-World checkpoints draw
oriented boxes; rotated YOLOX checkpoints work too (their classes are the labels).

In a folder, an image that cannot be read (corrupt, truncated) is skipped with a warning
and the skipped files are listed at the end; the exit status is 1 only when no image
could be read. Usage errors (a missing input, an empty ``--texts``) end with a one-line
message and status 2; a checkpoint that cannot be loaded with a one-line message and
status 1.
"""

import argparse
import json
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import ai4rs  # noqa: E402,F401,I001  (first: sets the OpenMP wait policy before torch loads)
import numpy as np  # noqa: E402

from ai4rs.datasets.class_texts import read_vocabulary  # noqa: E402
from ai4rs.utils.cli import add_bf16_argument  # noqa: E402

IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
VIDEO_EXTS = ('.mp4', '.avi', '.mov', '.mkv', '.m4v', '.webm')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('input', help='image file, folder of images or video file')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint (.pth) or exported model (.onnx)')
    parser.add_argument('--texts', default=None, help='vocabulary: "a,b,c" or a .txt / .json file')
    parser.add_argument('--score-thr', type=float, default=0.3, help='keep scores >= this')
    parser.add_argument('--topk', type=int, default=100, help='keep at most this many per image')
    parser.add_argument('--out-dir', default='outputs', help='where drawings are written')
    parser.add_argument('--device', default='cpu', help='e.g. cpu or cuda:0')
    add_bf16_argument(parser)
    parser.add_argument(
        '--batch-size', type=int, default=1, help='images of a folder per forward pass'
    )
    parser.add_argument(
        '--image-prompts',
        default=None,
        help='classes given by example crops: a folder (one sub-folder of crops per class), '
        'a JSON file ({"class": [{"image": F, "box": [x1, y1, x2, y2]}]}) or a .pt file of '
        'tools/misc/generate_image_prompts.py; mixed with --texts',
    )
    parser.add_argument(
        '--vision-model',
        default=None,
        help="CLIP image tower for --image-prompts crops (default: the config's CLIP "
        'directory, which holds both towers when it is a whole CLIP checkpoint)',
    )
    parser.add_argument(
        '--text-embeddings',
        default=None,
        help='saved text embeddings replacing the CLIP model (.pt/.pth; .npy '
        'needs --texts in row order)',
    )
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error(f'--batch-size must be >= 1, got {args.batch_size}')
    try:
        args.kind, args.files = list_inputs(args.input)
        args.vocabulary = read_vocabulary(args.texts) if args.texts else None
    except (ValueError, FileNotFoundError) as e:
        parser.error(str(e))
    if args.text_embeddings and not osp.isfile(args.text_embeddings):
        parser.error(f'--text-embeddings: file not found: {args.text_embeddings}')
    if '://' not in args.checkpoint and not osp.isfile(args.checkpoint):
        parser.error(f'checkpoint file not found: {args.checkpoint}')
    return args


class Predictor:
    """One image (BGR array or file) -> DetDataSample, with a checkpoint or an .onnx file.

    Attributes:
        classes (list[str]): the label names (the vocabulary for YOLO-World).
    """

    def __init__(self, args) -> None:
        from ai4rs.apis import init_detector
        from ai4rs.apis.inference import model_vocabulary
        from ai4rs.apis.pipeline import load_model_config

        texts = args.vocabulary
        config = load_model_config(args.config)
        if args.text_embeddings:
            from ai4rs.models.backbones.clip_text import load_text_embeddings

            table = load_text_embeddings(args.text_embeddings, texts)
            config.model.backbone.text_model = dict(
                type='PseudoLanguageBackbone',
                text_embed_path=args.text_embeddings,
                texts=texts if args.text_embeddings.endswith('.npy') else None,
            )
            texts = texts if texts is not None else list(table)
        # a checkpoint, or an .onnx file (run by onnxruntime, its vocabulary baked in, or
        # given at run time: export_onnx.py --text-input)
        self.model = init_detector(config, args.checkpoint, device=args.device, bf16=args.bf16)
        onnx_baked = args.checkpoint.endswith('.onnx') and not self.model.text_input
        if onnx_baked and args.text_embeddings:
            raise ValueError(
                f'--text-embeddings: {args.checkpoint} has its vocabulary baked in '
                '(export it with --text-input to give one at run time)'
            )
        if onnx_baked and texts is not None:
            if texts != self.model.vocabulary:
                raise ValueError(
                    f'{args.checkpoint} was exported with the vocabulary {self.model.vocabulary}; '
                    f'--texts {texts} differs (export again with --texts)'
                )
        self.prompt_embeddings = None
        if args.image_prompts:
            from ai4rs.apis.image_prompts import image_prompts_from, mixed_vocabulary

            vision = args.vision_model or config.model.backbone.get('text_model', {}).get(
                'model_name'
            )
            self.prompt_embeddings = image_prompts_from(args.image_prompts, vision, args.device)
            texts = mixed_vocabulary(texts, list(self.prompt_embeddings))
        self.texts = model_vocabulary(self.model, texts)
        self.classes = (
            self.texts
            if self.texts is not None
            else list(self.model.dataset_meta.get('classes', []))
        )

    def __call__(self, img, batch_size: int = 1):
        """One image -> one sample; a list of images -> a list, ``batch_size`` per forward."""
        from ai4rs.apis import inference_detector

        return inference_detector(
            self.model,
            img,
            texts=self.texts,
            batch_size=batch_size,
            prompt_embeddings=self.prompt_embeddings,
        )


def kept_instances(sample, score_thr: float, topk: int):
    """The predictions with score >= ``score_thr``, the ``topk`` best."""
    pred = sample.pred_instances
    pred = pred[pred.scores >= score_thr]
    order = pred.scores.argsort(descending=True)[:topk]
    return pred[order]


def detections_json(instances, classes) -> list[dict]:
    boxes = getattr(instances.bboxes, 'tensor', instances.bboxes).detach().cpu().tolist()
    return [
        dict(
            bbox=[round(v, 4) for v in box],
            score=round(float(s), 6),
            label=int(lb),
            text=classes[int(lb)] if int(lb) < len(classes) else str(int(lb)),
        )
        for box, s, lb in zip(boxes, instances.scores.tolist(), instances.labels.tolist())
    ]


def draw(visualizer, img_bgr: np.ndarray, instances, classes) -> np.ndarray:
    """The BGR image with the instances drawn (labels = ``classes``)."""
    drawn = visualizer.draw_instances(
        np.ascontiguousarray(img_bgr[..., ::-1]), instances, classes=classes
    )
    return np.ascontiguousarray(drawn[..., ::-1])


def list_inputs(path: str) -> tuple[str, list[str]]:
    """('video', [path]) or ('images', [files])."""
    if osp.isdir(path):
        files = sorted(
            osp.join(path, f) for f in os.listdir(path) if f.lower().endswith(IMAGE_EXTS)
        )
        if not files:
            raise FileNotFoundError(f'no images ({", ".join(IMAGE_EXTS)}) in folder {path}')
        return 'images', files
    if not osp.isfile(path):
        raise FileNotFoundError(f'input {path} does not exist')
    if path.lower().endswith(VIDEO_EXTS):
        return 'video', [path]
    return 'images', [path]


def progress(total: int):
    """An mmengine progress bar when attached to a terminal, else None."""
    if total <= 1 or not sys.stdout.isatty():
        return None
    from mmengine.utils import ProgressBar

    return ProgressBar(total)


def run_images(files, predictor, visualizer, args) -> list[str]:
    """Detections of each image, drawn and saved; unreadable images are skipped.

    Raises:
        ValueError: none of ``files`` could be read.
    """
    import cv2

    written, skipped, bar = [], [], progress(len(files))
    batch_size = getattr(args, 'batch_size', 1)
    for start in range(0, len(files), batch_size):
        chunk = []
        for path in files[start : start + batch_size]:
            img = cv2.imread(path)
            if img is None:
                print(f'warning: skipped {path}: not a readable image (corrupt?)', file=sys.stderr)
                skipped.append(path)
            else:
                chunk.append((path, img))
        if not chunk:
            continue
        samples = predictor([img for _, img in chunk], batch_size=batch_size)
        for (path, img), sample in zip(chunk, samples):
            written.append(save_image_result(path, img, sample, predictor, visualizer, args))
            if bar is None:
                kept = kept_instances(sample, args.score_thr, args.topk)
                print(f'{path}: {len(kept)} objects -> {written[-1]}')
            else:
                bar.update()
    if not written:
        raise ValueError(
            f'none of the {len(files)} images could be read: {", ".join(skipped[:10])}'
            + (f' and {len(skipped) - 10} more' if len(skipped) > 10 else '')
        )
    if skipped:
        print(
            f'skipped {len(skipped)} of {len(files)} images that could not be read:\n  '
            + '\n  '.join(skipped),
            file=sys.stderr,
        )
    return written


def save_image_result(path, img, sample, predictor, visualizer, args) -> str:
    """Draw and save one image's kept detections (and their JSON); returns the drawing's path."""
    import cv2

    kept = kept_instances(sample, args.score_thr, args.topk)
    name = osp.basename(path)
    out = osp.join(args.out_dir, name)
    if not cv2.imwrite(out, draw(visualizer, img, kept, predictor.classes)):
        raise OSError(f'could not write {out}')
    with open(osp.join(args.out_dir, osp.splitext(name)[0] + '.json'), 'w') as f:
        json.dump(detections_json(kept, predictor.classes), f)
    return out


def run_video(path, predictor, visualizer, args) -> list[str]:
    import cv2

    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise ValueError(f'could not open video {path}')
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    out = osp.join(args.out_dir, osp.splitext(osp.basename(path))[0] + '.mp4')
    writer, frames, bar = None, [], progress(total)
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            kept = kept_instances(predictor(frame), args.score_thr, args.topk)
            drawn = draw(visualizer, frame, kept, predictor.classes)
            if writer is None:
                h, w = drawn.shape[:2]
                writer = cv2.VideoWriter(out, cv2.VideoWriter_fourcc(*'mp4v'), fps, (w, h))
                if not writer.isOpened():
                    raise OSError(f'could not write video {out}')
            writer.write(drawn)
            frames.append(detections_json(kept, predictor.classes))
            if bar is not None:
                bar.update()
    finally:
        cap.release()
        if writer is not None:
            writer.release()
    if not frames:
        raise ValueError(f'video {path} has no readable frame')
    with open(osp.join(args.out_dir, osp.splitext(osp.basename(path))[0] + '.json'), 'w') as f:
        json.dump(frames, f)
    print(f'{path}: {len(frames)} frames -> {out}')
    return [out]


def main(argv=None) -> list[str]:
    """Run the demo; returns the written drawings (videos).

    Raises:
        SystemExit: status 2 on a usage error (argparse's one-line message).
        ValueError, OSError, CheckpointMismatchError: what stops the run (an unreadable
            input, a file that is no checkpoint...; :func:`cli` prints them as one line).
    """
    args = parse_args(argv)
    from ai4rs.utils.paths import add_project_paths
    from ai4rs.visualization import DetLocalVisualizer

    add_project_paths()
    predictor = Predictor(args)
    os.makedirs(args.out_dir, exist_ok=True)
    visualizer = DetLocalVisualizer.get_instance('ai4rs_yolo_world_demo')
    if args.kind == 'video':
        return run_video(args.files[0], predictor, visualizer, args)
    return run_images(args.files, predictor, visualizer, args)


def cli(argv=None) -> int:
    """:func:`main` for the command line: an error is one line on stderr and status 1."""
    from ai4rs.utils.checkpoint import CheckpointMismatchError

    try:
        main(argv)
    except (ValueError, OSError, CheckpointMismatchError) as e:  # NotACheckpointError too
        print(f'error: {e}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(cli())
