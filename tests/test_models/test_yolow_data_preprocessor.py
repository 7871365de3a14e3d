"""YOLOWDetDataPreprocessor: the YOLO-collate training path and the list path."""

import pytest
import torch
from mmengine.structures import InstanceData

from ai4rs.registry import MODELS
from ai4rs.structures import DetDataSample


def build(**kwargs):
    cfg = dict(
        type='YOLOWDetDataPreprocessor',
        mean=[0.0, 0.0, 0.0],
        std=[255.0, 255.0, 255.0],
        bgr_to_rgb=True,
    )
    cfg.update(kwargs)
    return MODELS.build(cfg)


def collated_batch():
    imgs = torch.zeros(2, 3, 32, 48, dtype=torch.uint8)
    imgs[:, 0] = 51  # B channel of BGR images
    imgs[:, 2] = 255  # R channel
    bboxes_labels = torch.tensor(
        [
            [0.0, 3.0, 1.0, 2.0, 10.0, 12.0],
            [1.0, 0.0, 4.0, 4.0, 30.0, 20.0],
            [1.0, 1.0, 0.0, 0.0, 8.0, 8.0],
        ]
    )
    texts = [['cat', 'dog', 'bird', 'fish'], ['dog', 'cat', '', '']]
    return {'inputs': imgs, 'data_samples': {'bboxes_labels': bboxes_labels, 'texts': texts}}


def test_training_yolo_collate_path():
    pre = build()
    out = pre(collated_batch(), training=True)
    inputs, samples = out['inputs'], out['data_samples']
    assert inputs.shape == (2, 3, 32, 48) and inputs.dtype == torch.float32
    # BGR -> RGB then / 255: channel 0 is the former R (255 -> 1), channel 2 the former B
    assert torch.all(inputs[:, 0] == 1.0)
    assert torch.allclose(inputs[:, 2], torch.full((2, 32, 48), 0.2))
    assert torch.equal(samples['bboxes_labels'], collated_batch()['data_samples']['bboxes_labels'])
    assert samples['texts'] == collated_batch()['data_samples']['texts']
    assert samples['img_metas'] == [{'batch_input_shape': (32, 48)}] * 2


def test_training_collate_batch_errors():
    pre = build()
    batch = collated_batch()
    batch['data_samples'].pop('texts')
    with pytest.raises(KeyError, match="'texts'"):
        pre(batch, training=True)
    batch = collated_batch()
    batch['data_samples']['bboxes_labels'] = torch.zeros(3, 5)
    with pytest.raises(ValueError, match=r'\(N, 6\)'):
        pre(batch, training=True)
    batch = collated_batch()
    batch['data_samples']['texts'] = batch['data_samples']['texts'][:1]
    with pytest.raises(ValueError, match='1 text lists for 2 images'):
        pre(batch, training=True)


def test_list_path_keeps_texts_on_samples():
    pre = build(pad_size_divisor=32)
    samples = []
    for shape in ((30, 40), (20, 50)):
        sample = DetDataSample(metainfo=dict(img_shape=shape, ori_shape=shape))
        sample.gt_instances = InstanceData(
            bboxes=torch.tensor([[1.0, 1.0, 5.0, 5.0]]), labels=torch.tensor([0])
        )
        sample.texts = ['cat', 'dog']
        samples.append(sample)
    imgs = [
        torch.full((3, 30, 40), 255, dtype=torch.uint8),
        torch.zeros(3, 20, 50, dtype=torch.uint8),
    ]
    for training in (False, True):
        out = pre({'inputs': imgs, 'data_samples': samples}, training=training)
        assert out['inputs'].shape == (2, 3, 32, 64)
        assert [s.texts for s in out['data_samples']] == [['cat', 'dog']] * 2
        assert out['data_samples'][0].batch_input_shape == (32, 64)
        assert out['inputs'][0, 0, 0, 0].item() == pytest.approx(1.0)
