"""YOLOWorldDetector's ``use_syncbn``: SyncBatchNorm with several processes on an accelerator,
plain BatchNorm with several CPU processes (PyTorch's DistributedDataParallel refuses
SyncBatchNorm in a CPU module: "SyncBatchNorm layers only work with GPU modules")."""

import os.path as osp

import pytest
from mmengine.config import Config
from torch import nn

from ai4rs.registry import MODELS
from tests.conftest import REPO_ROOT

pytest.importorskip('transformers')

CONFIG = osp.join(REPO_ROOT, 'configs', 'yolo_world_v2', 'yolo_world_v2_quickstart_synthetic.py')


def _norm_types(model: nn.Module) -> set[type]:
    return {type(m) for m in model.modules() if isinstance(m, nn.modules.batchnorm._NormBase)}


@pytest.mark.parametrize(
    'world_size,device,expected',
    [
        (1, 'cpu', nn.BatchNorm2d),
        (2, 'cpu', nn.BatchNorm2d),
        (1, 'cuda', nn.BatchNorm2d),
        (2, 'cuda', nn.SyncBatchNorm),
    ],
)
def test_syncbn_only_for_several_processes_on_an_accelerator(
    world_size, device, expected, tiny_clip_dir, monkeypatch
):
    import ai4rs.models.detectors.yolo_world as yolo_world
    from ai4rs.utils import register_all_modules

    register_all_modules(init_default_scope=False)
    monkeypatch.setattr(yolo_world, 'get_world_size', lambda: world_size)
    monkeypatch.setattr(yolo_world, 'get_device', lambda: device)
    cfg = Config.fromfile(CONFIG)
    cfg.model.backbone.text_model.model_name = tiny_clip_dir
    model = MODELS.build(cfg.model)
    assert _norm_types(model) == {expected}
