"""A detector for the offline-analysis tool tests whose predictions are known in advance.

``OracleDetector`` predicts each image's ground truth (``gt_instances``, which the test
pipeline loads), changed by fixed rules that depend on the object's index ``i`` in its image:

- the box is moved by ``0.5 * (i % 3)`` pixels in x and y (it still overlaps its object with
  IoU well above 0.5);
- its score is ``0.95 - 0.1 * (i % 5)``;
- every fourth object (``i % 4 == 3``) is given the next class, ``(label + 1) % num_classes``;

and one false positive per image with objects, of class 0 and score 0.55, far outside the
image (it overlaps nothing). So ``tools/test.py`` writes real, non-trivial results without a
trained model, and their confusion matrix follows from the labels by hand.
"""

import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.structures import InstanceData

from ai4rs.registry import MODELS

FAR = -1000.0


@MODELS.register_module()
class OracleDetector(BaseModel):
    def __init__(self, num_classes: int, data_preprocessor=None, init_cfg=None):
        super().__init__(data_preprocessor=dict(type='BaseDataPreprocessor'), init_cfg=init_cfg)
        self.num_classes = num_classes
        self.unused = nn.Parameter(torch.zeros(1))  # a checkpoint needs a state_dict

    def forward(self, inputs, data_samples=None, mode='predict'):
        if mode != 'predict':
            raise NotImplementedError('OracleDetector only predicts')
        for sample in data_samples:
            gt = sample.gt_instances
            boxes = gt.bboxes.tensor.clone().float()
            labels = gt.labels.clone().long()
            idx = torch.arange(len(labels))
            shift = 0.5 * (idx % 3).float()
            if boxes.shape[1] == 4:  # (x1, y1, x2, y2): move both corners
                boxes += shift[:, None]
            else:  # (cx, cy, w, h, t): move the centre
                boxes[:, :2] += shift[:, None]
            scores = 0.95 - 0.1 * (idx % 5).float()
            labels = torch.where(idx % 4 == 3, (labels + 1) % self.num_classes, labels)
            if len(labels):
                far = boxes[:1].clone()
                far[:, :2] = FAR if boxes.shape[1] != 4 else far[:, :2] + FAR
                if boxes.shape[1] == 4:
                    far[:, 2:] += FAR
                boxes = torch.cat([boxes, far])
                scores = torch.cat([scores, torch.tensor([0.55])])
                labels = torch.cat([labels, torch.tensor([0])])
            sample.pred_instances = InstanceData(
                bboxes=type(gt.bboxes)(boxes), scores=scores, labels=labels
            )
        return data_samples
