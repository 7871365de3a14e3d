"""Reading a results pickle: tensors, arrays and plain values load; anything else is refused
before it runs."""

import os
import pickle

import numpy as np
import pytest
import torch
from mmengine.structures import InstanceData

from ai4rs.evaluation.offline import OfflineResultsError, load_results_pkl


def _dump(path, obj):
    with open(path, 'wb') as f:
        pickle.dump(obj, f)
    return str(path)


def test_a_dump_det_results_file_loads(tmp_path):
    from ai4rs.evaluation.metrics.dump_det_results import DumpDetResults
    from ai4rs.structures import DetDataSample
    from ai4rs.structures.bbox import RotatedBoxes

    sample = DetDataSample(metainfo=dict(img_id='a', img_path='a.png', ori_shape=(8, 8)))
    sample.pred_instances = InstanceData(
        bboxes=RotatedBoxes(torch.tensor([[1.0, 2, 3, 4, 0.5]])),
        scores=torch.tensor([0.7]),
        labels=torch.tensor([2]),
    )
    sample.gt_instances = InstanceData(labels=torch.tensor([1]))
    dumper = DumpDetResults(out_file_path=str(tmp_path / 'r.pkl'))
    dumper.process({}, [sample])
    dumper.compute_metrics(dumper.results)
    (loaded,) = load_results_pkl(str(tmp_path / 'r.pkl'))
    assert loaded['img_id'] == 'a' and tuple(loaded['ori_shape']) == (8, 8)
    torch.testing.assert_close(
        loaded['pred_instances']['bboxes'], torch.tensor([[1.0, 2, 3, 4, 0.5]])
    )
    assert loaded['pred_instances']['labels'].tolist() == [2]
    # numpy values (an mmdet pickle's img_id, scale factors) load too
    extra = dict(loaded, scale_factor=np.array([1.5, 2.0]), img_id=np.int64(3))
    (again,) = load_results_pkl(_dump(tmp_path / 'np.pkl', [extra]))
    assert again['img_id'] == 3 and again['scale_factor'].tolist() == [1.5, 2.0]


class _RunsCode:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.makedirs, (self.path,))


def test_a_pickle_that_would_run_code_is_refused_unrun(tmp_path):
    target = tmp_path / 'created_by_the_pickle'
    path = _dump(tmp_path / 'evil.pkl', [dict(pred_instances=_RunsCode(str(target)))])
    with pytest.raises(
        OfflineResultsError, match=r'evil.pkl: refused to load (posix|os)\.makedirs'
    ):
        load_results_pkl(path)
    assert not target.exists()


def test_not_a_pickle(tmp_path):
    path = tmp_path / 'r.pkl'
    path.write_text('hello')
    with pytest.raises(OfflineResultsError, match='r.pkl: not a readable results pickle'):
        load_results_pkl(str(path))
    with pytest.raises(FileNotFoundError, match='results file not found'):
        load_results_pkl(str(tmp_path / 'missing.pkl'))


def test_annotation_transforms_come_from_the_first_pipeline_that_loads_annotations():
    from mmengine.config import Config

    from ai4rs.evaluation.offline import annotation_transforms

    load = dict(type='LoadAnnotations', with_bbox=True, box_type='qbox')
    convert = dict(type='ConvertBoxType', box_type_mapping=dict(gt_bboxes='rbox'))
    resize = dict(type='Resize', scale=(8, 8))
    cfg = Config(
        dict(
            # a test-server recipe: the test pipeline loads no annotation
            test_dataloader=dict(dataset=dict(pipeline=[dict(type='LoadImageFromFile'), resize])),
            # wrappers (MultiModalDataset) keep the pipeline on the outside
            val_dataloader=dict(dataset=dict(dataset=dict(), pipeline=[resize, load, convert])),
            train_dataloader=dict(dataset=dict(pipeline=[dict(type='LoadAnnotations')])),
        )
    )
    assert annotation_transforms(cfg) == [load, convert]
    cfg.val_dataloader.dataset.pipeline = [resize]
    assert annotation_transforms(cfg) == [dict(type='LoadAnnotations')]
    cfg.train_dataloader.dataset.pipeline = [resize]
    with pytest.raises(OfflineResultsError, match='no dataloader pipeline has a LoadAnnotations'):
        annotation_transforms(cfg)
