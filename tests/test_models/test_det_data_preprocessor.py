"""DetDataPreprocessor and BatchSyncRandomResize (rotated boxes rescaled correctly)."""

import math

import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.structures import InstanceData

from ai4rs.models.data_preprocessors import BatchSyncRandomResize, DetDataPreprocessor
from ai4rs.structures import DetDataSample
from ai4rs.structures.bbox import HorizontalBoxes, QuadriBoxes, RotatedBoxes, scale_boxes


def corners(rboxes: torch.Tensor) -> torch.Tensor:
    """(N, 5) rboxes -> (N, 4, 2) corners c+v1+v2, c+v1-v2, c-v1-v2, c-v1+v2 (independent)."""
    cx, cy, w, h, t = rboxes.unbind(-1)
    v1 = torch.stack([w / 2 * torch.cos(t), w / 2 * torch.sin(t)], -1)
    v2 = torch.stack([-h / 2 * torch.sin(t), h / 2 * torch.cos(t)], -1)
    c = torch.stack([cx, cy], -1)
    return torch.stack([c + v1 + v2, c + v1 - v2, c - v1 - v2, c - v1 + v2], dim=1)


RBOXES = torch.tensor(
    [[30.0, 20.0, 24.0, 8.0, 0.5], [10.0, 40.0, 6.0, 12.0, -1.2], [50.0, 50.0, 10.0, 4.0, 0.0]]
)


def _sample(bboxes, img_shape=(64, 64), ignored=None):
    sample = DetDataSample()
    sample.set_metainfo(dict(img_shape=img_shape, ori_shape=img_shape))
    sample.gt_instances = InstanceData(
        bboxes=bboxes, labels=torch.zeros(len(bboxes), dtype=torch.long)
    )
    if ignored is not None:
        sample.ignored_instances = InstanceData(
            bboxes=ignored, labels=torch.zeros(len(ignored), dtype=torch.long)
        )
    return sample


def test_preprocessor_pads_normalises_and_converts_boxes():
    pre = DetDataPreprocessor(
        mean=[10.0, 20.0, 30.0],
        std=[2.0, 2.0, 2.0],
        bgr_to_rgb=True,
        pad_size_divisor=32,
        pad_value=7,
    )
    img1 = torch.zeros(3, 30, 40, dtype=torch.uint8)
    img1[0] = 100  # B channel in BGR
    img2 = torch.full((3, 20, 50), 50, dtype=torch.uint8)
    samples = [
        _sample(RotatedBoxes(RBOXES.clone()), (30, 40)),
        _sample(RBOXES[:1].clone(), (20, 50)),
    ]
    out = pre(dict(inputs=[img1, img2], data_samples=samples), training=False)
    inputs = out['inputs']
    assert inputs.shape == (2, 3, 32, 64) and inputs.dtype == torch.float32
    # BGR -> RGB, then (x - mean) / std
    assert inputs[0, 2, 0, 0].item() == pytest.approx((100 - 30) / 2)
    assert inputs[0, 0, 0, 0].item() == pytest.approx((0 - 10) / 2)
    # padding value goes through the normalisation too (mmengine pads after normalising)
    assert inputs[0, 0, 31, 63].item() == pytest.approx(7)
    for sample in out['data_samples']:
        assert sample.batch_input_shape == (32, 64)
        assert sample.pad_shape == (32, 64)
        assert isinstance(sample.gt_instances.bboxes, torch.Tensor)
    torch.testing.assert_close(out['data_samples'][0].gt_instances.bboxes, RBOXES)


def test_preprocessor_keeps_raw_pixels_without_mean_std():
    pre = DetDataPreprocessor(pad_size_divisor=32, boxtype2tensor=False)
    img = torch.full((3, 64, 64), 114, dtype=torch.uint8)
    out = pre(dict(inputs=[img], data_samples=[_sample(RotatedBoxes(RBOXES.clone()))]))
    assert out['inputs'].max().item() == 114.0
    assert isinstance(out['data_samples'][0].gt_instances.bboxes, RotatedBoxes)


@pytest.mark.parametrize('sx,sy', [(1.5, 1.5), (0.5, 0.5), (2.0, 1.0), (0.75, 1.25)])
def test_rescale_rboxes_against_scaled_corners(sx, sy):
    scaled_corners = corners(RBOXES) * torch.tensor([sx, sy])
    for boxes in (RotatedBoxes(RBOXES.clone()),):
        result = scale_boxes(boxes, (sx, sy))
        result = result if isinstance(result, torch.Tensor) else result.tensor
        # the centre is the centre of the scaled corners
        torch.testing.assert_close(result[:, :2], scaled_corners.mean(1))
        # w and h are the lengths of the scaled w and h edges
        w_edge = scaled_corners[:, 0] - scaled_corners[:, 3]  # (c+v1+v2) - (c-v1+v2) = 2 v1
        h_edge = scaled_corners[:, 0] - scaled_corners[:, 1]  # 2 v2
        torch.testing.assert_close(result[:, 2], w_edge.norm(dim=1))
        torch.testing.assert_close(result[:, 3], h_edge.norm(dim=1))
        if sx == sy:
            # a similarity: the rescaled rbox has exactly the scaled corners
            torch.testing.assert_close(corners(result), scaled_corners, atol=1e-4, rtol=0)
        else:
            # a parallelogram: the rectangle keeps the scaled h edge's direction
            # (RotatedBoxes.rescale_, mmrotate's rule) and both edge lengths
            direction = torch.stack([-torch.sin(result[:, 4]), torch.cos(result[:, 4])], 1)
            cross = direction[:, 0] * h_edge[:, 1] - direction[:, 1] * h_edge[:, 0]
            torch.testing.assert_close(
                cross / h_edge.norm(dim=1), torch.zeros(3), atol=1e-5, rtol=0
            )


def test_rescale_other_box_formats():
    hbox = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    torch.testing.assert_close(
        scale_boxes(HorizontalBoxes(hbox), (2.0, 3.0)).tensor, torch.tensor([[2.0, 6.0, 6.0, 12.0]])
    )
    qbox = torch.arange(8.0).view(1, 8)
    torch.testing.assert_close(
        scale_boxes(QuadriBoxes(qbox), (2.0, 3.0)).tensor, qbox * torch.tensor([2.0, 3.0] * 4)
    )
    # a raw tensor does not say its format: no guessing from the number of columns
    with pytest.raises(TypeError, match='boxes_from_tensor'):
        scale_boxes(torch.zeros(1, 5), (2.0, 2.0))


def test_batch_sync_random_resize_rescales_rboxes():
    hub = MessageHub.get_instance('test_batch_sync_random_resize')
    aug = BatchSyncRandomResize(random_size_range=(96, 96), interval=10, size_divisor=32)
    inputs = torch.rand(2, 3, 64, 64)
    samples = [
        _sample(RotatedBoxes(RBOXES.clone()), ignored=RotatedBoxes(RBOXES[:1].clone())),
        _sample(RotatedBoxes(RBOXES[1:].clone())),
    ]
    for sample in samples:
        sample.set_metainfo(dict(pad_shape=(64, 64), batch_input_shape=(64, 64)))
    hub.update_info('iter', 3)
    out, samples = aug(inputs, samples)  # first call: keeps the size, no new size drawn
    assert out.shape[-2:] == (64, 64)
    torch.testing.assert_close(samples[0].gt_instances.bboxes.tensor, RBOXES)
    hub.update_info('iter', 9)  # (iter + 1) % interval == 0: draws a new size for next time
    out, samples = aug(inputs, samples)
    assert out.shape[-2:] == (64, 64)
    out, samples = aug(inputs, samples)
    assert out.shape == (2, 3, 96, 96)
    assert samples[0].img_shape == (96, 96) and samples[0].batch_input_shape == (96, 96)
    assert samples[0].pad_shape == (96, 96)
    expected = corners(RBOXES) * 1.5
    assert isinstance(samples[0].gt_instances.bboxes, RotatedBoxes)  # the type travels
    torch.testing.assert_close(
        corners(samples[0].gt_instances.bboxes.tensor), expected, atol=1e-4, rtol=0
    )
    torch.testing.assert_close(
        corners(samples[0].ignored_instances.bboxes.tensor), expected[:1], atol=1e-4, rtol=0
    )
    torch.testing.assert_close(
        corners(samples[1].gt_instances.bboxes.tensor), expected[1:], atol=1e-4, rtol=0
    )
    # the angle is not scaled (upstream's every-other-column scaling would multiply it by 1.5)
    torch.testing.assert_close(samples[0].gt_instances.bboxes.tensor[:, 4], RBOXES[:, 4])


def test_batch_augments_only_in_training():
    pre = DetDataPreprocessor(
        pad_size_divisor=32,
        batch_augments=[
            dict(type='BatchSyncRandomResize', random_size_range=(96, 96), size_divisor=32)
        ],
    )
    pre.batch_augments[0]._input_size = (96, 96)
    data = dict(
        inputs=[torch.zeros(3, 64, 64, dtype=torch.uint8)],
        data_samples=[_sample(RotatedBoxes(RBOXES.clone()))],
    )
    assert pre(dict(data), training=False)['inputs'].shape[-1] == 64
    MessageHub.get_current_instance().update_info('iter', 0)
    trained = pre(
        dict(
            inputs=[torch.zeros(3, 64, 64, dtype=torch.uint8)],
            data_samples=[_sample(RotatedBoxes(RBOXES.clone()))],
        ),
        training=True,
    )
    assert trained['inputs'].shape[-1] == 96
    assert math.isclose(
        trained['data_samples'][0].gt_instances.bboxes[0, 2].item(), 36.0, rel_tol=1e-5
    )


def _rect_from_scaled_corners(scaled: torch.Tensor) -> torch.Tensor:
    """Independent of RotatedBoxes.rescale_: the rectangle read off (N, 4, 2) scaled corners:
    centre = their mean, w / h = lengths of the images of the w edge (c0 - c3) and the h edge
    (c0 - c1), angle such that the h edge points along (-sin t, cos t)."""
    w_edge, h_edge = scaled[:, 0] - scaled[:, 3], scaled[:, 0] - scaled[:, 1]
    t = torch.atan2(-h_edge[:, 0], h_edge[:, 1])
    return torch.cat(
        [
            scaled.mean(1),
            w_edge.norm(dim=1, keepdim=True),
            h_edge.norm(dim=1, keepdim=True),
            t[:, None],
        ],
        1,
    )


def test_issue_example_non_uniform_rescale():
    # w = 24 at t = 0.3 divided by the scale (2, 0.5) comes out about 18.2 px wide
    box = RotatedBoxes(torch.tensor([[40.0, 40.0, 24.0, 8.0, 0.3]]))
    scale_boxes(box, (1 / 2, 1 / 0.5))
    assert box.tensor[0, 2].item() == pytest.approx(18.24, abs=0.01)


@pytest.mark.parametrize('training_size', [(96, 128), (48, 80)])
def test_preprocessor_batch_resize_non_uniform_against_corners(training_size):
    """Through DetDataPreprocessor in training: the batch is resized by (sx, sy), sx != sy, the
    rotated boxes are rescaled as box objects and turned into tensors only at the end."""
    pre = DetDataPreprocessor(
        pad_size_divisor=32,
        batch_augments=[
            dict(type='BatchSyncRandomResize', random_size_range=(96, 96), size_divisor=32)
        ],
    )
    pre.batch_augments[0]._input_size = training_size
    MessageHub.get_current_instance().update_info('iter', 0)
    out = pre(
        dict(
            inputs=[torch.zeros(3, 64, 64, dtype=torch.uint8)],
            data_samples=[_sample(RotatedBoxes(RBOXES.clone()))],
        ),
        training=True,
    )
    assert out['inputs'].shape[-2:] == training_size
    sy, sx = training_size[0] / 64, training_size[1] / 64
    assert sx != sy
    got = out['data_samples'][0].gt_instances.bboxes
    assert isinstance(got, torch.Tensor)  # boxtype2tensor after the batch augments
    expected = _rect_from_scaled_corners(corners(RBOXES) * torch.tensor([sx, sy]))
    torch.testing.assert_close(got[:, :4], expected[:, :4], atol=1e-4, rtol=0)
    # the angles agree modulo pi (the h edge direction up to sign)
    diff = torch.remainder(got[:, 4] - expected[:, 4] + math.pi / 2, math.pi) - math.pi / 2
    torch.testing.assert_close(diff, torch.zeros(3), atol=1e-5, rtol=0)


def test_batch_resize_refuses_raw_tensors():
    aug = BatchSyncRandomResize(random_size_range=(96, 96), size_divisor=32)
    aug._input_size = (96, 96)
    sample = _sample(RBOXES.clone())
    sample.set_metainfo(dict(pad_shape=(64, 64), batch_input_shape=(64, 64)))
    MessageHub.get_current_instance().update_info('iter', 0)
    with pytest.raises(TypeError, match='box object'):
        aug(torch.rand(1, 3, 64, 64), [sample])
