"""Evaluate saved predictions with the config's ``test_evaluator``, no model run (mmdet's tool).

    python tools/test.py CONFIG CHECKPOINT --out results.pkl
    python tools/analysis_tools/eval_metric.py CONFIG results.pkl [--cfg-options KEY=VALUE ...]

The config's test dataset gives the classes and the ground truth (built as ``tools/test.py``
builds it); every metric of ``test_evaluator`` (``DOTAMetric``, ``CocoMetric``, ...) logs its
table and the tool prints the metrics as ``tools/test.py``'s last log line does, e.g.
``dota/mAP: 0.5123  dota/AP50: 0.7000``.
"""

import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from ai4rs.evaluation.offline import (  # noqa: E402
    evaluate_offline,
    format_metrics,
    load_offline_results,
)
from ai4rs.utils.cli import add_config_arguments, config_from_args, parse_tool_args  # noqa: E402
from ai4rs.utils.config import ReservedConfigNameError  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Evaluate a results pickle with the config')
    add_config_arguments(parser, 'test config file path')
    parser.add_argument('pkl_results', help='results pickle of tools/test.py --out')
    return parse_tool_args(parser, argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    try:
        cfg = config_from_args(args)
        metrics = evaluate_offline(load_offline_results(cfg, args.pkl_results))
    except (FileNotFoundError, ValueError, ReservedConfigNameError) as e:
        # OfflineResultsError is a ValueError; so are the metrics' own input errors
        raise SystemExit(f'error: {e}') from None
    if not metrics:
        print(
            'the test_evaluator computed no metric (format_only / merge_patches only write '
            'result files; see its log above for where)'
        )
    else:
        print(format_metrics(metrics))
    return metrics


if __name__ == '__main__':
    main()
