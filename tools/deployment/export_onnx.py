"""Export a YOLO-World or rotated YOLOX checkpoint to an image-only ONNX model and check it.

    python tools/deployment/export_onnx.py CONFIG CHECKPOINT [--texts "person,dog" | vocab.txt]
        [--text-input] [--img-size H W] [--opset 17] [--simplify] [--with-nms] [--img IMG]
        [--out F.onnx]

YOLO-World is reparameterized: the vocabulary (``--texts``, else the one baked in the
checkpoint's model) is encoded once and baked into the graph, so the ONNX model needs
no CLIP. The graph: ``images`` (1, 3, H, W) float32, the data preprocessor's output ->
``boxes`` (1, P, 4 | 5) decoded boxes in input pixels and ``scores`` (1, P, K); see
ai4rs/apis/deployment/export.py. Score filtering, NMS and rescaling run after the graph
(the head's ``postprocess_decoded``, what ``init_detector(CONFIG, "F.onnx")`` and the
demos use with an .onnx file). ``--with-nms`` (horizontal boxes only; ONNX has no rotated NMS)
ends the graph with ONNX NonMaxSuppression: outputs ``dets`` (N, 4), ``scores`` (N,),
``labels`` (N,) in input pixels, best first.

``--text-input`` (YOLO-World) bakes no vocabulary: the graph takes a second input ``texts``
(K, D) float32, the text embeddings of any K prompts (``scores`` is then (1, P, K)), so one
file serves every vocabulary. ``init_detector(CONFIG, "F.onnx")`` then encodes each call's
texts with the config's text model, or with a saved embeddings file
(tools/misc/generate_text_embeddings.py; ``demo/yolo_world_demo.py --text-embeddings``).
The check runs two vocabularies of different sizes.

The command then runs the ONNX model with onnxruntime and PyTorch on a real image
(``--img``, or a generated one), prints the maximum absolute difference of each output
and fails when it exceeds ``--tolerance`` x max(1, largest |value|).
"""

import argparse
import os.path as osp
import sys
import tempfile

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import ai4rs  # noqa: E402,F401,I001  (first: sets the OpenMP wait policy before torch loads)
import numpy as np  # noqa: E402
import torch  # noqa: E402

from ai4rs.apis.deployment import (  # noqa: E402
    DecodedDetector,
    Preprocessor,
    default_img_size,
    export_onnx,
    graph_nms_supported,
    onnx_session,
    output_names,
)
from ai4rs.apis.inference import init_detector, model_vocabulary  # noqa: E402
from ai4rs.apis.pipeline import text_prompt_format  # noqa: E402
from ai4rs.datasets.class_texts import read_vocabulary  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--texts',
        default=None,
        help='YOLO-World vocabulary: "a,b,c", or a .txt (one per line) or '
        '.json (class-text list) file',
    )
    parser.add_argument(
        '--img-size',
        type=int,
        nargs=2,
        default=None,
        metavar=('H', 'W'),
        help="input size; default: the test pipeline's resize scale",
    )
    parser.add_argument('--opset', type=int, default=17, help='ONNX opset version')
    parser.add_argument('--simplify', action='store_true', help='simplify with onnxsim')
    parser.add_argument(
        '--with-nms', action='store_true', help='NMS in the graph (YOLO-World only)'
    )
    parser.add_argument(
        '--text-input',
        action='store_true',
        help='YOLO-World: the graph takes the text embeddings (K, D) as a second input '
        '(any vocabulary at run time) instead of baking --texts in',
    )
    parser.add_argument('--img', default=None, help='image for the onnxruntime check')
    parser.add_argument(
        '--tolerance',
        type=float,
        default=1e-4,
        help='allowed max |onnx - torch| relative to max(1, max |torch|)',
    )
    parser.add_argument(
        '--out', default=None, help='output .onnx (default: next to the checkpoint, same name)'
    )
    parser.add_argument('--device', default='cpu', help='device of the PyTorch model')
    return parser.parse_args(argv)


def generated_image(path: str, h: int = 480, w: int = 640) -> str:
    """A textured BGR image with shapes, for the check when no --img is given."""
    import cv2

    rng = np.random.default_rng(0)
    img = (rng.random((h, w, 3)) * 80 + 90).astype(np.uint8)
    cv2.rectangle(img, (w // 10, h // 8), (w // 2, h // 2), (40, 40, 220), -1)
    cv2.circle(img, (3 * w // 4, 2 * h // 3), min(h, w) // 6, (220, 60, 40), -1)
    cv2.imwrite(path, img)
    return path


def simplify(out_file: str) -> None:
    try:
        import onnxsim
    except ImportError:
        print(
            '--simplify: onnxsim is not installed (pip install onnxsim); the model is '
            'written unsimplified'
        )
        return
    import onnx

    model, ok = onnxsim.simplify(onnx.load(out_file))
    if not ok:
        print('--simplify: onnxsim could not validate the simplified model; kept the original')
        return
    onnx.save(model, out_file)
    print('simplified with onnxsim')


def main(argv=None):
    args = parse_args(argv)
    try:
        import onnx  # noqa: F401
    except ImportError:
        sys.exit(
            'export_onnx.py needs onnx and onnxruntime: pip install onnx onnxruntime '
            '(requirements/optional.txt)'
        )
    model = init_detector(args.config, args.checkpoint, device=args.device)
    if args.with_nms and not graph_nms_supported(model.box_type):
        sys.exit(
            f'--with-nms: ONNX has no NMS operator for {model.box_type.__name__}; export '
            'without it: the head post-processes the outputs after the graph (what '
            'init_detector / the demos do with an .onnx file), rotated NMS included.'
        )
    texts = check_texts = None
    if args.text_input and not model.takes_texts:
        sys.exit(
            f'--text-input is for open-vocabulary models; {type(model).__name__} has fixed classes'
        )
    if model.takes_texts and args.text_input:
        vocab = trace_vocabulary(model, args.texts)
        texts = text_embeddings(model, vocab)
        # a second vocabulary of another size for the check: the graph's K is dynamic
        other = vocab[: max(1, len(vocab) // 2)] + ['object', 'thing in the image']
        check_texts = text_embeddings(model, other)
        print(
            f'text embeddings are an input (K x {texts.shape[1]}, any K); traced with '
            f'{len(vocab)} texts, checked with {len(vocab)} and {len(other)}'
        )
    elif model.takes_texts:
        vocab = model_vocabulary(model, read_vocabulary(args.texts) if args.texts else None)
        model.reparameterize(
            vocab, drop_text_model=True, prompt_format=text_prompt_format(model.cfg)
        )
        print(
            f'vocabulary baked in ({len(vocab)} texts): {vocab[:10]}'
            + (' ...' if len(vocab) > 10 else '')
        )
    elif args.texts:
        sys.exit(f'--texts is for open-vocabulary models; {type(model).__name__} has fixed classes')
    img_size = tuple(args.img_size) if args.img_size else default_img_size(model.cfg)
    out_file = args.out or osp.splitext(args.checkpoint)[0] + '.onnx'

    preprocess = Preprocessor(model.cfg, img_size)
    with tempfile.TemporaryDirectory() as tmp:
        img = args.img or generated_image(osp.join(tmp, 'check.png'))
        inputs, _ = preprocess(img)
    inputs = inputs.to(args.device)
    meta = export_onnx(
        model, inputs, out_file, opset=args.opset, with_nms=args.with_nms, texts=texts
    )
    if args.simplify:
        simplify(out_file)
    print(
        f'wrote {out_file} ({meta["box_type"]} boxes, '
        f'input 1x3x{img_size[0]}x{img_size[1]}, opset {args.opset})'
    )

    wrapper = DecodedDetector(model, args.with_nms, text_input=texts is not None).eval()
    session = onnx_session(out_file)
    worst = 0.0
    for feats in (None,) if texts is None else (texts, check_texts):
        worst = max(worst, check_outputs(session, wrapper, inputs, feats, args))
    print(f'check passed on {args.img or "a generated image"}: max abs difference {worst:.3g}')
    return meta


def trace_vocabulary(model, texts_arg) -> list[str]:
    """The vocabulary to trace a ``--text-input`` export with: ``--texts``, else the
    model's baked-in vocabulary or its classes."""
    if texts_arg:
        return read_vocabulary(texts_arg)
    vocab = model.vocabulary or (getattr(model, 'dataset_meta', None) or {}).get('classes')
    if not vocab:
        sys.exit('--text-input: give --texts (any vocabulary: it is used to trace and check)')
    return list(vocab)


def text_embeddings(model, vocab) -> torch.Tensor:
    """(K, D) embeddings of ``vocab`` formatted as the test pipeline's LoadText does."""
    prompt_format = text_prompt_format(model.cfg)
    with torch.no_grad():
        return model.backbone.forward_text([[prompt_format.format(t) for t in vocab]])[0]


def check_outputs(session, wrapper, inputs, texts, args) -> float:
    """The largest |onnxruntime - PyTorch| over the outputs; exits when one is too large."""
    with torch.no_grad():
        ref = wrapper(inputs) if texts is None else wrapper(inputs, texts)
    ref = [t.cpu().numpy() for t in ref]
    names = output_names(args.with_nms)
    feed = {'images': inputs.cpu().numpy().astype(np.float32)}
    if texts is not None:
        feed['texts'] = texts.cpu().numpy().astype(np.float32)
    got = session.run(names, feed)
    worst = 0.0
    for name, a, b in zip(names, got, ref):
        if a.shape != b.shape:
            sys.exit(f'onnxruntime {name} shape {a.shape} != PyTorch {b.shape}')
        diff = float(np.abs(a.astype(np.float64) - b).max()) if a.size else 0.0
        bound = args.tolerance * max(1.0, float(np.abs(b).max()) if b.size else 0.0)
        print(
            f'max abs difference onnxruntime vs PyTorch, {name} {tuple(a.shape)}: '
            f'{diff:.3g} (allowed {bound:.3g})'
        )
        if not diff <= bound:
            sys.exit(f'{name}: onnxruntime differs from PyTorch by {diff:.3g} > {bound:.3g}')
        worst = max(worst, diff)
    return worst


if __name__ == '__main__':
    main()
