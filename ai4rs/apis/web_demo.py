"""The web demo's logic (``demo/gradio_demo.py``): uploads decoded as images only, texts
parsed, detections kept, turned into table rows and drawn; and the gradio page built on them.

Everything but :func:`build_demo` and :func:`launch_demo` works without gradio (an optional
extra: ``pip install -r requirements/demo.txt``), so it is tested without a browser.

Safety: an upload arrives as bytes (gradio's ``File(type='binary')``, which reads only its
own copy in its upload folder, never a path the browser names); the bytes are refused when
larger than the limit, when their header is no image format, when the image has more than
:data:`MAX_PIXELS` pixels (checked from the header, before decoding), or when OpenCV cannot
decode them. Each refusal is an :class:`UploadError` whose message the page shows.
"""

import io
import os
import threading

import numpy as np

from .inference import inference_detector, is_open_vocabulary

#: the largest image (width x height) decoded: a small compressed file can declare a huge one
MAX_PIXELS = 40_000_000
#: the default upload limit of ``--max-upload-mb``
DEFAULT_MAX_UPLOAD_MB = 10.0
#: the most detections the page's slider allows
MAX_DETECTIONS_LIMIT = 300

HBOX_HEADERS = ['label', 'score', 'x1', 'y1', 'x2', 'y2']
RBOX_HEADERS = ['label', 'score', 'cx', 'cy', 'w', 'h', 'angle']

GRADIO_MISSING = (
    'the web demo needs gradio, an optional extra: pip install -r requirements/demo.txt '
    '(or pip install "ai4rs[demo]")'
)


class UploadError(ValueError):
    """An upload that is not decoded: too large, not an image, too many pixels."""


def decode_image(
    data: bytes, max_bytes: int, name: str = 'the upload', max_pixels: int = MAX_PIXELS
) -> np.ndarray:
    """Decode uploaded bytes to a BGR uint8 image, refusing anything else.

    Args:
        data (bytes): the file's content.
        max_bytes (int): the largest accepted size.
        name (str): how the messages call the upload.
        max_pixels (int): the largest accepted width x height.

    Returns:
        ndarray: (H, W, 3) uint8, BGR (a grey or 16-bit image converted as
        ``cv2.IMREAD_COLOR`` does).

    Raises:
        UploadError: empty, larger than ``max_bytes``, no image format PIL recognises
            from the header, more than ``max_pixels`` pixels, or undecodable by OpenCV.
    """
    import cv2
    from PIL import Image, UnidentifiedImageError

    if not isinstance(data, (bytes, bytearray)):
        raise UploadError(f'{name}: expected the bytes of an image file, got {type(data).__name__}')
    if len(data) == 0:
        raise UploadError(f'{name} is empty')
    if len(data) > max_bytes:
        raise UploadError(
            f'{name} is {len(data):,} bytes, more than the limit of {max_bytes:,} bytes '
            f'({max_bytes / 1e6:g} MB)'
        )
    try:
        with Image.open(io.BytesIO(data)) as header:  # reads the header only
            width, height = header.size
            fmt = header.format
    except (UnidentifiedImageError, OSError, ValueError):
        raise UploadError(
            f'{name} is not an image (PNG, JPEG, BMP, TIFF or WebP expected; its first bytes: '
            f'{bytes(data[:8])!r})'
        ) from None
    if width * height > max_pixels:
        raise UploadError(
            f'{name} is a {width}x{height} {fmt} image: more than the limit of {max_pixels} pixels'
        )
    img = cv2.imdecode(np.frombuffer(bytes(data), np.uint8), cv2.IMREAD_COLOR)
    if img is None or img.size == 0:
        raise UploadError(f'{name}: its {fmt} data could not be decoded (truncated or corrupt?)')
    return img


def parse_texts(text: str) -> list[str]:
    """``'car, ship ,plane'`` -> ``['car', 'ship', 'plane']`` (empty items dropped).

    Raises:
        ValueError: no text at all.
    """
    texts = [t.strip() for t in (text or '').split(',')]
    texts = [t for t in texts if t]
    if not texts:
        raise ValueError('texts: give at least one, comma-separated (e.g. "car, ship")')
    return texts


def kept_instances(sample, score_thr: float, max_dets: int):
    """``sample.pred_instances`` with score >= ``score_thr``, the ``max_dets`` best, best first."""
    pred = sample.pred_instances
    pred = pred[pred.scores >= score_thr]
    order = pred.scores.argsort(descending=True, stable=True)[: max(int(max_dets), 0)]
    return pred[order]


def is_rotated(instances) -> bool:
    """Whether the boxes are rotated ``(cx, cy, w, h, angle)`` rather than ``(x1, y1, x2, y2)``."""
    bboxes = instances.bboxes
    return getattr(bboxes, 'box_dim', bboxes.shape[-1]) == 5


def table_headers(rotated: bool) -> list[str]:
    """The table's columns: label, score and the box (angle in radians for rotated boxes)."""
    return list(RBOX_HEADERS if rotated else HBOX_HEADERS)


def detection_rows(instances, classes, digits: int = 2) -> list[list]:
    """One table row per instance: ``[label name, score, *box]``.

    Args:
        instances (InstanceData): ``bboxes`` (N boxes: hbox ``x1, y1, x2, y2`` or rbox
            ``cx, cy, w, h, angle``, original-image pixels), ``scores`` (N,), ``labels`` (N,).
        classes (Sequence[str]): ``classes[label]`` names a label; a label beyond them is
            shown as its number.
        digits (int): decimals of the box coordinates; scores have 4, angles (radians) 4.

    Returns:
        list[list]: rows in the order of ``instances``.
    """
    boxes = getattr(instances.bboxes, 'tensor', instances.bboxes).detach().cpu().double()
    rotated = is_rotated(instances)
    rows = []
    for box, score, label in zip(
        boxes.tolist(), instances.scores.tolist(), instances.labels.tolist()
    ):
        label = int(label)
        name = classes[label] if 0 <= label < len(classes) else str(label)
        coords = [round(v, digits) for v in box]
        if rotated:
            coords[4] = round(box[4], 4)
        rows.append([name, round(float(score), 4), *coords])
    return rows


def draw_detections(img_bgr: np.ndarray, instances, classes, dataset_meta=None) -> np.ndarray:
    """The image with ``instances`` drawn by the project's visualizer (oriented boxes for
    rotated ones), RGB (H, W, 3) uint8."""
    from ai4rs.visualization import DetLocalVisualizer

    visualizer = DetLocalVisualizer.get_instance('ai4rs_web_demo')
    visualizer.dataset_meta = dict(dataset_meta or {})
    rgb = np.ascontiguousarray(img_bgr[..., ::-1])
    return np.ascontiguousarray(visualizer.draw_instances(rgb, instances, classes=list(classes)))


def example_image(h: int = 480, w: int = 640, seed: int = 0) -> np.ndarray:
    """A generated BGR example: shapes (some rotated) on a smooth, slightly noisy background
    (the same for the same arguments)."""
    import cv2

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    ramp = 80 + 60 * (xx / max(w - 1, 1)) + 30 * (yy / max(h - 1, 1))
    img = np.repeat(ramp[..., None], 3, axis=2) + rng.normal(0, 3, (h, w, 3))
    img = img.clip(0, 255).astype(np.uint8)
    cv2.rectangle(img, (40, 50), (200, 170), (40, 40, 210), -1)
    cv2.circle(img, (470, 130), 70, (210, 80, 40), -1)
    for cx, cy, bw, bh, angle, color in (
        (180, 360, 190, 60, 30, (40, 190, 60)),
        (460, 360, 150, 80, -20, (30, 200, 220)),
    ):
        corners = cv2.boxPoints(((cx, cy), (bw, bh), angle)).astype(np.int32)
        cv2.fillPoly(img, [corners], color)
    return img


class WebDemo:
    """A detector behind the page: ``predict(upload, texts, score_thr, max_dets)``.

    Args:
        model (nn.Module): from :func:`ai4rs.apis.init_detector`.
        texts (list[str], optional): the default vocabulary of an open-vocabulary model
            (else the model's baked-in vocabulary, else its dataset's classes).
        max_upload_mb (float): the upload limit.

    Attributes:
        open_vocabulary (bool): whether the texts box is used (YOLO-World families).
        default_texts (list[str]): the vocabulary, or the fixed classes of a closed-set model.
    """

    def __init__(self, model, texts=None, max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB):
        if max_upload_mb <= 0:
            raise ValueError(f'max_upload_mb must be positive, got {max_upload_mb}')
        self.model = model
        self.max_bytes = int(max_upload_mb * 1e6)
        self.max_upload_mb = max_upload_mb
        self.open_vocabulary = is_open_vocabulary(model)
        classes = list((getattr(model, 'dataset_meta', None) or {}).get('classes') or [])
        if self.open_vocabulary:
            default = texts or list(getattr(model, 'vocabulary', None) or []) or classes
            if not default:
                raise ValueError(
                    'the model has no vocabulary and its config no classes: give --texts'
                )
            self.default_texts = [str(t) for t in default]
        else:
            if texts:
                raise ValueError(
                    f'--texts is for open-vocabulary (YOLO-World) models; '
                    f'{type(model).__name__} has a fixed set of classes'
                )
            self.default_texts = classes
        self._lock = threading.Lock()  # one model, one visualizer: one request at a time
        # the box type the table shows before the first request: from one run on a tiny image
        probe = inference_detector(
            model, example_image(64, 64), texts=self.default_texts if self.open_vocabulary else None
        )
        self.rotated = is_rotated(probe.pred_instances)

    def run(self, img_bgr: np.ndarray, texts_text: str, score_thr: float, max_dets: int):
        """Detect on a decoded image.

        Returns:
            tuple: (drawing RGB (H, W, 3) uint8, rows of :func:`detection_rows`, headers).
        """
        texts = parse_texts(texts_text) if self.open_vocabulary else None
        with self._lock:
            sample = inference_detector(self.model, img_bgr, texts=texts)
            kept = kept_instances(sample, float(score_thr), int(max_dets))
            names = texts if texts is not None else self.default_texts
            drawing = draw_detections(img_bgr, kept, names, self.model.dataset_meta)
        return drawing, detection_rows(kept, names), table_headers(is_rotated(kept))

    def predict(self, upload, texts_text, score_thr, max_dets):
        """The page's handler: ``upload`` the file's bytes (None: nothing uploaded).

        Returns:
            tuple: (drawing or None, table value dict(headers, data), message).
            A refused upload or bad texts give no drawing, an empty table and the reason.
        """
        empty = dict(headers=table_headers(self.rotated), data=[])
        if upload is None:
            return None, empty, 'Upload an image first (or run the example).'
        try:
            img = decode_image(upload, self.max_bytes)
            drawing, rows, headers = self.run(img, texts_text, score_thr, max_dets)
        except ValueError as e:  # UploadError, empty texts
            return None, empty, f'Error: {e}'
        h, w = img.shape[:2]
        return drawing, dict(headers=headers, data=rows), f'{len(rows)} detections on {w}x{h}.'

    def predict_example(self, texts_text, score_thr, max_dets):
        """:meth:`predict` on the generated :func:`example_image` (not an upload: no limit)."""
        img = example_image()
        try:
            drawing, rows, headers = self.run(img, texts_text, score_thr, max_dets)
        except ValueError as e:  # empty texts
            return None, dict(headers=table_headers(self.rotated), data=[]), f'Error: {e}'
        h, w = img.shape[:2]
        return drawing, dict(headers=headers, data=rows), f'{len(rows)} detections on {w}x{h}.'


def import_gradio():
    """gradio, imported now (it takes seconds); a clear ImportError when it is not installed.

    Sets ``GRADIO_ANALYTICS_ENABLED=False`` (unless set): the demo sends nothing out.
    """
    os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')
    try:
        import gradio
    except ImportError as e:
        raise ImportError(f'{GRADIO_MISSING} ({e})') from None
    return gradio


def build_demo(demo: WebDemo, title: str = 'ai4rs detection demo'):
    """The gradio page (``gr.Blocks``) around ``demo``.

    Controls: the image upload (bytes, see :func:`decode_image`), the texts box
    (comma-separated; read-only, showing the classes, for a closed-set model), score
    threshold, max detections, Detect and Example buttons. Outputs: the drawing, the table
    of detections and a message line.
    """
    gr = import_gradio()
    with gr.Blocks(title=title, analytics_enabled=False) as blocks:
        gr.Markdown(f'# {title}')
        with gr.Row():
            with gr.Column():
                upload = gr.File(
                    label=f'Image (PNG, JPEG, BMP, TIFF, WebP; at most {demo.max_upload_mb:g} MB)',
                    type='binary',
                    file_types=['image'],
                    elem_id='upload',
                )
                if demo.open_vocabulary:
                    texts = gr.Textbox(
                        value=', '.join(demo.default_texts),
                        label='Texts (comma-separated prompts)',
                        elem_id='texts',
                    )
                else:
                    texts = gr.Textbox(
                        value=', '.join(demo.default_texts),
                        label='Classes (fixed by the model)',
                        interactive=False,
                        elem_id='texts',
                    )
                score_thr = gr.Slider(
                    0.0, 1.0, value=0.3, step=0.01, label='Score threshold', elem_id='score_thr'
                )
                max_dets = gr.Slider(
                    1,
                    MAX_DETECTIONS_LIMIT,
                    value=100,
                    step=1,
                    label='Max detections',
                    elem_id='max_dets',
                )
                with gr.Row():
                    submit = gr.Button('Detect', variant='primary', elem_id='detect')
                    example = gr.Button('Example image', elem_id='example')
            with gr.Column():
                drawing = gr.Image(label='Detections', type='numpy', interactive=False)
                message = gr.Textbox(label='Message', interactive=False, elem_id='message')
        table = gr.Dataframe(
            headers=table_headers(demo.rotated),
            label='Detections',
            interactive=False,
            elem_id='table',
        )
        inputs = [upload, texts, score_thr, max_dets]
        outputs = [drawing, table, message]
        submit.click(demo.predict, inputs=inputs, outputs=outputs)
        example.click(demo.predict_example, inputs=[texts, score_thr, max_dets], outputs=outputs)
    return blocks


def launch_demo(
    blocks,
    host: str = '127.0.0.1',
    port: int = 7860,
    share: bool = False,
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
    block: bool = True,
):
    """Serve ``blocks`` on ``host:port`` (127.0.0.1: this machine only), uploads limited to
    ``max_upload_mb`` by gradio too (a larger one is refused before it is stored); a public
    gradio.live link only with ``share``. ``block=False`` returns once the server runs
    (``blocks.close()`` stops it)."""
    blocks.queue(default_concurrency_limit=1)
    _, local_url, share_url = blocks.launch(
        server_name=host,
        server_port=port,
        share=share,
        max_file_size=int(max_upload_mb * 1e6),
        prevent_thread_lock=True,
        show_error=False,
        quiet=True,  # gradio's hints name launch() arguments; ours name the options
        footer_links=[],
    )
    print(f'web demo on {local_url}' + (f' and {share_url}' if share_url else ''), flush=True)
    if block:
        print('Ctrl+C stops it', flush=True)
        blocks.block_thread()
    return blocks
