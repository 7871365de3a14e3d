"""mmengine's Runner, readable: a short summary on the terminal, the long dumps in the log file."""

import copy
import logging
import os.path as osp
import sys
from collections.abc import Callable
from typing import Any

from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import RUNNERS
from mmengine.runner import Runner as MMEngineRunner

from ai4rs.models.utils.memory_format import to_channels_last
from ai4rs.utils.checkpoint import CheckpointMismatchError, NotACheckpointError
from ai4rs.utils.dist import prepare_distributed, teardown_distributed

#: records starting with these go to the log file only (environment, config, hook order)
FILE_ONLY_PREFIXES = (
    '\n' + '-' * 60 + '\nSystem environment:',
    'Config:\n',
    'Hooks will be executed in the following order',
)


class FileOnlyFilter(logging.Filter):
    """Keeps the long environment / config / hook dumps off a terminal handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(FILE_ONLY_PREFIXES)


class FormatOnceConfig(Config):
    """A ``Config`` whose ``pretty_text`` is formatted once per content.

    mmengine formats the whole config with yapf for the log file, the work-dir dump, the
    visualizer's copy and every checkpoint's ``meta`` (about 0.4–0.8 s each for the
    shipped configs, seconds for big ones). The text is cached with the config's content
    (``repr`` of its dict) as the key, so a changed config is formatted again.
    """

    @property
    def pretty_text(self) -> str:
        key = repr(self._cfg_dict.to_dict())
        cached = self.__dict__.get('_ai4rs_pretty_text')
        if cached is None or cached[0] != key:
            cached = (key, super().pretty_text)
            object.__setattr__(self, '_ai4rs_pretty_text', cached)
        return cached[1]


def format_once(cfg: Config) -> FormatOnceConfig:
    """A :class:`FormatOnceConfig` copy of ``cfg`` (same content, file name and text)."""
    if isinstance(cfg, FormatOnceConfig):
        return cfg
    out = copy.deepcopy(cfg)
    object.__setattr__(out, '__class__', FormatOnceConfig)
    return out


#: placeholders an evaluator's ``outfile_prefix`` may hold, filled in by :class:`Runner`
RUN_PATH_FIELDS = ('work_dir', 'timestamp')


def resolve_run_paths(evaluator_cfg, work_dir: str, timestamp: str):
    """``evaluator_cfg`` with ``{work_dir}`` / ``{timestamp}`` filled in its ``outfile_prefix``.

    A config saved in a work dir is reused by later runs (``tools/test.py
    WORK_DIR/CONFIG.py CKPT``): an ``outfile_prefix`` like ``'{work_dir}/{timestamp}/Task1'``
    then names the new run's folder, where an absolute path would name the first run's
    (and be refused, since it exists). Strings without these fields are left as they are.

    Args:
        evaluator_cfg (dict | list | Any): an evaluator config (a metric dict, a list of
            them, or ``dict(type='Evaluator', metrics=...)``); anything else is returned
            unchanged (a built evaluator, None).
        work_dir (str): the run's work dir.
        timestamp (str): the run's timestamp (its log folder under the work dir).

    Raises:
        KeyError: the prefix holds another ``{field}``.
    """
    if isinstance(evaluator_cfg, (list, tuple)):
        return type(evaluator_cfg)(resolve_run_paths(c, work_dir, timestamp) for c in evaluator_cfg)
    if not isinstance(evaluator_cfg, dict):
        return evaluator_cfg
    out = copy.copy(evaluator_cfg)
    prefix = out.get('outfile_prefix')
    if isinstance(prefix, str) and '{' in prefix:
        try:
            out['outfile_prefix'] = prefix.format(work_dir=work_dir, timestamp=timestamp)
        except (KeyError, IndexError) as e:
            raise KeyError(
                f'outfile_prefix {prefix!r}: unknown field {e}; it may hold '
                + ', '.join('{' + f + '}' for f in RUN_PATH_FIELDS)
            ) from None
    if 'metrics' in out:
        out['metrics'] = resolve_run_paths(out['metrics'], work_dir, timestamp)
    return out


class Runner(MMEngineRunner):
    """mmengine's ``Runner``; on the terminal, one summary line replaces the dumps.

    The environment, the resolved config and the hook order (hundreds of lines
    before the first useful one) still go to ``WORK_DIR/TIMESTAMP/TIMESTAMP.log``;
    the terminal gets one line: config, work dir, seed, launcher, world size
    and where the log file is. The config is formatted once, not at every dump
    (:class:`FormatOnceConfig`). An evaluator's ``outfile_prefix`` may name this run's
    folders with ``{work_dir}`` and ``{timestamp}`` (:func:`resolve_run_paths`); the dumped
    config keeps the placeholders, so it can be reused.
    """

    def __init__(self, *args, cfg=None, **kwargs):
        if isinstance(cfg, Config):
            cfg = format_once(cfg)
        super().__init__(*args, cfg=cfg, **kwargs)
        self._val_evaluator = resolve_run_paths(self._val_evaluator, self.work_dir, self.timestamp)
        self._test_evaluator = resolve_run_paths(
            self._test_evaluator, self.work_dir, self.timestamp
        )

    def build_model(self, model):
        """mmengine's ``build_model``; with ``channels_last = True`` at the config's top level
        the model is converted to the channels-last memory format
        (:func:`ai4rs.models.utils.to_channels_last`) here, before it is wrapped for
        distributed training and before the optimizer and the EMA copy are built from it."""
        model = super().build_model(model)
        if self.cfg.get('channels_last', False):
            to_channels_last(model)
        return model

    def build_logger(self, *args, **kwargs):
        logger = super().build_logger(*args, **kwargs)
        for handler in logger.handlers:
            if isinstance(handler, logging.FileHandler):
                continue
            if not any(isinstance(f, FileOnlyFilter) for f in handler.filters):
                handler.addFilter(FileOnlyFilter())
        return logger

    def _log_env(self, env_cfg: dict) -> None:
        super()._log_env(env_cfg)
        log_file = next(
            (h.baseFilename for h in self.logger.handlers if isinstance(h, logging.FileHandler)),
            None,
        )
        config = osp.basename(self.cfg.filename) if self.cfg.filename else 'config'
        where = f'; environment, config and hooks in {log_file}' if log_file else ''
        self.logger.info(
            f'{config}: work dir {self.work_dir}; seed: {self._seed}, Distributed launcher: '
            f'{self._launcher}, Distributed training: {self._distributed}, GPU number: '
            f'{self._world_size}{where}'
        )


def build_runner(cfg) -> MMEngineRunner:
    """The Runner for ``cfg``: its ``runner_type`` when it names one, else :class:`Runner`."""
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


def run_with_runner(cfg: Config, launcher: str, run: Callable[[Any], Any]) -> Any:
    """Build the Runner for ``cfg`` on this machine's distributed setup and call ``run(runner)``.

    The Runner is ai4rs' (:class:`Runner`: a summary line on the
    terminal, the environment and config dumps in the log file) unless the
    config names a ``runner_type``.

    A checkpoint that does not fit the model, or a file that is no checkpoint at all,
    ends the process with status 1 and one message on stderr, not a traceback.
    """
    prepare_distributed(cfg, launcher)
    runner = build_runner(cfg)
    try:
        result = run(runner)
    except (CheckpointMismatchError, NotACheckpointError) as e:
        print(f'error: {e}', file=sys.stderr)
        sys.exit(1)
    teardown_distributed()
    return result


def replace_test_step(runner: MMEngineRunner, make_test_step: Callable[[Any], Callable]) -> None:
    """During the test epoch, ``runner.model.test_step`` is ``make_test_step(runner)``.

    It is made at ``before_test_epoch`` with the lowest priority (after the checkpoint is
    loaded and after an EMA hook has swapped its averaged weights in) and removed at
    ``after_test_epoch`` with the highest (before an EMA hook swaps back). The runner's model
    itself is never changed, so hooks that deep-copy, read or swap its parameters see it as
    built. ``tools/test.py`` tests an inference-mode copy this way, and an ``.onnx`` file
    (:func:`ai4rs.apis.deployment.backend.run_test_loop_with_onnx`)."""

    class _Install(Hook):
        def before_test_epoch(self, runner):
            runner.model.test_step = make_test_step(runner)

    class _Remove(Hook):
        def after_test_epoch(self, runner, metrics=None):
            runner.model.__dict__.pop('test_step', None)

    runner.register_hook(_Install(), priority='LOWEST')
    runner.register_hook(_Remove(), priority='HIGHEST')


def load_trained_weights(runner: MMEngineRunner) -> str:
    """Load the last checkpoint that ``runner.train()`` wrote back into its model; returns its path.

    Call it between ``runner.train()`` and a ``runner.val()`` / ``runner.test()`` on the same
    runner: those start with the ``before_run`` hooks, where mmengine's ``EMAHook`` rebuilds its
    averaged model from the model's current (raw) weights, so they would evaluate the raw weights
    instead of the averaged ones that the checkpoint holds (and that ``tools/test.py`` and the
    validation at the end of training evaluate). With the checkpoint loaded, both are the same.

    Raises:
        FileNotFoundError: when training wrote no checkpoint (no ``last_checkpoint`` file).
    """
    marker = osp.join(runner.work_dir, 'last_checkpoint')
    if not osp.isfile(marker):
        raise FileNotFoundError(f'no checkpoint was saved in {runner.work_dir} ({marker} missing)')
    with open(marker) as f:
        checkpoint = f.read().strip()
    runner.load_checkpoint(checkpoint, map_location='cpu')
    return checkpoint
