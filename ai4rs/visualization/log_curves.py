"""Training curves and training-time statistics from mmengine's ``vis_data/scalars.json``.

mmengine's ``LocalVisBackend`` writes one JSON object per line into
``WORK_DIR/YYYYmmdd_HHMMSS/vis_data/scalars.json``:

* a **training** line after every ``LoggerHook`` interval: the smoothed scalars (``loss``,
  ``loss_cls``, ``lr``, ``time``, ``data_time``...) with ``iter`` and ``step`` (the iteration,
  1-based) and, in epoch-based runs, ``epoch``;
* a **validation** line after every validation: the metrics (``coco/bbox_mAP``, ``dota/mAP``...)
  with ``step`` (the epoch in epoch-based runs; with ``LoggerHook(log_metric_by_epoch=False)``
  the iteration), plus the validation loop's own ``time`` / ``data_time``.

:func:`load_run_log` parses such a file into :class:`Series` (x values and y values) per key;
:func:`plot_curves` draws the series of several runs, one subplot per key;
:func:`train_time_stats` gives mmdet's ``cal_train_time`` figures. The analysis tool
``tools/analysis_tools/analyze_logs.py`` is a thin command line over these.
"""

import json
import os
import os.path as osp
import re
from dataclasses import dataclass, field

import numpy as np

#: the keys of a training line that locate it, not scalars to plot
POSITION_KEYS = ('epoch', 'iter', 'step')
#: the run folders mmengine's Runner creates in a work dir
RUN_DIR_PATTERN = re.compile(r'^\d{8}_\d{6}$')
SCALARS_FILE = osp.join('vis_data', 'scalars.json')


class LogFormatError(ValueError):
    """A scalars file that is not mmengine's format: the message names the file and line."""


@dataclass
class Series:
    """One curve: ``ys[i]`` logged at ``xs[i]`` (iterations or epochs, per ``x_label``)."""

    xs: list
    ys: list
    x_label: str


@dataclass
class RunLog:
    """The parsed scalars of one run.

    Attributes:
        name: the run's name in legends and reports (the work dir's name by default).
        path: the scalars file.
        by_epoch: True when the training lines carry ``epoch`` (an epoch-based loop).
        train: training keys -> :class:`Series` against the iteration.
        val: validation keys -> :class:`Series` against the epoch (by_epoch) or iteration.
        iter_times: ``(epoch, time)`` of every training line that has ``time`` (epoch 1
            throughout for iteration-based runs).
    """

    name: str
    path: str
    by_epoch: bool
    train: dict = field(default_factory=dict)
    val: dict = field(default_factory=dict)
    iter_times: list = field(default_factory=list)

    @property
    def keys(self) -> list:
        """Every key that can be plotted; a key in both kinds of line is a training key."""
        return sorted(set(self.train) | set(self.val))

    def series(self, key: str) -> Series:
        """The curve of ``key``: training lines first, else validation lines.

        Raises:
            KeyError: the run never logged ``key``; the message lists the keys it has.
        """
        if key in self.train:
            return self.train[key]
        if key in self.val:
            return self.val[key]
        raise KeyError(
            f'{self.path} ({self.name}) has no key {key!r}; its keys are: '
            f'training {sorted(self.train)}, validation {sorted(self.val)}'
        )


def _run_dirs_with_scalars(work_dir: str) -> list:
    return sorted(
        d
        for d in os.listdir(work_dir)
        if RUN_DIR_PATTERN.match(d) and osp.isfile(osp.join(work_dir, d, SCALARS_FILE))
    )


def find_scalars_file(path: str) -> str:
    """The scalars file a command-line argument names.

    A file is used as given; a directory is a work dir, whose newest run folder
    (``YYYYmmdd_HHMMSS``, by name) holding ``vis_data/scalars.json`` is taken: the run folders
    of ``tools/test.py`` have no scalars file and are passed over. A run folder itself
    (``WORK_DIR/YYYYmmdd_HHMMSS``) is accepted too.

    Raises:
        FileNotFoundError: ``path`` does not exist, or the directory holds no scalars file.
    """
    if osp.isfile(path):
        return path
    if not osp.isdir(path):
        raise FileNotFoundError(f'{path}: no such file or work dir')
    if osp.isfile(osp.join(path, SCALARS_FILE)):
        return osp.join(path, SCALARS_FILE)
    runs = _run_dirs_with_scalars(path)
    if not runs:
        raise FileNotFoundError(
            f'{path}: no run folder with {SCALARS_FILE} '
            '(expected WORK_DIR/YYYYmmdd_HHMMSS/vis_data/scalars.json, written by '
            "a training with mmengine's LocalVisBackend)"
        )
    return osp.join(path, runs[-1], SCALARS_FILE)


def default_run_name(scalars_path: str) -> str:
    """The work dir's name for ``WORK_DIR/YYYYmmdd_HHMMSS/vis_data/scalars.json``, else the
    file's name without extension."""
    parts = osp.normpath(osp.abspath(scalars_path)).split(os.sep)
    if len(parts) >= 4 and parts[-2] == 'vis_data' and RUN_DIR_PATTERN.match(parts[-3]):
        return parts[-4]
    return osp.splitext(parts[-1])[0]


def read_scalars(path: str) -> list:
    """The records of a scalars file, one dict per line, in order.

    Raises:
        LogFormatError: an empty line, a line that is not JSON, a line that is not a JSON
            object, or a file without any line; the message names the file and line number.
    """
    records = []
    with open(path, encoding='utf-8') as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                raise LogFormatError(f'{path}:{lineno}: empty line')
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise LogFormatError(
                    f'{path}:{lineno}: not a JSON line ({e.msg}): {line.strip()[:80]!r}'
                ) from None
            if not isinstance(record, dict):
                raise LogFormatError(
                    f'{path}:{lineno}: expected a JSON object, got {line.strip()[:80]!r}'
                )
            records.append((lineno, record))
    if not records:
        raise LogFormatError(f'{path}: no records (an empty scalars file)')
    return records


def _number(path, lineno, key, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise LogFormatError(f'{path}:{lineno}: {key!r} is {value!r}, not a number')
    return float(value)


def parse_run_log(records: list, path: str, name: str) -> RunLog:
    """A :class:`RunLog` from the ``(lineno, record)`` pairs of :func:`read_scalars`.

    A record with ``iter`` is a training line, one without is a validation line. Training
    series are against ``iter``. Validation series are against ``step``, which mmengine's
    ``LoggerHook`` sets to the epoch (``log_metric_by_epoch=True``, its default) or to the
    iteration (``log_metric_by_epoch=False``):

    * epoch-based runs (training lines carry ``epoch``): against the epoch, unless a step
      exceeds every logged epoch (every epoch has a training line, so such steps are
      iterations: ``log_metric_by_epoch=False``), then against the iteration;
    * iteration-based runs: against the iteration; with ``log_metric_by_epoch=True`` their
      validation lines all have ``step`` 0, and the points are placed at the last training
      iteration logged before them.
    """
    train_lines = [(n, r) for n, r in records if 'iter' in r]
    by_epoch = bool(train_lines) and all('epoch' in r for _, r in train_lines)
    epochs = [_number(path, n, 'epoch', r['epoch']) for n, r in train_lines if by_epoch]
    val_steps = [
        _number(path, n, 'step', r['step']) for n, r in records if 'iter' not in r and 'step' in r
    ]
    val_by_epoch = by_epoch and all(step <= max(epochs) for step in val_steps)
    run = RunLog(name=name, path=path, by_epoch=by_epoch)
    last_iter = 0
    for lineno, record in records:
        if 'iter' in record:
            last_iter = int(_number(path, lineno, 'iter', record['iter']))
            for key, value in record.items():
                if key in POSITION_KEYS:
                    continue
                series = run.train.setdefault(key, Series([], [], 'iter'))
                series.xs.append(last_iter)
                series.ys.append(_number(path, lineno, key, value))
            if 'time' in record:
                epoch = int(record['epoch']) if by_epoch else 1
                run.iter_times.append((epoch, _number(path, lineno, 'time', record['time'])))
            continue
        if 'step' not in record:
            raise LogFormatError(
                f'{path}:{lineno}: a line with neither iter nor step: {sorted(record)}'
            )
        step = int(_number(path, lineno, 'step', record['step']))
        x = step if val_by_epoch or step > 0 else last_iter
        for key, value in record.items():
            if key == 'step':
                continue
            series = run.val.setdefault(key, Series([], [], 'epoch' if val_by_epoch else 'iter'))
            series.xs.append(x)
            series.ys.append(_number(path, lineno, key, value))
    return run


def load_run_log(path: str, name: str | None = None) -> RunLog:
    """Parse the scalars of a work dir or a scalars file (see :func:`find_scalars_file`);
    ``name`` defaults to :func:`default_run_name`."""
    scalars = find_scalars_file(path)
    return parse_run_log(read_scalars(scalars), scalars, name or default_run_name(scalars))


def _matplotlib_style(style: str) -> str:
    """A matplotlib style name: one of ``matplotlib.style.available``, or a seaborn style
    name as mmdet's ``--style`` takes (``dark``, ``whitegrid``...) mapped to matplotlib's copy."""
    import matplotlib.style

    available = matplotlib.style.available
    if style in available or style == 'default':
        return style
    if f'seaborn-v0_8-{style}' in available:
        return f'seaborn-v0_8-{style}'
    raise ValueError(
        f'unknown plot style {style!r}; available: default, {", ".join(sorted(available))}'
    )


def _x_label(runs: list, per_run: list) -> str:
    """``'iter'`` or ``'epoch'``; runs with different units on one axis: each unit with the runs
    that use it, e.g. ``'epoch: a, b; iter: c'``."""
    units = {}
    for run, series in zip(runs, per_run):
        units.setdefault(series.x_label, []).append(run.name)
    if len(units) == 1:
        return next(iter(units))
    return '; '.join(f'{unit}: {", ".join(names)}' for unit, names in units.items())


def plot_curves(
    runs: list, keys: list, title: str | None = None, style: str = 'dark', out: str | None = None
):
    """Draw ``keys`` of every run, one subplot per key (top to bottom), one line per run.

    Args:
        runs: :class:`RunLog` objects; their ``name`` is the legend.
        keys: the keys to plot; every run must have every key.
        title: the figure's title.
        style: a matplotlib style or a seaborn style name (mmdet's ``--style``).
        out: the image file to write (PNG for ``.png``), or None.

    Returns:
        matplotlib.figure.Figure: the figure (Agg canvas, no window); ``fig.axes[i]`` plots
        ``keys[i]``, its lines in the order of ``runs``.

    Raises:
        KeyError: a run lacks a key (the message lists the run's keys).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.style import context
    from matplotlib.ticker import MaxNLocator

    if not runs or not keys:
        raise ValueError('plot_curves needs at least one run and one key')
    curves = [[run.series(key) for run in runs] for key in keys]  # all KeyErrors before drawing
    with context(_matplotlib_style(style)):
        fig = Figure(figsize=(8, 3 * len(keys)), layout='constrained')
        FigureCanvasAgg(fig)
        for i, (key, per_run) in enumerate(zip(keys, curves)):
            ax = fig.add_subplot(len(keys), 1, i + 1)
            for run, series in zip(runs, per_run):
                marker = 'o' if key in run.val and key not in run.train else None
                ax.plot(series.xs, series.ys, label=run.name, marker=marker)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # iterations, epochs
            ax.set_xlabel(_x_label(runs, per_run))
            ax.set_ylabel(key)
            ax.legend()
        if title:
            fig.suptitle(title)
        if out:
            if osp.dirname(out):
                os.makedirs(osp.dirname(out), exist_ok=True)
            fig.savefig(out)
    return fig


@dataclass
class TrainTime:
    """mmdet's ``cal_train_time`` figures of one run (seconds per iteration).

    Attributes:
        epochs: the epochs, in order.
        epoch_means: the mean logged ``time`` of each epoch.
        slowest_epoch / fastest_epoch: the epochs with the largest / smallest mean.
        std_over_epochs: the (population) standard deviation of ``epoch_means``.
        average: the mean of every counted iteration time.
    """

    epochs: list
    epoch_means: list
    slowest_epoch: int
    fastest_epoch: int
    std_over_epochs: float
    average: float


def train_time_stats(run: RunLog, include_outliers: bool = False) -> TrainTime:
    """Average iteration time per epoch, slowest / fastest epoch and spread.

    The first logged line of each epoch (it includes the data loader's start and warm-up) is
    left out unless ``include_outliers``, as mmdet's ``cal_train_time`` does. Iteration-based
    runs count as one epoch.

    Raises:
        ValueError: no training line has ``time``, or an epoch has a single logged line and
            ``include_outliers`` is off.
    """
    if not run.iter_times:
        raise ValueError(f'{run.path}: no training line with a "time" value')
    per_epoch = {}
    for epoch, time in run.iter_times:
        per_epoch.setdefault(epoch, []).append(time)
    epochs = sorted(per_epoch)
    counted = {}
    for epoch in epochs:
        times = per_epoch[epoch] if include_outliers else per_epoch[epoch][1:]
        if not times:
            raise ValueError(
                f'{run.path}: epoch {epoch} has a single logged iteration, which is left out as '
                'an outlier; pass --include-outliers, or log more often (a smaller '
                'default_hooks.logger.interval)'
            )
        counted[epoch] = times
    means = [float(np.mean(counted[e])) for e in epochs]
    all_times = [t for e in epochs for t in counted[e]]
    return TrainTime(
        epochs=epochs,
        epoch_means=means,
        slowest_epoch=epochs[int(np.argmax(means))],
        fastest_epoch=epochs[int(np.argmin(means))],
        std_over_epochs=float(np.std(means)),
        average=float(np.mean(all_times)),
    )


def format_train_time(run: RunLog, stats: TrainTime) -> str:
    """The report of mmdet's ``cal_train_time`` for one run."""
    slow = stats.epoch_means[stats.epochs.index(stats.slowest_epoch)]
    fast = stats.epoch_means[stats.epochs.index(stats.fastest_epoch)]
    return '\n'.join(
        [
            f'-----Analyze train time of {run.path}-----',
            f'slowest epoch {stats.slowest_epoch}, average time is {slow:.4f} s/iter',
            f'fastest epoch {stats.fastest_epoch}, average time is {fast:.4f} s/iter',
            f'time std over epochs is {stats.std_over_epochs:.4f}',
            f'average iter time: {stats.average:.4f} s/iter',
        ]
    )


def check_eval_interval(runs: list, keys: list, interval: int) -> None:
    """mmdet's ``--eval-interval`` against the files: every validation point of ``keys`` must
    lie on a multiple of ``interval`` (mmdet places the points by this interval; here they
    come from the file's ``step``, and a disagreement means a wrong assumption about the run).

    Raises:
        ValueError: a point off the interval, naming the run, the key and its x values.
    """
    if interval < 1:
        raise ValueError(f'--eval-interval must be a positive integer, got {interval}')
    for run in runs:
        for key in keys:
            if key in run.train or key not in run.val:
                continue
            xs = run.val[key].xs
            off = [x for x in xs if x % interval]
            if off:
                raise ValueError(
                    f'{run.name}: {key} was validated at {run.val[key].x_label}s {xs}, '
                    f'not every {interval} ({off} are off the interval)'
                )
