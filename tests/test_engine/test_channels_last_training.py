"""``channels_last = True`` in a config: the Runner converts the model to the channels-last
memory format before it is wrapped and before the optimizer and the EMA copy are built from
it (ai4rs.models.utils.to_channels_last); training gives the weights of a contiguous run (up
to summation order), and the checkpoint loads into a contiguous model."""

import copy

import torch
from mmengine.config import Config
from torch import nn
from torch.utils.data import DataLoader

from ai4rs.engine.runner import Runner
from ai4rs.models.utils import is_channels_last, to_channels_last

CL = torch.channels_last


class _Detector(nn.Module):
    """A backbone (conv, BN, SiLU, conv) taking the (B, 3, H, W) images and a head; the loss
    pulls the pooled features towards a target."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.backbone = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.SiLU(), nn.Conv2d(8, 8, 3)
        )
        self.head = nn.Conv2d(8, 4, 1)
        self.seen = []  # what the first conv gets, after any hook on the backbone
        self.backbone[0].register_forward_pre_hook(self._record)

    def _record(self, module, args):
        self.seen.append(args[0].is_contiguous(memory_format=CL))

    def train_step(self, data, optim_wrapper):
        images = torch.stack(data)
        out = self.head(self.backbone(images)).mean(dim=(2, 3))
        loss = ((out - torch.tensor([0.5, -0.5, 1.0, 0.0])) ** 2).sum()
        optim_wrapper.update_params(loss)
        return dict(loss=loss)


def _images():
    gen = torch.Generator().manual_seed(1)
    return [torch.rand(3, 12, 10, generator=gen) for _ in range(4)]


def _train(work_dir, channels_last: bool):
    model = _Detector()
    cfg = Config(dict(channels_last=True)) if channels_last else None
    runner = Runner(
        model=model,
        work_dir=str(work_dir),
        train_dataloader=DataLoader(_images(), batch_size=2, collate_fn=list),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9)),
        train_cfg=dict(by_epoch=True, max_epochs=2),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2)),
        custom_hooks=[dict(type='EMAHook', momentum=0.5)],
        default_scope='ai4rs',
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
        cfg=cfg,
    )
    # converted at build, before anything else holds the parameters
    assert is_channels_last(runner.model) == channels_last
    assert runner.model.backbone[0].weight.is_contiguous(memory_format=CL) == channels_last
    runner.train()
    optimizer = runner.optim_wrapper.optimizer
    params = {id(p) for group in optimizer.param_groups for p in group['params']}
    assert params == {id(p) for p in runner.model.parameters()}
    ema = next(h for h in runner.hooks if type(h).__name__ == 'EMAHook').ema_model.module
    return runner.model, ema


def test_training_in_channels_last_equals_contiguous(tmp_path):
    cl_model, cl_ema = _train(tmp_path / 'cl', True)
    ref_model, ref_ema = _train(tmp_path / 'ref', False)
    assert cl_model.seen and all(cl_model.seen)  # the backbone got channels-last images
    assert ref_model.seen and not any(ref_model.seen)
    assert cl_model.backbone[0].weight.is_contiguous(memory_format=CL)  # still, after steps
    assert cl_ema.backbone[0].weight.is_contiguous(memory_format=CL)
    for (name, a), b in zip(cl_model.state_dict().items(), ref_model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    moved = (cl_model.head.weight - _Detector().head.weight).abs().max()
    assert moved > 1e-3  # training did change the weights compared
    # the checkpoint (the EMA's channels-last tensors) loads strictly into a contiguous model
    ckpt = torch.load(tmp_path / 'cl' / 'epoch_2.pth', map_location='cpu', weights_only=False)
    plain = _Detector()
    plain.load_state_dict(ckpt['state_dict'])
    assert plain.backbone[0].weight.is_contiguous()
    for a, b in zip(plain.state_dict().values(), cl_ema.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_a_detector_in_channels_last_computes_the_same_losses_and_outputs():
    from tests.test_models.test_rotated_yolox_head import BOXES, _image_with_boxes, _sample
    from tests.test_models.yolox_builders import build_rotated_yolox

    model = build_rotated_yolox('tiny')
    cl = to_channels_last(copy.deepcopy(model))
    assert to_channels_last(cl) is cl  # a second call does nothing (one hook)
    assert len(cl.backbone._forward_pre_hooks) == 1
    weights = [p for p in cl.parameters() if p.dim() == 4]
    assert all(p.is_contiguous(memory_format=CL) for p in weights)
    assert any(not p.is_contiguous() for p in weights)
    inputs = _image_with_boxes(BOXES).repeat(2, 1, 1, 1)
    samples = [_sample(BOXES, [0, 1]), _sample(BOXES[:1], [1])]
    model.train(), cl.train()
    torch.manual_seed(0)
    ref = model.loss(inputs, samples)
    torch.manual_seed(0)
    got = cl.loss(inputs, samples)
    assert set(got) == set(ref)
    for name in ref:
        torch.testing.assert_close(got[name], ref[name], rtol=1e-4, atol=1e-5, msg=name)
    model.eval(), cl.eval()
    with torch.no_grad():
        for a, b in zip(model._forward(inputs), cl._forward(inputs)):
            for x, y in zip(a, b):
                torch.testing.assert_close(y, x, rtol=1e-4, atol=1e-5)


def test_yolo_world_in_channels_last_computes_the_same_losses(tiny_clip_dir):
    """YOLO-World: the backbone takes images and texts; the pre-hook converts the images only,
    and the losses (text-region contrast, assignment) equal the contiguous model's."""
    from tests.test_models.test_yolo_world_detector import TRAIN_TEXTS, list_batch
    from tests.yolo_world_builders import build_tiny_detector

    model = build_tiny_detector(tiny_clip_dir)
    cl = to_channels_last(copy.deepcopy(model))
    assert cl.backbone.image_model.stem.conv.weight.is_contiguous(memory_format=CL)
    inputs, samples = list_batch(TRAIN_TEXTS)
    model.train(), cl.train()
    ref = model.loss(inputs, copy.deepcopy(samples))
    got = cl.loss(inputs, copy.deepcopy(samples))
    assert set(got) == set(ref) and len(ref) >= 3
    for name in ref:
        torch.testing.assert_close(got[name], ref[name], rtol=1e-4, atol=1e-5, msg=name)
