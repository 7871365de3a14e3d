"""Checkpoints load with weights_only=True; one that would run code is refused unexecuted."""

import io
import os
import os.path as osp
import zipfile

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner import load_checkpoint

from ai4rs.utils import CheckpointSecurityError, load_checkpoint_safely


class _Payload:
    """Pickles to a call of os.system: what a malicious checkpoint contains."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}',))


def _malicious_checkpoint(tmp_path):
    marker = tmp_path / 'payload_ran'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'w': torch.ones(2)}, 'meta': _Payload(marker)}, path)
    return path, marker


def test_malicious_checkpoint_is_refused_without_running_payload(tmp_path):
    path, marker = _malicious_checkpoint(tmp_path)
    with pytest.raises(CheckpointSecurityError) as err:
        load_checkpoint_safely(str(path))
    assert 'os.system' in str(err.value) or 'posix.system' in str(err.value)
    assert str(path) in str(err.value)
    assert not marker.exists()


def test_legacy_malicious_checkpoint_message_names_the_global(tmp_path):
    marker = tmp_path / 'payload_ran'
    path = tmp_path / 'evil_legacy.pth'
    torch.save(
        {'state_dict': {'w': torch.ones(2)}, 'meta': _Payload(marker)},
        path,
        _use_new_zipfile_serialization=False,
    )
    assert not zipfile.is_zipfile(path)
    with pytest.raises(CheckpointSecurityError) as err:
        load_checkpoint_safely(str(path))
    message = str(err.value)
    assert f'it refers to {os.system.__module__}.system, which is not an allowed type' in message
    assert 'Weights only load failed' not in message
    assert not marker.exists()


def test_malicious_checkpoint_refused_through_mmengine_loader(tmp_path):
    import ai4rs  # noqa: F401  (importing ai4rs routes mmengine's loader through the safe one)

    path, marker = _malicious_checkpoint(tmp_path)
    model = torch.nn.Linear(2, 1)
    with pytest.raises(CheckpointSecurityError):
        load_checkpoint(model, str(path))
    assert not marker.exists()


def test_getattr_is_restricted_to_history_buffer_statistics(tmp_path):
    # getattr on an allowed class could reach methods that write files
    for owner, name in ((np.ndarray, 'tofile'), (HistoryBuffer, 'update')):

        class Sneaky:
            def __reduce__(self, owner=owner, name=name):
                return (getattr, (owner, name))

        path = tmp_path / f'getattr_{name}.pth'
        torch.save({'x': Sneaky()}, path)
        with pytest.raises(CheckpointSecurityError):
            load_checkpoint_safely(str(path))


def _runner_like_checkpoint():
    hub = MessageHub.get_instance('ckpt_test')
    for v in (1.0, 0.5, 0.25):
        hub.update_scalar('train/loss', v)
    hub.update_info('iter', 3)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    opt.step()
    return {
        'meta': {
            'epoch': 2,
            'iter': 3,
            'seed': 0,
            'mmengine_version': '0.10.7',
            'dataset_meta': {'classes': ('a', 'b'), 'palette': [(1, 2, 3), (4, 5, 6)]},
            'cfg': "model = dict(type='X')",
            'time': '20250101_000000',
            'np_scalar': np.float32(0.5),
            'np_array': np.arange(4, dtype=np.int64),
        },
        'state_dict': model.state_dict(),
        'ema_state_dict': {f'module.{k}': v.clone() for k, v in model.state_dict().items()},
        'message_hub': hub.state_dict(),
        'optimizer': opt.state_dict(),
        'param_schedulers': [{'base_values': [0.1], 'last_step': 3, 'by_epoch': True}],
    }


def test_genuine_checkpoint_round_trips_exactly(tmp_path):
    ckpt = _runner_like_checkpoint()
    path = tmp_path / 'epoch_2.pth'
    torch.save(ckpt, path)
    loaded = load_checkpoint_safely(str(path))
    assert set(loaded) == set(ckpt)
    for key in ('state_dict', 'ema_state_dict'):
        assert list(loaded[key]) == list(ckpt[key])
        for k, v in ckpt[key].items():
            assert torch.equal(loaded[key][k], v)
    assert loaded['meta']['dataset_meta'] == ckpt['meta']['dataset_meta']
    assert loaded['meta']['np_scalar'] == np.float32(0.5)
    assert np.array_equal(loaded['meta']['np_array'], np.arange(4))
    buf = loaded['message_hub']['log_scalars']['train/loss']
    assert isinstance(buf, HistoryBuffer)
    assert buf.mean() == pytest.approx((1.0 + 0.5 + 0.25) / 3)
    assert buf.current() == 0.25
    assert loaded['message_hub']['runtime_info']['iter'] == 3
    for k, state in ckpt['optimizer']['state'].items():
        assert torch.equal(
            loaded['optimizer']['state'][k]['momentum_buffer'], state['momentum_buffer']
        )


def _rewrite_pickle(src, dst, old, new):
    """Copy a torch zip checkpoint, replacing bytes in its pickle (GLOBAL names are text)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, 'w', zipfile.ZIP_STORED) as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename.endswith('data.pkl'):
                assert old in data
                data = data.replace(old, new)
            zout.writestr(item, data)


def test_checkpoint_pickled_with_numpy1_names_loads(tmp_path):
    """Upstream checkpoints were written with numpy 1.x (module numpy.core)."""
    ckpt = _runner_like_checkpoint()
    src, dst = tmp_path / 'np2.pth', tmp_path / 'np1.pth'
    torch.save(ckpt, src)
    _rewrite_pickle(src, dst, b'numpy._core.multiarray', b'numpy.core.multiarray')
    loaded = load_checkpoint_safely(str(dst))
    assert np.array_equal(loaded['meta']['np_array'], np.arange(4))
    assert loaded['message_hub']['log_scalars']['train/loss'].current() == 0.25


def test_bare_state_dict_and_missing_file(tmp_path):
    sd = torch.nn.Linear(3, 2).state_dict()
    buf = io.BytesIO()
    torch.save(sd, buf)
    path = tmp_path / 'sd.pth'
    path.write_bytes(buf.getvalue())
    loaded = load_checkpoint_safely(str(path))
    assert all(torch.equal(loaded[k], v) for k, v in sd.items())
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        load_checkpoint_safely(osp.join(str(tmp_path), 'missing.pth'))


def test_a_file_that_is_no_checkpoint_is_named_as_such(tmp_path):
    import cv2

    from ai4rs.utils import NotACheckpointError

    jpeg = tmp_path / 'photo.jpg'
    cv2.imwrite(str(jpeg), np.full((8, 8, 3), 90, np.uint8))
    with pytest.raises(NotACheckpointError) as err:
        load_checkpoint_safely(str(jpeg))
    message = str(err.value)
    assert f'{jpeg} is not a PyTorch checkpoint: it is a JPEG image' in message
    assert 'execute' not in message and 'Unsupported' not in message
    text = tmp_path / 'notes.pth'
    text.write_text('epoch 12 was the best\n')
    with pytest.raises(NotACheckpointError, match='a text file'):
        load_checkpoint(torch.nn.Linear(2, 2), str(text))  # mmengine's loader, routed here
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    with pytest.raises(NotACheckpointError, match='it is empty'):
        load_checkpoint_safely(str(empty))
    # both formats torch.save writes still load
    for legacy in (False, True):
        path = tmp_path / f'ok_{legacy}.pth'
        torch.save({'w': torch.ones(2)}, path, _use_new_zipfile_serialization=not legacy)
        assert torch.equal(load_checkpoint_safely(str(path))['w'], torch.ones(2))
