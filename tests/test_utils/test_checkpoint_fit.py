"""A checkpoint that does not fit the model is refused with a summary, unless partial loading
is asked for; fine-tuning with another class count skips only the class layers."""

import glob
import importlib.util
import os.path as osp

import pytest
import torch
from torch import nn

from ai4rs.datasets.preparation.synthetic_dota import generate_dataset
from ai4rs.utils.checkpoint import (
    CheckpointMismatchError,
    compare_state_dicts,
    fit_checkpoint_to_model,
    is_class_layer_change,
)
from tests.conftest import REPO_ROOT

CONFIGS = osp.join(REPO_ROOT, 'configs', 'rotated_yolox')
S_CONFIG = osp.join(CONFIGS, 'rotated_yolox_s_300e_dota_le90.py')
T_CONFIG = osp.join(CONFIGS, 'rotated_yolox_t_300e_dota_le90.py')
QUICKSTART = osp.join(CONFIGS, 'rotated_yolox_quickstart_synthetic.py')


class _Net(nn.Module):
    def __init__(self, width=4, classes=3):
        super().__init__()
        self.body = nn.Conv2d(3, width, 3)  # width*27 + width elements
        self.conv_cls = nn.Conv2d(width, classes, 1)  # classes*width + classes


def test_compare_counts_and_class_layer_rule():
    model, ckpt = _Net(4, 3).state_dict(), _Net(4, 5).state_dict()
    ckpt['extra.weight'] = torch.zeros(2)
    del ckpt['body.bias']
    fit = compare_state_dicts(model, ckpt)
    assert fit.matched == ['body.weight']
    assert fit.missing == ['body.bias']
    assert fit.unexpected == ['extra.weight']
    assert [k for k, _, _ in fit.wrong_shape] == ['conv_cls.weight', 'conv_cls.bias']
    assert fit.class_layers == ['conv_cls.weight', 'conv_cls.bias']
    # model: 108 + 4 + 12 + 3 = 127 elements; not provided: 4 (bias) + 15 (class layers)
    assert fit.model_numel == 127 and fit.missing_numel == 19
    # a change of input channels is not a class-count change, nor is an unnamed layer
    assert not is_class_layer_change('head.conv_cls.weight', (3, 8, 1, 1), (3, 4, 1, 1))
    assert not is_class_layer_change('head.conv_reg.weight', (5, 4, 1, 1), (3, 4, 1, 1))


def test_class_change_skipped_only_when_allowed():
    model = _Net(4, 3)
    ckpt = {'state_dict': _Net(4, 5).state_dict()}
    with pytest.raises(CheckpointMismatchError, match='trained for 5 classes and the model has 3'):
        fit_checkpoint_to_model(model, {'state_dict': dict(ckpt['state_dict'])})
    fit_checkpoint_to_model(model, ckpt, allow_class_change=True)
    assert sorted(ckpt['state_dict']) == ['body.bias', 'body.weight']  # class layers dropped


def test_missing_share_threshold():
    model = _Net(4, 3)
    only_head = {k: v for k, v in model.state_dict().items() if k.startswith('conv_cls')}
    with pytest.raises(CheckpointMismatchError, match=r'88\.2% of the model'):  # 112 / 127
        fit_checkpoint_to_model(model, {'state_dict': dict(only_head)})
    fit = fit_checkpoint_to_model(model, {'state_dict': dict(only_head)}, allow_partial_load=True)
    assert fit.missing == ['body.weight', 'body.bias']


def _tool(name):
    spec = importlib.util.spec_from_file_location(
        f'_tool_{name}', osp.join(REPO_ROOT, 'tools', f'{name}.py')
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _build(config, **head):
    from mmengine.config import Config

    from ai4rs.registry import MODELS
    from ai4rs.utils import register_all_modules

    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(config)
    cfg.model.bbox_head.update(head)
    return MODELS.build(cfg.model)


def test_tools_test_refuses_t_checkpoint_on_s_config(tmp_path, capsys):
    generate_dataset(str(tmp_path / 'data'), num_train=0, num_val=2)
    ckpt = tmp_path / 'yolox_t.pth'
    torch.save({'state_dict': _build(T_CONFIG).state_dict(), 'meta': {}}, ckpt)
    opts = [
        '--cfg-options',
        f'test_dataloader.dataset.data_root={tmp_path}/data/',
        'test_dataloader.dataset.data_prefix.img_path=val/images/',
        'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False',
        'test_dataloader.dataset.pipeline.1.scale=(256,256)',
        'test_dataloader.dataset.pipeline.2.size=(256,256)',
        f'test_evaluator.outfile_prefix={tmp_path}/Task1',
    ]
    test_tool = _tool('test')
    with pytest.raises(SystemExit) as exit_info:
        test_tool.main([S_CONFIG, str(ckpt), '--work-dir', str(tmp_path / 'w1'), *opts])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert f'checkpoint {ckpt} does not fit the model' in err
    assert '0 missing, 0 unexpected, 382 wrong shape' in err
    assert (
        'backbone.stem.conv.conv.weight: checkpoint (24, 12, 3, 3) vs model (32, 12, 3, 3)' in err
    )
    assert 'different model size' in err and '--allow-partial-load' in err
    assert not glob.glob(str(tmp_path / 'Task1' / '*.zip'))

    # the explicit opt-in loads what fits and runs
    test_tool.main(
        [S_CONFIG, str(ckpt), '--work-dir', str(tmp_path / 'w2'), '--allow-partial-load', *opts]
    )
    assert glob.glob(str(tmp_path / 'Task1' / '*.zip'))


def test_fine_tuning_with_another_class_count_skips_class_layers(tmp_path):
    from mmengine.config import Config
    from mmengine.runner import Runner

    from ai4rs.utils.config import add_checkpoint_fit_hook

    generate_dataset(str(tmp_path / 'data'), num_train=2, num_val=0)
    pretrained = _build(QUICKSTART, num_classes=15).state_dict()
    ckpt = tmp_path / 'pretrained_15cls.pth'
    torch.save({'state_dict': pretrained, 'meta': {}}, ckpt)

    cfg = add_checkpoint_fit_hook(Config.fromfile(QUICKSTART))
    cfg.work_dir = str(tmp_path / 'work')
    cfg.load_from = str(ckpt)
    cfg.train_dataloader.update(batch_size=2, num_workers=0, persistent_workers=False)
    cfg.train_dataloader.dataset.data_root = f'{tmp_path}/data/'
    cfg.train_cfg.update(max_epochs=1, val_interval=10)
    cfg.optim_wrapper.optimizer.update(lr=0.0, weight_decay=0.0)  # keep the loaded weights
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    runner = Runner.from_cfg(cfg)
    runner.train()
    log = open(glob.glob(str(tmp_path / 'work' / '*' / '*.log'))[0]).read()
    assert (
        '15 classes in the checkpoint, 3 in the model; skipped the class layers '
        'bbox_head.multi_level_conv_cls.0.weight' in log
    )
    trained = runner.model.state_dict()
    assert trained['bbox_head.multi_level_conv_cls.0.weight'].shape[0] == 3
    for key in ('backbone.stem.conv.conv.weight', 'bbox_head.multi_level_conv_reg.2.weight'):
        torch.testing.assert_close(trained[key], pretrained[key], rtol=0, atol=0)
