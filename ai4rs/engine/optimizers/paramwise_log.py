"""One summary line for ``paramwise_cfg`` instead of one INFO line per parameter.

mmengine's ``DefaultOptimWrapperConstructor`` logs ``paramwise_options -- {name}:{key}={value}``
at INFO for every option of every trainable parameter: 160 lines for rotated YOLOX-s before the
first epoch. ai4rs logs those lines at DEBUG (``log_level='DEBUG'`` shows them) and one INFO
summary per optimizer, e.g.::

    paramwise_cfg: options set for 160 parameters: weight_decay=0.0 (160)
    (one line per parameter at log level DEBUG)
"""

import logging
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from mmengine.logging import MMLogger, print_log

PARAMWISE_PREFIX = 'paramwise_options -- '


def paramwise_summary(lines: list[str]) -> str | None:
    """The summary of per-parameter option lines.

    Args:
        lines (list[str]): ``'{name}:{key}={value}'`` (the text after
            :data:`PARAMWISE_PREFIX`), one per option of a parameter.

    Returns:
        str | None: ``'paramwise_cfg: options set for N parameters: k=v (count), ...'``
        (the options in the order first met); None when ``lines`` is empty.
    """
    if not lines:
        return None
    names, options = set(), Counter()
    for line in lines:
        name, _, option = line.rpartition(':')
        names.add(name)
        options[option] += 1
    listed = ', '.join(f'{option} ({count})' for option, count in options.items())
    return (
        f'paramwise_cfg: options set for {len(names)} parameters: {listed} '
        '(one line per parameter at log level DEBUG)'
    )


def log_paramwise_lines(lines: list[str]) -> None:
    """Log each line at DEBUG, then the :func:`paramwise_summary` at INFO."""
    for line in lines:
        print_log(PARAMWISE_PREFIX + line, logger='current', level=logging.DEBUG)
    summary = paramwise_summary(lines)
    if summary is not None:
        print_log(summary, logger='current')


class _ParamwiseLineCatcher(logging.Filter):
    """Drops the INFO ``paramwise_options -- ...`` records of a logger and keeps their text."""

    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if record.levelno == logging.INFO and msg.startswith(PARAMWISE_PREFIX):
            self.lines.append(msg[len(PARAMWISE_PREFIX) :])
            return False
        return True


@contextmanager
def paramwise_lines_summarized() -> Iterator[None]:
    """Within the block, the current MMLogger's per-parameter INFO lines are held back;
    on leaving it they are logged at DEBUG with one INFO summary (:func:`log_paramwise_lines`)."""
    logger = MMLogger.get_current_instance()
    catcher = _ParamwiseLineCatcher()
    logger.addFilter(catcher)
    try:
        yield
    finally:
        logger.removeFilter(catcher)
    log_paramwise_lines(catcher.lines)
