"""After ``runner.train()``, ``load_trained_weights`` puts the checkpoint's (EMA) weights back into
the model; without it mmengine's EMAHook rebuilds its average from the raw weights when
``runner.val()`` / ``runner.test()`` start, and those evaluate the raw weights."""

import pytest
import torch
from torch.utils.data import DataLoader

from ai4rs.engine.runner import Runner, load_trained_weights


class _Toy(torch.nn.Module):
    """One weight vector pulled towards a target: every step changes it."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(3))

    def train_step(self, data, optim_wrapper):
        loss = ((self.w - torch.tensor([1.0, 2.0, 3.0])) ** 2).sum()
        optim_wrapper.update_params(loss)
        return dict(loss=loss)


def _runner(work_dir, hooks):
    return Runner(
        model=_Toy(),
        work_dir=str(work_dir),
        train_dataloader=DataLoader(list(range(4)), batch_size=1),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.2)),
        train_cfg=dict(by_epoch=True, max_epochs=2),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1)),
        custom_hooks=hooks,
        default_scope='ai4rs',
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
    )


def test_loads_the_averaged_weights_of_the_last_checkpoint(tmp_path):
    runner = _runner(tmp_path / 'work', [dict(type='EMAHook', momentum=0.5)])
    runner.train()
    raw = runner.model.w.detach().clone()
    hook = next(h for h in runner.hooks if type(h).__name__ == 'EMAHook')
    ema = hook.ema_model.module.w.detach().clone()
    assert not torch.allclose(raw, ema)  # the average lags behind the raw weights

    path = load_trained_weights(runner)
    assert path.endswith('epoch_2.pth')
    saved = torch.load(path, map_location='cpu', weights_only=False)['state_dict']['w']
    torch.testing.assert_close(saved, ema)  # the checkpoint holds the average
    torch.testing.assert_close(runner.model.w.detach(), ema)


def test_no_checkpoint_is_a_clear_error(tmp_path):
    runner = _runner(tmp_path / 'work', [])
    with pytest.raises(FileNotFoundError, match='no checkpoint was saved'):
        load_trained_weights(runner)
