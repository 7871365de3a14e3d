"""tools/analysis_tools/prompt_tuning_ap.py --mix-dataset: the training set it builds (the
tuning set concatenated with a set labelling the untuned classes, each with its own texts)
and its argument checks. No training here (the measured run is in docs/yolo_world.md).

Planted bug this test was checked to fail on (then reverted): ``mix_in`` sizing the texts per
image by the tuning set's vocabulary (1) instead of the larger one (3).
"""

import importlib.util
import os.path as osp
import random

import pytest

from tests.conftest import REPO_ROOT

TOOL = osp.join(REPO_ROOT, 'tools', 'analysis_tools', 'prompt_tuning_ap.py')


@pytest.fixture(scope='module')
def tool():
    spec = importlib.util.spec_from_file_location('ai4rs_prompt_tuning_ap_tool', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mix_dataset_arguments(tool, capsys):
    args = tool.parse_args(
        ['ckpt.pth', '--text-model', 'clip', '--tune-classes', 'red circle', '--mix-dataset']
    )
    assert args.mix_dataset == 'data/synthetic_coco_mix'
    assert args.texts == ['crimson disc']
    args = tool.parse_args(['ckpt.pth', '--text-model', 'clip', '--tune-classes', 'red circle'])
    assert args.mix_dataset is None
    # every class tuned: nothing left for the mixed-in set to label
    with pytest.raises(SystemExit):
        tool.parse_args(['ckpt.pth', '--text-model', 'clip', '--mix-dataset', 'elsewhere'])
    assert 'none is left for the mixed-in set' in capsys.readouterr().err


def test_mix_in_builds_a_concat_of_own_vocabularies(tool, tmp_path):
    from mmengine.registry import DefaultScope

    from ai4rs.datasets.preparation.synthetic_coco import generate_dataset
    from ai4rs.registry import DATASETS
    from ai4rs.utils import register_all_modules
    from ai4rs.utils.config import load_config

    register_all_modules(init_default_scope=False)
    tune_root, mix_root = str(tmp_path / 'tune'), str(tmp_path / 'mix')
    generate_dataset(tune_root, num_train=2, num_val=1, img_size=64, seed=0)
    generate_dataset(mix_root, num_train=2, num_val=0, img_size=64, seed=1)
    untuned = ['blue square', 'green triangle', 'yellow star']
    new = (['red circle'], tool.write_texts(str(tmp_path / 'new.json'), [['crimson disc']]))
    rest = (untuned, tool.write_texts(str(tmp_path / 'rest.json'), [[c] for c in untuned]))
    cfg = tool.with_data(
        load_config(tool.WORLD_CONFIG), tune_root, new, new, str(tmp_path / 'work')
    )
    tool.mix_in(cfg, mix_root, rest)

    assert cfg.train_dataloader.dataset.type == 'ConcatDataset'
    assert cfg.model.num_train_classes == 3
    assert cfg.model.bbox_head.head_module.num_classes == 3
    assert cfg.model.train_cfg.assigner.num_classes == 3
    random.seed(0)
    with DefaultScope.overwrite_default_scope('ai4rs'):
        concat = DATASETS.build(cfg.train_dataloader.dataset)
        assert len(concat) == 4
        for idx in range(4):
            sample = concat[idx]['data_samples']
            assert len(sample.texts) == 3
            if idx < 2:  # the tuning set: its one new name, padded
                assert sorted(sample.texts) == ['', '', 'crimson disc']
                assert osp.dirname(sample.img_path) == osp.join(tune_root, 'train')
            else:  # the mixed-in set: the untuned classes by their original names
                assert sorted(sample.texts) == sorted(untuned)
                assert osp.dirname(sample.img_path) == osp.join(mix_root, 'train')
            assert all(sample.texts[lb] != '' for lb in sample.gt_instances.labels.tolist())
