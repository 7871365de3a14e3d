"""Training curves and training time from the scalars of work dirs (mmdet's analyze_logs.py).

    python tools/analysis_tools/analyze_logs.py plot_curve WORK_DIR_OR_JSON [...] \
        --keys loss dota/mAP [--legend NAME ...] [--title T] [--style dark] \
        [--eval-interval N] [--out curves.png]
    python tools/analysis_tools/analyze_logs.py cal_train_time WORK_DIR_OR_JSON [...] \
        [--include-outliers]

A work dir stands for its newest run folder's ``YYYYmmdd_HHMMSS/vis_data/scalars.json``; a
json file is read as given. plot_curve draws one subplot per key and one line per run (legend:
the work dir names, or ``--legend``), training keys against the iteration, validation metrics
against the epoch (iteration-based runs: the iteration). cal_train_time prints, per run, the
average iteration time of the slowest and fastest epoch, its spread over epochs and the average.
The logic is in ``ai4rs.visualization.log_curves``.
"""

import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import ai4rs  # noqa: E402,F401,I001  (first: sets the OpenMP wait policy before torch loads)

from ai4rs.utils.cli import parse_tool_args  # noqa: E402
from ai4rs.visualization.log_curves import (  # noqa: E402
    LogFormatError,
    check_eval_interval,
    format_train_time,
    load_run_log,
    plot_curves,
    train_time_stats,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Analyze the scalars logged by training')
    commands = parser.add_subparsers(dest='task', required=True)

    plot = commands.add_parser('plot_curve', help='plot curves of logged keys')
    plot.add_argument(
        'json_logs', nargs='+', metavar='WORK_DIR_OR_JSON', help='work dirs or scalars.json files'
    )
    plot.add_argument(
        '--keys', nargs='+', default=['loss'], help='the keys to plot (default: loss)'
    )
    plot.add_argument('--legend', nargs='+', help='one name per run (default: the work dir names)')
    plot.add_argument('--title', help='the figure title')
    plot.add_argument(
        '--eval-interval',
        type=int,
        help='the validation interval of the runs; checked against the logged validation points',
    )
    plot.add_argument(
        '--style', default='dark', help='a matplotlib style or a seaborn style name (default: dark)'
    )
    plot.add_argument(
        '--out', default='curves.png', help='the image to write (default: curves.png)'
    )

    timing = commands.add_parser('cal_train_time', help='average iteration time per run')
    timing.add_argument(
        'json_logs', nargs='+', metavar='WORK_DIR_OR_JSON', help='work dirs or scalars.json files'
    )
    timing.add_argument(
        '--include-outliers',
        action='store_true',
        help='count the first logged iteration of each epoch (left out by default)',
    )
    return parse_tool_args(parser, argv)


def load_runs(paths, legend=None):
    """The :class:`RunLog` of each path; ``legend`` (one name per path) names them."""
    if legend is not None and len(legend) != len(paths):
        raise ValueError(
            f'--legend gives {len(legend)} names for {len(paths)} runs: one name per run'
        )
    runs = [load_run_log(p, None if legend is None else legend[i]) for i, p in enumerate(paths)]
    names = [run.name for run in runs]
    if legend is None and len(set(names)) < len(names):
        for run in runs:  # the same work dir name twice: add the run folder
            run_dir = osp.basename(osp.dirname(osp.dirname(osp.abspath(run.path))))
            run.name = f'{run.name}/{run_dir}'
    return runs


def main(argv=None):
    args = parse_args(argv)
    try:
        if args.task == 'plot_curve':
            runs = load_runs(args.json_logs, args.legend)
            if args.eval_interval is not None:
                check_eval_interval(runs, args.keys, args.eval_interval)
            plot_curves(runs, args.keys, title=args.title, style=args.style, out=args.out)
            print(f'plotted {", ".join(args.keys)} of {len(runs)} run(s) into {args.out}')
        else:
            for run in load_runs(args.json_logs):
                print(format_train_time(run, train_time_stats(run, args.include_outliers)) + '\n')
    except (OSError, KeyError, ValueError, LogFormatError) as e:
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        raise SystemExit(f'error: {message}') from None


if __name__ == '__main__':
    main()
