"""A web page to try a detector in a browser: upload an image, see the boxes and a table.

    python demo/gradio_demo.py CONFIG CHECKPOINT [--device cpu] [--bf16 [auto]] [--host 127.0.0.1]
        [--port 7860] [--share] [--texts "car,ship"] [--max-upload-mb 10]

Then open http://127.0.0.1:7860. YOLO-World models (v2 and rotated) take the texts typed in
the page (comma-separated; default ``--texts``, else the model's vocabulary, else its
dataset's classes); a rotated YOLOX model shows its fixed classes. Needs gradio
(``pip install -r requirements/demo.txt``).

Safe by default: the server listens on 127.0.0.1 only (``--host 0.0.0.0`` to serve the
network), no public gradio.live link unless ``--share``, uploads at most ``--max-upload-mb``
and decoded as images only (ai4rs/apis/web_demo.py). A config or checkpoint that is not a
file is a usage error (status 2); a missing gradio or a checkpoint that cannot be loaded one
line on stderr and status 1.
"""

import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import ai4rs  # noqa: E402,F401,I001  (first: sets the OpenMP wait policy before torch loads)

from ai4rs.apis.web_demo import DEFAULT_MAX_UPLOAD_MB  # noqa: E402
from ai4rs.utils.cli import add_bf16_argument, add_cfg_options_argument  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint (.pth) or exported model (.onnx)')
    parser.add_argument('--device', default='cpu', help='e.g. cpu or cuda:0')
    add_bf16_argument(parser)
    parser.add_argument(
        '--host', default='127.0.0.1', help='address to listen on (0.0.0.0: every interface)'
    )
    parser.add_argument('--port', type=int, default=7860)
    parser.add_argument(
        '--share', action='store_true', help="also serve on a public gradio.live link (gradio's)"
    )
    parser.add_argument(
        '--texts',
        default=None,
        help='default texts of a YOLO-World model: "a,b,c" or a .txt / .json file',
    )
    parser.add_argument(
        '--max-upload-mb', type=float, default=DEFAULT_MAX_UPLOAD_MB, help='upload size limit'
    )
    add_cfg_options_argument(parser)
    args = parser.parse_args(argv)
    for what, path in (('config', args.config), ('checkpoint', args.checkpoint)):
        if not osp.isfile(path):
            parser.error(f'{what} file not found: {path}')
    if not 0 < args.max_upload_mb <= 1000:
        parser.error(f'--max-upload-mb: between 0 and 1000, got {args.max_upload_mb}')
    if not 0 <= args.port <= 65535:
        parser.error(f'--port: 0..65535, got {args.port}')
    if args.texts is not None:
        from ai4rs.datasets.class_texts import read_vocabulary

        try:
            args.texts = read_vocabulary(args.texts)
        except (ValueError, FileNotFoundError) as e:
            parser.error(str(e))
    return args


def main(argv=None, block=True):
    """Build the model and the page and serve it; ``block=False`` returns the gradio
    ``Blocks`` once the server runs (``.close()`` stops it)."""
    args = parse_args(argv)
    from ai4rs.apis import init_detector
    from ai4rs.apis.web_demo import WebDemo, build_demo, import_gradio, launch_demo
    from ai4rs.utils.paths import add_project_paths

    import_gradio()  # before the model: a missing gradio fails in a second
    add_project_paths()
    model = init_detector(
        args.config,
        args.checkpoint,
        device=args.device,
        cfg_options=args.cfg_options,
        bf16=args.bf16,
    )
    demo = WebDemo(model, texts=args.texts, max_upload_mb=args.max_upload_mb)
    blocks = build_demo(demo)
    launch_demo(
        blocks,
        host=args.host,
        port=args.port,
        share=args.share,
        max_upload_mb=args.max_upload_mb,
        block=block,
    )
    return blocks


def cli(argv=None) -> int:
    """:func:`main` for the command line: an error is one line on stderr and status 1."""
    from ai4rs.utils.checkpoint import CheckpointMismatchError

    try:
        main(argv)
    except (ImportError, ValueError, OSError, CheckpointMismatchError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(cli())
