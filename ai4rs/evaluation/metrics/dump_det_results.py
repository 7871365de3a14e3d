"""Dumping predictions to a pickle file (``tools/test.py --out``)."""

from mmengine.evaluator import DumpResults
from mmengine.evaluator.metric import _to_cpu

from ai4rs.registry import METRICS


@METRICS.register_module()
class DumpDetResults(DumpResults):
    """Dump each image's predictions (``pred_instances`` and meta) to a ``.pkl``.

    Ground truth is dropped, so the file holds what the model produced: a
    list with one dict per image (``img_path``, ``img_id``, ``ori_shape``,
    ``pred_instances`` with ``bboxes``, ``scores``, ``labels`` as CPU tensors).
    Box objects are stored as their tensors, so reading the file back needs
    no ai4rs class.
    """

    def process(self, data_batch, predictions):
        predictions = _to_cpu(predictions)
        for sample in predictions:
            sample = sample.to_dict() if hasattr(sample, 'to_dict') else dict(sample)
            for key in ('gt_instances', 'ignored_instances', 'gt_panoptic_seg', 'gt_sem_seg'):
                sample.pop(key, None)
            pred = sample.get('pred_instances')
            if pred is not None:
                pred = pred.to_dict() if hasattr(pred, 'to_dict') else dict(pred)
                if hasattr(pred.get('bboxes'), 'tensor'):
                    pred['bboxes'] = pred['bboxes'].tensor
                sample['pred_instances'] = pred
            self.results.append(sample)
