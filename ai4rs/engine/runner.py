"""mmengine's Runner, readable: a short summary on the terminal, the long dumps in the log file."""
import logging
import os.path as osp

from mmengine.registry import RUNNERS
from mmengine.runner import Runner as MMEngineRunner

#: records starting with these go to the log file only (environment, config, hook order)
FILE_ONLY_PREFIXES = ('\n' + '-' * 60 + '\nSystem environment:', 'Config:\n',
                      'Hooks will be executed in the following order')


class FileOnlyFilter(logging.Filter):
    """Keeps the long environment / config / hook dumps off a terminal handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(FILE_ONLY_PREFIXES)


class Runner(MMEngineRunner):
    """mmengine's ``Runner``; on the terminal, one summary line replaces the dumps.

    The environment, the resolved config and the hook order (hundreds of lines
    before the first useful one) still go to ``WORK_DIR/TIMESTAMP/TIMESTAMP.log``;
    the terminal gets one line: config, work dir, seed, launcher, world size
    and where the log file is.
    """

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
        log_file = next((h.baseFilename for h in self.logger.handlers
                         if isinstance(h, logging.FileHandler)), None)
        config = osp.basename(self.cfg.filename) if self.cfg.filename else 'config'
        where = f'; environment, config and hooks in {log_file}' if log_file else ''
        self.logger.info(
            f'{config}: work dir {self.work_dir}; seed: {self._seed}, Distributed launcher: '
            f'{self._launcher}, Distributed training: {self._distributed}, GPU number: '
            f'{self._world_size}{where}')


def build_runner(cfg) -> MMEngineRunner:
    """The Runner for ``cfg``: its ``runner_type`` when it names one, else :class:`Runner`."""
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)
