"""A progress bar with ETA on a terminal; nothing added to plain logs otherwise."""

import io
from types import SimpleNamespace

from ai4rs.engine.hooks import ProgressBarHook
from ai4rs.engine.hooks.progress_bar_hook import attached_to_terminal


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def _run_epoch(hook, monkeypatch, stream):
    monkeypatch.setattr('sys.stdout', stream)
    runner = SimpleNamespace(train_dataloader=list(range(4)), test_dataloader=list(range(2)))
    hook.before_train_epoch(runner)
    for i in range(4):
        hook.after_train_iter(runner, i)
    hook.after_train_epoch(runner)
    hook.before_test_epoch(runner)
    for i in range(2):
        hook.after_test_iter(runner, i)
    hook.after_test_epoch(runner)
    return stream.getvalue()


def test_bar_on_a_terminal_only(monkeypatch):
    assert not attached_to_terminal(io.StringIO()) and attached_to_terminal(_Terminal())
    assert _run_epoch(ProgressBarHook(), monkeypatch, io.StringIO()) == ''
    shown = _run_epoch(ProgressBarHook(), monkeypatch, _Terminal())
    assert '4/4' in shown and '2/2' in shown and 'ETA' in shown
    assert _run_epoch(ProgressBarHook(enabled=False), monkeypatch, _Terminal()) == ''
