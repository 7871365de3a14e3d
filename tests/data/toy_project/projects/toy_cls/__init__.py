"""A tiny project package used by the tool tests.

It lives outside the ai4rs package, as a user's ``projects/<name>`` package
does, and registers its classes into ai4rs' registries. Configs load it with
``custom_imports``. The task is deliberately easy (is an image bright or
dark?) so that a few CPU iterations learn it.
"""
import os.path as osp

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.transforms import BaseTransform
from mmengine.dataset import BaseDataset
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from mmengine.structures import InstanceData

from ai4rs.registry import DATASETS, METRICS, MODELS, TRANSFORMS
from ai4rs.structures import DetDataSample


@DATASETS.register_module()
class ToyBrightnessDataset(BaseDataset):
    """Images listed in ``ann_file`` as ``<file name> <label>`` lines."""

    METAINFO = dict(classes=('dark', 'bright'), palette=[(0, 0, 255), (255, 0, 0)])

    def load_data_list(self):
        data_list = []
        with open(self.ann_file) as f:
            for i, line in enumerate(f):
                name, label = line.split()
                data_list.append(dict(img_path=osp.join(self.data_prefix['img_path'], name),
                                      img_id=i, label=int(label)))
        return data_list


@TRANSFORMS.register_module()
class PackToyInputs(BaseTransform):
    def transform(self, results):
        img = np.ascontiguousarray(results['img'].transpose(2, 0, 1))
        sample = DetDataSample(metainfo=dict(img_path=results['img_path'],
                                             img_id=results['img_id'],
                                             ori_shape=results['ori_shape']))
        sample.gt_instances = InstanceData(labels=torch.tensor([results['label']]))
        return dict(inputs=torch.from_numpy(img), data_samples=sample)


@MODELS.register_module()
class ToyBrightnessClassifier(BaseModel):
    def __init__(self, channels=4, data_preprocessor=None, init_cfg=None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.conv = nn.Conv2d(3, channels, 3, padding=1)
        self.fc = nn.Linear(channels, 2)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        logits = self.fc(F.adaptive_avg_pool2d(F.relu(self.conv(inputs)), 1).flatten(1))
        if mode == 'tensor':
            return logits
        if mode == 'loss':
            labels = torch.cat([s.gt_instances.labels for s in data_samples])
            return dict(loss_cls=F.cross_entropy(logits, labels))
        scores, labels = logits.softmax(-1).max(-1)
        for s, score, label in zip(data_samples, scores, labels):
            s.pred_instances = InstanceData(scores=score[None], labels=label[None])
        return data_samples


@METRICS.register_module()
class ToyAccuracy(BaseMetric):
    default_prefix = 'toy'

    def process(self, data_batch, data_samples):
        for s in data_samples:
            pred, gt = s['pred_instances']['labels'][0], s['gt_instances']['labels'][0]
            self.results.append(int(pred == gt))

    def compute_metrics(self, results):
        return dict(accuracy=float(np.mean(results)))

