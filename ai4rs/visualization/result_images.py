"""Draw one image's ground truth and saved predictions side by side (mmdet's analyze_results).

The sample is a dict as :func:`ai4rs.evaluation.offline.load_offline_results` pairs them:
``gt_instances`` (``bboxes`` a box object, ``labels``) and ``pred_instances`` (``bboxes`` a
raw (n, box_dim) tensor of ``pred_box_type``, ``scores``, ``labels``). The drawing is
:meth:`DetLocalVisualizer.add_datasample`'s: ground truth on the left, predictions with a
score >= ``score_thr`` on the right, so the written image is (H, 2W) for an (H, W) image.
"""

import torch
from mmengine.structures import InstanceData

from ai4rs.structures.bbox import BaseBoxes, boxes_from_tensor
from ai4rs.structures.det_data_sample import DetDataSample


def _instances(d: dict, box_type: str | None) -> InstanceData:
    inst = InstanceData()
    boxes = d['bboxes']
    if not isinstance(boxes, BaseBoxes):
        if box_type is None:
            raise ValueError('raw ground-truth boxes need their box type')
        boxes = boxes_from_tensor(torch.as_tensor(boxes, dtype=torch.float32), box_type)
    inst.bboxes = boxes
    inst.labels = torch.as_tensor(d['labels'], dtype=torch.int64).reshape(-1)
    if 'scores' in d:
        inst.scores = torch.as_tensor(d['scores'], dtype=torch.float32).reshape(-1)
    return inst


def analysis_data_sample(sample: dict, pred_box_type: str) -> DetDataSample:
    """A ``DetDataSample`` with the sample's ``gt_instances`` and typed ``pred_instances``.

    Args:
        sample (dict): ``gt_instances`` and ``pred_instances`` dicts (see the module doc).
        pred_box_type (str): 'hbox', 'rbox' or 'qbox', the type of the saved predictions.
    """
    data_sample = DetDataSample()
    data_sample.gt_instances = _instances(sample['gt_instances'], None)
    data_sample.pred_instances = _instances(sample['pred_instances'], pred_box_type)
    return data_sample


def draw_gt_and_predictions(
    visualizer,
    image,
    sample: dict,
    pred_box_type: str,
    out_file: str,
    score_thr: float = 0.0,
):
    """Write ``image`` with the sample's ground truth (left) and predictions (right).

    Args:
        visualizer (DetLocalVisualizer): with ``dataset_meta`` set (class names, palette).
        image (np.ndarray): (H, W, 3) RGB uint8.
        sample (dict): see :func:`analysis_data_sample`.
        pred_box_type (str): the predictions' box type.
        out_file (str): the file written (its folder is created by mmcv).
        score_thr (float): predictions below it are not drawn.

    Returns:
        np.ndarray: the drawn (H, 2W, 3) RGB image.
    """
    data_sample = analysis_data_sample(sample, pred_box_type)
    return visualizer.add_datasample(
        'result',
        image,
        data_sample=data_sample,
        draw_gt=True,
        draw_pred=True,
        show=False,
        out_file=out_file,
        pred_score_thr=score_thr,
    )


__all__ = ['analysis_data_sample', 'draw_gt_and_predictions']
