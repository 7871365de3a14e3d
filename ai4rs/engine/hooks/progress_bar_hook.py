"""A progress bar with ETA for training epochs, validation and testing, on a terminal only."""

import sys

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.utils import ProgressBar

from ai4rs.registry import HOOKS


def attached_to_terminal(stream=None) -> bool:
    """Whether ``stream`` (default: stdout) is an interactive terminal."""
    stream = sys.stdout if stream is None else stream
    return bool(getattr(stream, 'isatty', lambda: False)())


@HOOKS.register_module()
class ProgressBarHook(Hook):
    """mmengine's ``ProgressBar`` (done / total, speed, elapsed, ETA) over each epoch's iterations.

    Shown on the main process when stdout is a terminal; otherwise (log files,
    CI) nothing is added to LoggerHook's plain log lines.

    Args:
        enabled (bool, optional): force it on or off; ``None`` (default):
            on when stdout is a terminal.
    """

    priority = 'LOW'

    def __init__(self, enabled: bool | None = None):
        self.enabled = enabled
        self._bar = None

    def _on(self) -> bool:
        enabled = attached_to_terminal() if self.enabled is None else self.enabled
        return enabled and is_main_process()

    def _start(self, loader) -> None:
        on = self._on() and loader is not None
        self._bar = ProgressBar(len(loader), file=sys.stdout) if on else None

    def _step(self) -> None:
        if self._bar is not None:
            self._bar.update()

    def _end(self) -> None:
        if self._bar is not None:
            self._bar.file.write('\n')
            self._bar.file.flush()
        self._bar = None

    def before_train_epoch(self, runner) -> None:
        self._start(runner.train_dataloader)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._step()

    def after_train_epoch(self, runner) -> None:
        self._end()

    def before_val_epoch(self, runner) -> None:
        self._start(runner.val_dataloader)

    def after_val_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._step()

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._end()

    def before_test_epoch(self, runner) -> None:
        self._start(runner.test_dataloader)

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._step()

    def after_test_epoch(self, runner, metrics=None) -> None:
        self._end()
