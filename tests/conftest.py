import atexit
import importlib.util
import os
import os.path as osp
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile

import pytest

# Imported here, in pytest's controller process, before any xdist worker starts: the first
# import on a fresh machine writes yapf's grammar cache (through mmengine), which two workers
# importing at once could otherwise race on (see ai4rs/_yapf_cache.py).
import ai4rs  # noqa: F401

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DATA_DIR = osp.join(REPO_ROOT, 'tests', 'data')


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


_PYTHON_DIR = []


def python_on_path_dir() -> str:
    """A folder whose ``python`` runs the interpreter running the tests (``sys.executable``).

    The launcher scripts (tools/dist_train.sh, ...) call ``python``; ``run_cmd`` puts this
    folder first on PATH so that they use this interpreter, also when the tests are run from
    a virtual environment that is not activated (``.venv/bin/python -m pytest``).
    """
    if not _PYTHON_DIR:
        folder = tempfile.mkdtemp(prefix='ai4rs_tests_python_')
        atexit.register(shutil.rmtree, folder, True)
        path = osp.join(folder, 'python')
        with open(path, 'w') as f:
            f.write(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
        os.chmod(path, 0o755)
        _PYTHON_DIR.append(folder)
    return _PYTHON_DIR[0]


def run_cmd(args, cwd, env=None, timeout=600, check=True):
    """Run a command (list) in ``cwd``; on failure show its output in the assertion.

    ``python`` in the command's PATH is the interpreter running the tests
    (:func:`python_on_path_dir`), for the launcher scripts."""
    full_env = dict(os.environ)
    full_env.pop('PYTHONPATH', None)  # the tools must find projects.* by themselves
    full_env.setdefault('OMP_NUM_THREADS', '1')
    full_env.setdefault('MKL_NUM_THREADS', '1')
    if env:
        full_env.update(env)
    full_env['PATH'] = python_on_path_dir() + os.pathsep + full_env.get('PATH', '')
    proc = subprocess.run(
        args, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f'command {args} failed with {proc.returncode}\n'
            f'--- stdout ---\n{proc.stdout[-6000:]}\n'
            f'--- stderr ---\n{proc.stderr[-6000:]}'
        )
    return proc


@pytest.fixture
def toy_project(tmp_path):
    """A user's working directory: projects/toy_cls, toy_data/ and toy_config.py."""
    src = osp.join(DATA_DIR, 'toy_project')
    shutil.copytree(osp.join(src, 'projects'), tmp_path / 'projects')
    runtime = osp.join(REPO_ROOT, 'configs', '_base_', 'default_runtime.py')
    text = open(osp.join(src, 'toy_config.py')).read().replace("'RUNTIME'", repr(runtime))
    (tmp_path / 'toy_config.py').write_text(text)
    spec = importlib.util.spec_from_file_location(
        'make_toy_data', osp.join(src, 'make_toy_data.py')
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.write_dataset(str(tmp_path / 'toy_data'))
    return tmp_path


@pytest.fixture(scope='session')
def tiny_clip_dir(tmp_path_factory):
    """A tiny random CLIP text model + tokenizer in a temp dir (see
    ai4rs/testing/tiny_clip.py); skipped when transformers is missing."""
    pytest.importorskip('transformers')
    from ai4rs.testing.tiny_clip import make_tiny_clip

    return make_tiny_clip(tmp_path_factory.mktemp('tiny_clip'))


# ------------------------------------------------------------------ devices
# Tests that take a ``device`` argument run once per device: 'cpu' always, 'cuda' when
# torch sees a CUDA device (on a CPU-only machine the CUDA case is not generated, so CPU CI
# output stays as it was). AI4RS_TEST_DEVICES (comma-separated, e.g. ``cuda``) picks the
# devices instead; a picked device that is not available gives a skipped case that says so.
# tools/misc/gpu_check.py runs ``AI4RS_TEST_DEVICES=cuda pytest tests -k cuda``.
DEVICES_ENV = 'AI4RS_TEST_DEVICES'


def available_test_devices() -> list[str]:
    import torch

    return ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])


def device_params() -> list:
    """The ``device`` parametrization (see above)."""
    available = available_test_devices()
    requested = [d.strip() for d in os.environ.get(DEVICES_ENV, '').split(',') if d.strip()]
    if not requested:
        return available
    return [
        name
        if name in available
        else pytest.param(
            name,
            marks=pytest.mark.skip(
                reason=f'{DEVICES_ENV} asks for {name!r}, which is not '
                f'available here (available: {available})'
            ),
        )
        for name in requested
    ]


def pytest_generate_tests(metafunc):
    if 'device' not in metafunc.fixturenames:
        return
    # a test that parametrizes 'device' itself keeps its own values
    if any(
        'device' in str(m.args[0]).replace(' ', '').split(',')
        for m in metafunc.definition.iter_markers('parametrize')
        if m.args
    ):
        return
    metafunc.parametrize('device', device_params())


@pytest.fixture
def exact_cuda_math():
    """Full-precision float32 on CUDA for CPU-vs-CUDA comparisons: TF32 off for cuDNN
    convolutions (on by default) and matmuls, restored afterwards."""
    import torch

    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
