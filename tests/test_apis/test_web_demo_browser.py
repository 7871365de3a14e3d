"""demo/gradio_demo.py in a real browser: headless Chromium driven by Playwright.

The demo server runs in this process (``main(..., block=False)``) on a free port of
127.0.0.1 with a tiny YOLO-World v2 (the tiny random CLIP) and a tiny rotated YOLOX. The
page's table must equal ``inference_detector`` on the same image (labels, scores, boxes
within rounding); a non-image and an oversized upload give a message in the page and the
server answers the next request. Skipped, with the reason, only where no Chromium
executable is found (``AI4RS_CHROMIUM`` names one; else ``chromium`` on PATH).
"""

import importlib.util
import os
import os.path as osp
import shutil
import time

import cv2
import numpy as np
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.conftest import REPO_ROOT, free_port

CHROMIUM_ARGS = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
]
VOCAB = ['cat', 'dog', 'person']
MAX_UPLOAD_MB = 0.05  # 50,000 bytes: the scene (about 23 kB) passes, the noise image does not
TIMEOUT_MS = 60_000  # a wait's limit: CI's 2 CPUs are shared with another test worker
ROUND_MS = 5_000  # one look at the upload box


def chromium_executable() -> tuple[str | None, str]:
    """(``AI4RS_CHROMIUM`` when set, else the first Chromium-like browser on PATH, or None;
    why none was found)."""
    path = os.environ.get('AI4RS_CHROMIUM')
    if path:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path, ''
        return None, f'AI4RS_CHROMIUM={path} is not an executable file'
    for name in ('chromium', 'chromium-browser', 'google-chrome'):
        found = shutil.which(name)
        if found:
            return found, ''
    return None, (
        'no Chromium executable on PATH: install chromium (apt-get install chromium) or set '
        'AI4RS_CHROMIUM to its path'
    )


@pytest.fixture(scope='module')
def browser_context():
    path, why = chromium_executable()
    if path is None:
        pytest.skip(why)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        context = b.new_context()
        context.set_default_timeout(TIMEOUT_MS)
        yield context
        b.close()


def _script():
    spec = importlib.util.spec_from_file_location(
        'gradio_demo', osp.join(REPO_ROOT, 'demo', 'gradio_demo.py')
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    from tests.yolo_world_infer_helpers import write_scene

    tmp = tmp_path_factory.mktemp('web_demo_browser')
    # gradio keeps uploads in GRADIO_TEMP_DIR: the test's own folder, not a shared one
    before = os.environ.get('GRADIO_TEMP_DIR')
    os.environ['GRADIO_TEMP_DIR'] = str(tmp / 'gradio')
    yield from _files(tmp, write_scene)
    if before is None:
        os.environ.pop('GRADIO_TEMP_DIR', None)
    else:
        os.environ['GRADIO_TEMP_DIR'] = before


def _files(tmp, write_scene):
    scene = write_scene(tmp / 'scene.png')
    fake = tmp / 'notes.png'  # an image's name, text inside
    fake.write_text('these are notes, not an image\n')
    noise = (np.random.default_rng(0).random((200, 200, 3)) * 255).astype(np.uint8)
    big = str(tmp / 'big.png')
    assert cv2.imwrite(big, noise)
    assert os.path.getsize(scene) < MAX_UPLOAD_MB * 1e6 < os.path.getsize(big)
    yield dict(tmp=tmp, scene=scene, fake=str(fake), big=big)


def _serve(config, ckpt, *extra):
    port = free_port()
    argv = [config, ckpt, '--port', str(port), '--max-upload-mb', str(MAX_UPLOAD_MB), *extra]
    return _script().main(argv, block=False), f'http://127.0.0.1:{port}/'


def _message(page) -> str:
    return page.locator('#message textarea').input_value()


def _upload_state(page) -> str:
    """The upload box's HTML, for a failure's message."""
    try:
        return page.locator('#upload').inner_html(timeout=1000)[:2000]
    except PlaywrightTimeoutError:
        return '(no #upload)'


def _clear_upload(page):
    """Clear the upload box until its empty file zone shows (a click on a page still
    re-rendering can be lost: click again)."""
    zone = page.locator('#upload input[type=file]')
    clear = page.locator('#upload button[aria-label="Clear"]')
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while not zone.count():
        if time.monotonic() > deadline:
            raise AssertionError(f'the upload box does not clear: {_upload_state(page)}')
        if clear.count():
            try:
                clear.first.click(timeout=ROUND_MS)
            except PlaywrightTimeoutError:
                pass
        try:
            zone.wait_for(state='attached', timeout=ROUND_MS)
        except PlaywrightTimeoutError:
            pass


def _upload(page, path):
    """Put ``path`` in the upload box and wait until the box shows its name.

    Each round looks at the box: its name shows: done; the empty file zone shows: give the
    file (again: a page still starting can drop one); another file shows: clear it; none of
    these (the page still rendering): wait."""
    name = page.locator('#upload').get_by_text(osp.basename(path))
    zone = page.locator('#upload input[type=file]')
    clear = page.locator('#upload button[aria-label="Clear"]')
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while True:
        try:
            if name.count():
                pass
            elif zone.count():
                zone.set_input_files(path, timeout=ROUND_MS)
            elif clear.count():
                clear.first.click(timeout=ROUND_MS)
                zone.wait_for(state='attached', timeout=ROUND_MS)
                continue
        except PlaywrightTimeoutError:  # the box changed meanwhile: look again
            pass
        try:
            name.wait_for(timeout=ROUND_MS)
            return
        except PlaywrightTimeoutError:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f'{path} does not show in the upload box: {_upload_state(page)}'
                ) from None


def _submit(page, upload=None):
    """Upload ``upload`` (a file path; None: keep the current one), press Detect and wait
    for the message to change; returns the message."""
    before = _message(page)
    if upload is not None:
        _upload(page, upload)
    page.click('#detect')
    page.wait_for_function(
        "(prev) => document.querySelector('#message textarea').value !== prev",
        arg=before,
        timeout=TIMEOUT_MS,
    )
    return _message(page)


def _set_number(page, elem_id, value):
    box = page.locator(f'#{elem_id} input[type=number]')
    box.fill(str(value))
    box.press('Enter')


def _table(page) -> tuple[list[str], list[list[str]]]:
    headers = page.locator('#table th[role=columnheader]').all_inner_texts()
    rows = []
    i = 0
    while page.locator(f'#table [role=gridcell][data-row="{i}"]').count():
        cells = page.locator(f'#table [role=gridcell][data-row="{i}"]')
        rows.append([cells.nth(j).inner_text().strip() for j in range(cells.count())])
        i += 1
    return [h.strip() for h in headers], rows


def _reference(model, img_path, score_thr, k, texts=None):
    """``inference_detector`` on the same image, kept and sorted here."""
    from ai4rs.apis import inference_detector

    pred = inference_detector(model, cv2.imread(img_path), texts=texts).pred_instances
    keep = (pred.scores >= score_thr).nonzero().flatten()
    keep = keep[pred.scores[keep].argsort(descending=True)][:k]
    return pred[keep]


def _assert_table_equals(rows, pred, names, box_dim):
    assert len(rows) == len(pred) > 0
    boxes = pred.bboxes.tensor
    for row, box, score, label in zip(rows, boxes, pred.scores, pred.labels):
        assert row[0] == names[int(label)]
        assert float(row[1]) == pytest.approx(float(score), abs=1e-4)
        values = [float(v) for v in row[2:]]
        assert len(values) == box_dim
        assert values[:4] == pytest.approx(box[:4].tolist(), abs=0.006)
        if box_dim == 5:
            assert values[4] == pytest.approx(float(box[4]), abs=1e-4)


def test_yolo_world_in_the_browser(browser_context, files, tiny_clip_dir):
    from ai4rs.apis import init_detector
    from tests.yolo_world_infer_helpers import save_model, world_config

    config, ckpt = save_model(
        world_config(tiny_clip_dir), str(files['tmp']), 'world', box_bin=1, logit_scale=2.0
    )
    blocks, url = _serve(config, ckpt, '--texts', 'car,ship')
    try:
        page = browser_context.new_page()
        page.goto(url)
        page.wait_for_selector('#detect', timeout=TIMEOUT_MS)
        assert page.locator('#texts textarea').input_value() == 'car, ship'
        page.locator('#texts textarea').fill(', '.join(VOCAB))
        _set_number(page, 'score_thr', 0.05)
        _set_number(page, 'max_dets', 5)
        message = _submit(page, files['scene'])
        headers, rows = _table(page)
        assert headers == ['label', 'score', 'x1', 'y1', 'x2', 'y2']
        assert message == f'{len(rows)} detections on 128x96.'
        model = init_detector(config, ckpt)
        expected = _reference(model, files['scene'], 0.05, 5, texts=VOCAB)
        assert len(expected) == 5
        _assert_table_equals(rows, expected, VOCAB, 4)
        assert page.locator('img').count() >= 1  # the drawing

        # no texts: a message, no detection
        page.locator('#texts textarea').fill(' , ')
        assert _submit(page).startswith('Error: texts: give at least one')
        page.locator('#texts textarea').fill(', '.join(VOCAB))
        # a file that is not an image: a message, the server keeps answering
        assert 'not an image' in _submit(page, files['fake'])
        assert _table(page)[1] == []
        # an oversized upload: gradio refuses it before storing it, in the page
        _clear_upload(page)
        page.locator('#upload input[type=file]').set_input_files(files['big'])
        page.get_by_text('exceed the maximum allowed size').wait_for(timeout=TIMEOUT_MS)
        assert _submit(page).startswith('Upload an image first')
        # and the next image is detected again
        assert _submit(page, files['scene']) == message
        _assert_table_equals(_table(page)[1], expected, VOCAB, 4)
        page.close()
    finally:
        blocks.close()


@pytest.fixture(scope='module')
def yolox_server(files):
    from tests.yolo_world_infer_helpers import save_model, yolox_config

    config, ckpt = save_model(yolox_config(), str(files['tmp']), 'yolox')
    blocks, url = _serve(config, ckpt)
    yield dict(config=config, ckpt=ckpt, url=url)
    blocks.close()


def test_rotated_yolox_in_the_browser(browser_context, files, yolox_server):
    from ai4rs.apis import init_detector

    config, ckpt = yolox_server['config'], yolox_server['ckpt']
    page = browser_context.new_page()
    page.goto(yolox_server['url'])
    page.wait_for_selector('#detect', timeout=TIMEOUT_MS)
    model = init_detector(config, ckpt)
    classes = list(model.dataset_meta['classes'])
    texts = page.locator('#texts textarea')
    assert texts.is_disabled() and texts.input_value() == ', '.join(classes)
    _set_number(page, 'score_thr', 0.2)
    _set_number(page, 'max_dets', 4)
    message = _submit(page, files['scene'])
    headers, rows = _table(page)
    assert headers == ['label', 'score', 'cx', 'cy', 'w', 'h', 'angle']
    assert message == '4 detections on 128x96.'
    _assert_table_equals(rows, _reference(model, files['scene'], 0.2, 4), classes, 5)
    # the example image, generated at start
    before = _message(page)
    page.click('#example')
    page.wait_for_function(
        "(prev) => document.querySelector('#message textarea').value !== prev",
        arg=before,
        timeout=TIMEOUT_MS,
    )
    assert _message(page) == '4 detections on 640x480.'
    shot = os.environ.get('AI4RS_WEB_DEMO_SCREENSHOT')
    if shot:  # docs/images/web_demo.png is taken this way
        page.set_viewport_size(dict(width=1000, height=700))
        page.screenshot(path=shot, full_page=True)
    page.close()


def test_a_path_named_by_a_client_is_not_read(files, yolox_server):
    """No browser needed: gradio's HTTP API called with a file path that was not uploaded
    (an image in the temp dir, a file in the working directory) is refused before the
    handler runs; an uploaded image is served."""
    import httpx

    url = yolox_server['url']

    def call(payload):
        r = httpx.post(f'{url}gradio_api/call/predict', json=dict(data=[payload, '', 0.2, 4]))
        r.raise_for_status()
        events = httpx.get(f'{url}gradio_api/call/predict/{r.json()["event_id"]}', timeout=60)
        return events.text

    for path in (files['scene'], osp.join(REPO_ROOT, 'README.md')):
        assert osp.isfile(path)
        out = call(dict(path=path, meta=dict(_type='gradio.FileData')))
        assert 'event: error' in out and 'detections on' not in out
    # the same image uploaded first is read (from gradio's own copy)
    with open(files['scene'], 'rb') as f:
        r = httpx.post(f'{url}gradio_api/upload', files=dict(files=('scene.png', f, 'image/png')))
    r.raise_for_status()
    out = call(dict(path=r.json()[0], meta=dict(_type='gradio.FileData')))
    assert 'event: complete' in out and '4 detections on 128x96.' in out
