"""``{work_dir}`` / ``{timestamp}`` in an evaluator's ``outfile_prefix`` name the run's folders."""

import pytest
from mmengine.config import ConfigDict

from ai4rs.engine.runner import resolve_run_paths


def test_placeholders_are_filled_in_every_metric():
    metric = ConfigDict(type='DOTAMetric', outfile_prefix='{work_dir}/{timestamp}/Task1')
    assert resolve_run_paths(metric, '/w', '20260101_000000') == dict(
        type='DOTAMetric', outfile_prefix='/w/20260101_000000/Task1'
    )
    assert metric.outfile_prefix == '{work_dir}/{timestamp}/Task1'  # the config is kept
    nested = dict(type='Evaluator', metrics=[metric, dict(type='CocoMetric')])
    out = resolve_run_paths(nested, 'w', 't')
    assert out['metrics'][0]['outfile_prefix'] == 'w/t/Task1'
    assert out['metrics'][1] == dict(type='CocoMetric')
    # no placeholder, or no evaluator: unchanged
    plain = dict(type='DOTAMetric', outfile_prefix='./work_dirs/x/Task1')
    assert resolve_run_paths([plain], 'w', 't') == [plain]
    assert resolve_run_paths(None, 'w', 't') is None


def test_an_unknown_field_is_named():
    with pytest.raises(KeyError, match=r"unknown field 'run'; it may hold \{work_dir\}"):
        resolve_run_paths(dict(outfile_prefix='{work_dir}/{run}'), 'w', 't')
