"""ai4rs' Runner formats its config once (mmengine formats it for the log, the work-dir dump, the
visualizer and every checkpoint), and the cached text is the text mmengine would write."""

import mmengine.config.config as mmengine_config
import torch
from mmengine.config import Config

from ai4rs.engine.runner import FormatOnceConfig, Runner, format_once


def _count_formatting(monkeypatch):
    calls = []
    real = mmengine_config.FormatCode

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(mmengine_config, 'FormatCode', counting)
    return calls


def test_cached_text_equals_mmengine_text_and_follows_changes(monkeypatch):
    cfg = Config(dict(model=dict(type='X', depth=3), optim=dict(lr=0.1, betas=(0.9, 0.99))))
    plain = cfg.pretty_text
    calls = _count_formatting(monkeypatch)
    once = format_once(cfg)
    assert isinstance(once, FormatOnceConfig) and once is not cfg
    assert once.pretty_text == plain and once.pretty_text == plain
    assert len(calls) == 1
    once.model.depth = 5  # a changed config is formatted again
    assert 'depth=5' in once.pretty_text and len(calls) == 2
    assert 'depth=3' in cfg.pretty_text  # the original is untouched


class _Toy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(2))

    def forward(self, inputs=None, data_samples=None, mode='tensor'):
        return dict(loss=(self.w**2).sum()) if mode == 'loss' else [self.w]

    def train_step(self, data, optim_wrapper):
        loss = (self.w**2).sum()
        optim_wrapper.update_params(loss)
        return dict(loss=loss)


def test_runner_formats_its_config_once(tmp_path, monkeypatch):
    from mmengine.registry import MODELS

    MODELS.register_module('ToyForFormatting', module=_Toy, force=True)
    (tmp_path / 'toy_cfg.py').write_text(
        f"work_dir = {str(tmp_path / 'work')!r}\nmodel = dict(type='ToyForFormatting')\n"
        "default_scope = 'ai4rs'\nenv_cfg = dict(dist_cfg=dict(backend='gloo'))\n"
    )
    cfg = Config.fromfile(str(tmp_path / 'toy_cfg.py'))
    expected = cfg.pretty_text
    calls = _count_formatting(monkeypatch)
    runner = Runner.from_cfg(cfg)  # mmengine formats for the log file and the work-dir dump
    assert runner.cfg.pretty_text == expected  # as a checkpoint's meta['cfg'] does
    assert len(calls) == 1
    assert (tmp_path / 'work' / 'toy_cfg.py').read_text() == expected
