"""Models, assigners and data preprocessors on every test device (``device``, see
tests/conftest.py: 'cpu', plus 'cuda' where available).

The reference of each comparison is independent of the device under test: the same
module in float64 on the CPU (or hand-made data), while the device runs float32. On the
CPU this checks float32 against float64; on CUDA it also catches device bugs (tensors
made on the wrong device, host-only code in a hot path). TF32 is switched off on CUDA for
the comparisons (``exact_cuda_math``). Also here: the float16 masked-text logit of the
YOLO-World head, and (CPU only) training steps with torch's default device moved away from
the model's, which makes a tensor created without ``device=`` fail as it would on a GPU.
"""

import copy

import pytest
import torch
from mmengine.structures import InstanceData

from ai4rs.registry import MODELS, TASK_UTILS
from ai4rs.structures import DetDataSample
from ai4rs.structures.bbox import RotatedBoxes
from tests.test_models.yolox_builders import build_rotated_yolox

pytestmark = pytest.mark.usefixtures('exact_cuda_math')


def assert_grads_close(model: torch.nn.Module, ref: torch.nn.Module, rel: float) -> None:
    """Every parameter gradient of ``model`` (any device, float32) is within ``rel`` (relative
    to its norm, plus 1e-6 for gradients that are zero in exact arithmetic, such as the bias
    of a convolution followed by BatchNorm) of ``ref``'s (CPU, float64); no parameter has a
    gradient in one model only."""
    params = dict(ref.named_parameters())
    checked = 0
    for name, p in model.named_parameters():
        q = params[name]
        assert (p.grad is None) == (q.grad is None), name
        if p.grad is None:
            continue
        g, h = p.grad.detach().cpu().double(), q.grad.detach()
        assert torch.isfinite(g).all(), name
        err = (g - h).norm().item()
        assert err <= rel * h.norm().item() + 1e-6, (
            f'{name}: |diff| {err:.3g}, |ref| {h.norm().item():.3g}'
        )
        checked += 1
    assert checked > 10


def assert_losses_close(losses: dict, ref: dict, rel: float) -> None:
    assert sorted(losses) == sorted(ref)
    for key, value in losses.items():
        r = ref[key].item()
        assert torch.isfinite(value) and abs(value.item() - r) <= rel * abs(r) + 1e-7, (
            f'{key}: {value.item()} vs {r}'
        )


# ------------------------------------------------------------------ rotated YOLOX
def _rotated_batch() -> dict:
    """Two 96 x 96 images with three and two rotated objects (le90)."""
    g = torch.Generator().manual_seed(0)
    boxes = [
        torch.tensor(
            [
                [30.3, 27.7, 36.0, 18.0, 0.4],
                [66.2, 60.9, 24.0, 40.0, -0.7],
                [70.6, 20.1, 14.0, 14.0, 1.1],
            ]
        ),
        torch.tensor([[47.1, 45.3, 60.0, 30.0, 0.2], [20.8, 75.4, 20.0, 12.0, -1.3]]),
    ]
    labels = [torch.tensor([0, 4, 9]), torch.tensor([2, 4])]
    inputs, samples = [], []
    for b, lab in zip(boxes, labels):
        inputs.append((torch.rand(3, 96, 96, generator=g) * 255).to(torch.uint8))
        sample = DetDataSample(
            metainfo=dict(img_shape=(96, 96), ori_shape=(96, 96), scale_factor=(1.0, 1.0))
        )
        sample.gt_instances = InstanceData(bboxes=RotatedBoxes(b), labels=lab)
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def test_rotated_yolox_forward_loss_backward_on_device(device):
    model = build_rotated_yolox('tiny').to(device)
    ref = copy.deepcopy(model).cpu().double()
    for m in (model, ref):
        m.train()
        m.bbox_head.use_l1 = True
    data = model.data_preprocessor(_rotated_batch(), True)
    assert data['inputs'].device.type == device
    assert data['data_samples'][0].gt_instances.bboxes.device.type == device
    ref_data = ref.data_preprocessor(_rotated_batch(), True)
    ref_inputs = ref_data['inputs'].double()

    outs = model(data['inputs'], mode='tensor')
    ref_outs = ref(ref_inputs, mode='tensor')
    for kind, ref_kind in zip(outs, ref_outs):
        for level, ref_level in zip(kind, ref_kind):
            assert level.device.type == device and level.dtype == torch.float32
            torch.testing.assert_close(level.cpu().double(), ref_level, rtol=1e-4, atol=1e-4)

    losses = model(data['inputs'], data['data_samples'], mode='loss')
    ref_losses = ref(ref_inputs, ref_data['data_samples'], mode='loss')
    assert {'loss_cls', 'loss_bbox', 'loss_obj', 'loss_l1'} <= set(losses)
    assert all(v.device.type == device for v in losses.values())
    assert_losses_close(losses, ref_losses, rel=1e-4)
    sum(losses.values()).backward()
    sum(ref_losses.values()).backward()
    assert_grads_close(model, ref, rel=2e-3)

    model.eval()
    with torch.no_grad():
        test_data = model.data_preprocessor(_rotated_batch(), False)
        results = model(test_data['inputs'], test_data['data_samples'], mode='predict')
    for res in results:
        pred = res.pred_instances
        assert pred.bboxes.device.type == pred.scores.device.type == device


# ------------------------------------------------------------------ YOLO-World
def _world_batch() -> dict:
    """A YOLO-collated batch of two 64 x 64 images; the boxes are large, so that every
    object has more priors inside it than the assigner's topk (no ties at zero)."""
    g = torch.Generator().manual_seed(1)
    return {
        'inputs': (torch.rand(2, 3, 64, 64, generator=g) * 255).to(torch.uint8),
        'data_samples': {
            'bboxes_labels': torch.tensor(
                [
                    [0.0, 1.0, 3.3, 5.1, 60.2, 58.7],
                    [1.0, 2.0, 6.4, 2.2, 57.9, 46.1],
                    [1.0, 0.0, 20.5, 30.3, 63.1, 63.4],
                ]
            ),
            'texts': [['cat', 'dog', 'bird'], ['dog', 'bird', 'cat']],
        },
    }


def test_yolo_world_forward_loss_backward_on_device(device, tiny_clip_dir):
    from tests.test_models.test_yolo_world_integration import detector_cfg

    torch.manual_seed(0)
    model = MODELS.build(detector_cfg(0.33, 0.125, 256, tiny_clip_dir, num_train_classes=3))
    model.init_weights()
    model.train()
    ref = copy.deepcopy(model).double()
    model.to(device)
    data = model.data_preprocessor(_world_batch(), training=True)
    assert data['inputs'].device.type == device
    assert data['data_samples']['bboxes_labels'].device.type == device
    ref_data = ref.data_preprocessor(_world_batch(), training=True)
    ref_inputs = ref_data['inputs'].double()

    outs = model(data['inputs'], data['data_samples'], mode='tensor')
    ref_outs = ref(ref_inputs, ref_data['data_samples'], mode='tensor')
    for kind, ref_kind in zip(outs, ref_outs):
        for level, ref_level in zip(kind, ref_kind):
            assert level.device.type == device and level.dtype == torch.float32
            torch.testing.assert_close(level.cpu().double(), ref_level, rtol=1e-4, atol=1e-4)

    losses = model(data['inputs'], data['data_samples'], mode='loss')
    ref_losses = ref(ref_inputs, ref_data['data_samples'], mode='loss')
    assert all(v.device.type == device for v in losses.values())
    assert_losses_close(losses, ref_losses, rel=1e-4)
    sum(losses.values()).backward()
    sum(ref_losses.values()).backward()
    assert_grads_close(model, ref, rel=2e-3)


# ------------------------------------------------------------------ assigners
def _priors(size: int = 64, stride: int = 8) -> torch.Tensor:
    """(P, 4) cell-centre priors (x, y, stride, stride), float64."""
    from ai4rs.models.task_modules import MlvlPointGenerator

    gen = MlvlPointGenerator([stride], offset=0.5)
    return gen.grid_priors(
        [(size // stride, size // stride)], dtype=torch.float64, with_stride=True
    )[0]


def test_batch_task_aligned_assigner_on_device(device):
    """YOLO-World's assigner (CIoU, topk 10) on the device equals the float64 CPU run."""
    g = torch.Generator().manual_seed(2)
    priors = _priors()
    num_priors = priors.size(0)
    half = torch.rand(2, num_priors, 2, generator=g, dtype=torch.float64) * 16 + 8
    centres = priors[None, :, :2] + torch.randn(2, num_priors, 2, generator=g, dtype=torch.float64)
    pred_bboxes = torch.cat([centres - half, centres + half], -1)
    pred_scores = torch.rand(2, num_priors, 4, generator=g, dtype=torch.float64)
    # image 0: two objects, image 1: one object and one padding row
    gt_bboxes = torch.tensor(
        [
            [[2.3, 4.1, 58.7, 50.2], [20.6, 10.4, 63.2, 62.9]],
            [[5.5, 8.8, 55.1, 60.3], [0.0, 0.0, 0.0, 0.0]],
        ],
        dtype=torch.float64,
    )
    gt_labels = torch.tensor([[[1.0], [3.0]], [[2.0], [0.0]]], dtype=torch.float64)
    pad = (gt_bboxes.sum(-1, keepdim=True) > 0).double()
    assigner = TASK_UTILS.build(
        dict(
            type='BatchTaskAlignedAssigner',
            num_classes=4,
            use_ciou=True,
            topk=10,
            alpha=0.5,
            beta=6.0,
            eps=1e-9,
        )
    )
    args = (pred_bboxes, pred_scores, priors, gt_labels, gt_bboxes, pad)
    ref = assigner(*args)
    # precondition: each object has more than topk priors inside it with a positive
    # alignment metric, so no candidate is chosen among ties at zero
    metrics, _ = assigner.get_box_metrics(pred_bboxes, pred_scores, gt_labels, gt_bboxes, 2, 2)
    from ai4rs.models.task_modules.assigners import select_candidates_in_gts

    inside = select_candidates_in_gts(priors[:, :2], gt_bboxes) > 0
    positive = ((metrics > 0) & inside).sum(-1)
    assert (positive[pad[..., 0] > 0] > 10).all()

    out = assigner(*[a.float().to(device) for a in args])
    assert all(v.device.type == device for v in out.values())
    assert ref['fg_mask_pre_prior'].sum() >= 20
    assert torch.equal(out['fg_mask_pre_prior'].cpu(), ref['fg_mask_pre_prior'])
    assert torch.equal(out['assigned_labels'].cpu(), ref['assigned_labels'])
    torch.testing.assert_close(out['assigned_bboxes'].cpu().double(), ref['assigned_bboxes'])
    torch.testing.assert_close(
        out['assigned_scores'].cpu().double(), ref['assigned_scores'], rtol=1e-4, atol=1e-6
    )


def test_rotated_sim_ota_assigner_on_device(device):
    """SimOTA with rotated IoU on the device equals the float64 CPU run."""
    g = torch.Generator().manual_seed(3)
    priors = _priors()
    n = priors.size(0)
    bboxes = torch.cat(
        [
            priors[:, :2] + torch.randn(n, 2, generator=g, dtype=torch.float64) * 2,
            torch.rand(n, 2, generator=g, dtype=torch.float64) * 30 + 10,
            (torch.rand(n, 1, generator=g, dtype=torch.float64) - 0.5) * 3,
        ],
        1,
    )
    scores = torch.rand(n, 5, generator=g, dtype=torch.float64)
    gt = torch.tensor(
        [[22.3, 25.1, 40.0, 24.0, 0.5], [44.7, 41.2, 30.0, 46.0, -0.3]], dtype=torch.float64
    )
    labels = torch.tensor([1, 4])
    assigner = TASK_UTILS.build(dict(type='RotatedSimOTAAssigner', center_radius=2.5))

    def run(dtype, dev):
        pred = InstanceData(
            priors=priors.to(dev, dtype), bboxes=bboxes.to(dev, dtype), scores=scores.to(dev, dtype)
        )
        return assigner.assign(pred, InstanceData(bboxes=gt.to(dev, dtype), labels=labels.to(dev)))

    ref, out = run(torch.float64, 'cpu'), run(torch.float32, device)
    assert out.gt_inds.device.type == out.max_overlaps.device.type == device
    assert (ref.gt_inds > 0).sum() >= 4 and set(ref.gt_inds.tolist()) >= {1, 2}
    assert torch.equal(out.gt_inds.cpu(), ref.gt_inds)
    assert torch.equal(out.labels.cpu(), ref.labels)
    pos = ref.gt_inds > 0
    torch.testing.assert_close(
        out.max_overlaps.cpu()[pos], ref.max_overlaps[pos], rtol=0, atol=1e-5
    )


# ------------------------------------------------------------------ float16
def test_masked_text_logits_stay_finite_in_float16(device):
    """With float16 logits and masks (a half-precision model) the masked-text logit must
    stay finite: -10e6 (upstream's) overflows to -inf in float16, and the sigmoid BCE of -inf
    is NaN, which a zero mask cannot remove from the loss. (Under autocast with float32 masks
    the training path's ``logits * mask`` already promotes to float32.)"""
    from ai4rs.models.losses import CrossEntropyLoss

    torch.manual_seed(0)
    head = (
        MODELS.build(
            dict(
                type='YOLOWorldHeadModule',
                num_classes=3,
                in_channels=[64],
                embed_dims=32,
                widen_factor=1.0,
                featmap_strides=[8],
                use_bn_head=True,
            )
        )
        .to(device)
        .half()
    )
    head.train()
    img = torch.randn(2, 64, 4, 4, device=device).half()
    txt = torch.randn(2, 3, 32, device=device).half()
    masks = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]], device=device).half()
    cls_logits = head([img], txt, masks)[0][0]
    assert cls_logits.dtype == torch.float16 and torch.isfinite(cls_logits).all()
    assert (cls_logits[0, 2] < -6e4).all() and (cls_logits[1, 1:] < -6e4).all()
    assert (cls_logits.float().sigmoid()[masks == 0] == 0).all()
    loss = CrossEntropyLoss(use_sigmoid=True, reduction='none')(
        cls_logits.float(), torch.zeros_like(cls_logits, dtype=torch.float32)
    )
    assert torch.isfinite(loss).all()


# ------------------------------------------------------------------ default device
@pytest.fixture
def default_device_meta():
    """Make torch's default device 'meta' for the test body, so that a tensor created in a
    hot path without ``device=`` lands on another device than the model's, as it does on a
    GPU (where the default stays the CPU); mixing the two then raises."""
    torch.set_default_device('meta')
    try:
        yield
    finally:
        torch.set_default_device(None)


def _train_step(model, data):
    losses = model(data['inputs'], data['data_samples'], mode='loss')
    sum(losses.values()).backward()
    return losses


def test_training_steps_make_no_tensor_on_the_default_device(tiny_clip_dir, request):
    """Loss and backward of both model families with the default device elsewhere (CPU
    only: it simulates what CUDA would reveal). ``torch.as_tensor(tensor)`` and the
    tokenizer follow the default device under this simulation (not on a GPU), so the
    inputs are prepared and the text embeddings cached beforehand."""
    from tests.test_models.test_yolo_world_integration import detector_cfg

    yolox = build_rotated_yolox('tiny')
    yolox.train()
    yolox.bbox_head.use_l1 = True
    torch.manual_seed(0)
    world = MODELS.build(detector_cfg(0.33, 0.125, 256, tiny_clip_dir, num_train_classes=3))
    world.init_weights()
    world.train()
    yolox_data = yolox.data_preprocessor(_rotated_batch(), True)
    world_data = world.data_preprocessor(_world_batch(), training=True)
    world.backbone.text_model(world_data['data_samples']['texts'])  # fills the cache
    request.getfixturevalue('default_device_meta')
    for model, data in ((yolox, yolox_data), (world, world_data)):
        losses = _train_step(model, data)
        assert all(v.device.type == 'cpu' and torch.isfinite(v) for v in losses.values())
        assert all(p.grad is None or p.grad.device.type == 'cpu' for p in model.parameters())
