"""``test_dataset_cfg``: the dataset dict holding the test pipeline, through wrappers, the val
loader when there is no test loader, and a clear error without either."""

import pytest
from mmengine.config import Config

from ai4rs.apis import pipeline  # its test_* functions: not to be collected as tests

PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='Resize', scale=(64, 64)),
    dict(type='PackDetInputs'),
]


def test_through_wrappers_and_changes_reach_the_config():
    inner = dict(type='DOTADataset', pipeline=PIPELINE)
    cfg = Config(
        dict(
            test_dataloader=dict(
                dataset=dict(type='RepeatDataset', times=2, dataset=dict(type='X', dataset=inner))
            )
        )
    )
    dataset = pipeline.test_dataset_cfg(cfg)
    assert dataset['type'] == 'DOTADataset'
    dataset['pipeline'][2]['scale'] = (32, 32)
    # test_pipeline_cfg reads the same dict (a copy, annotations dropped)
    assert [t['type'] for t in pipeline.test_pipeline_cfg(cfg, False)] == [
        'LoadImageFromFile',
        'Resize',
        'PackDetInputs',
    ]
    assert pipeline.test_pipeline_cfg(cfg, False)[1]['scale'] == (32, 32)


def test_val_loader_when_no_test_loader_and_an_error_without_either():
    cfg = Config(dict(val_dataloader=dict(dataset=dict(type='V', pipeline=PIPELINE))))
    assert pipeline.test_dataset_cfg(cfg)['type'] == 'V'
    with pytest.raises(ValueError, match='neither test_dataloader nor val_dataloader'):
        pipeline.test_dataset_cfg(Config(dict(train_dataloader=dict(dataset=dict(type='T')))))
