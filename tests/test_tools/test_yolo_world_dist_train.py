"""tools/dist_train.sh trains the YOLO-World v2 quick-start config with 2 CPU processes.

Real torchrun, real gloo process group, CPU DistributedDataParallel, the ordinary Runner: the
quick-start config (configs/yolo_world_v2/yolo_world_v2_quickstart_synthetic.py) on a generated
COCO-format set of 8 training and 4 validation images, its data paths and text model overridden
on the command line the way tools/quickstart_yolo_world.py's ``build_config`` sets them. Changed
for time: 1 epoch (checkpoint and validation at its end, as the config does at its last epoch),
batch 2 per process, no dataloader worker processes, and the recipe's schedule length
(``param_scheduler.max_epochs``) matched to the one epoch as ``--epochs`` does; the score
threshold is 0 because an untrained YOLO-World head scores ~1e-4 (its prior bias), below the
config's 0.01, and CocoMetric reports nothing without detections.
"""

import os.path as osp
import re

import pytest

from tests.conftest import REPO_ROOT, free_port, run_cmd

CONFIG = osp.join(REPO_ROOT, 'configs', 'yolo_world_v2', 'yolo_world_v2_quickstart_synthetic.py')
DIST_TRAIN = osp.join(REPO_ROOT, 'tools', 'dist_train.sh')


def quickstart_overrides(data_root: str, text_model: str) -> list[str]:
    """``--cfg-options`` items pointing the quick-start config at ``data_root`` (a generated
    synthetic COCO set) and ``text_model``: the keys ``build_config`` of
    tools/quickstart_yolo_world.py sets."""
    data_root = osp.abspath(data_root) + '/'
    texts = osp.join(data_root, 'texts', 'class_texts.json')
    val_ann = osp.join(data_root, 'annotations', 'instances_val.json')
    options = [f'model.backbone.text_model.model_name={text_model}']
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        options += [
            f'{key}.dataset.dataset.data_root={data_root}',
            f'{key}.dataset.class_text_path={texts}',
        ]
    options += [f'val_evaluator.ann_file={val_ann}', f'test_evaluator.ann_file={val_ann}']
    return options


@pytest.mark.slow
def test_dist_train_quickstart_yolo_world_two_cpu_processes(tmp_path, tiny_clip_dir):
    from ai4rs.datasets.preparation.synthetic_coco import generate_dataset
    from ai4rs.utils import load_checkpoint_safely

    data = tmp_path / 'data'
    generate_dataset(str(data), num_train=8, num_val=4, img_size=256)
    options = quickstart_overrides(str(data), tiny_clip_dir) + [
        'train_cfg.max_epochs=1',
        'train_cfg.val_interval=1',
        'default_hooks.param_scheduler.max_epochs=1',
        'default_hooks.checkpoint.interval=1',
        'train_dataloader.batch_size=2',
        'train_dataloader.num_workers=0',
        'val_dataloader.batch_size=2',
        'val_dataloader.num_workers=0',
        'model.test_cfg.score_thr=0.0',
    ]
    proc = run_cmd(
        ['bash', DIST_TRAIN, CONFIG, '2', '--work-dir', 'dist', '--cfg-options', *options],
        cwd=tmp_path,
        env=dict(PORT=str(free_port())),
    )
    log = proc.stdout + proc.stderr
    # both processes ran (each logs its backend choice) as one gloo group of world size 2
    assert log.count('distributed backend: gloo') == 2, log[-3000:]
    assert 'Distributed training: True' in log and 'GPU number: 2' in log, log[-3000:]
    # CPU processes keep plain BatchNorm (DDP refuses SyncBatchNorm on CPU)
    assert 'training on CPU keeps per-process BatchNorm' in log
    # each process trains on half of the 8 images: 2 iterations of batch 2
    assert 'Epoch(train) [1][2/2]' in log, log[-3000:]
    # validation on the 4 held-out images, gathered from both processes
    ap50 = re.search(r'coco/bbox_mAP_50: (-?[0-9.]+)', log)
    assert ap50 is not None, log[-3000:]
    assert 0.0 <= float(ap50.group(1)) <= 1.0

    ckpt_path = tmp_path / 'dist' / 'epoch_1.pth'
    ckpt = load_checkpoint_safely(str(ckpt_path))
    assert ckpt['meta']['epoch'] == 1 and ckpt['meta']['iter'] == 2
    # DDP's 'module.' prefix is not saved; the checkpoint loads into the config's model
    from ai4rs.apis import init_detector

    model = init_detector(
        CONFIG,
        str(ckpt_path),
        device='cpu',
        cfg_options={'model.backbone.text_model.model_name': tiny_clip_dir},
        inference_mode=False,  # the eager model: its state dict is the checkpoint's
    )
    assert not any(k.startswith('module.') for k in ckpt['state_dict'])
    state = model.state_dict()
    assert set(state) == set(ckpt['state_dict'])
    for key, value in ckpt['state_dict'].items():
        assert state[key].shape == value.shape
        assert state[key].equal(value.to(state[key].dtype)), key
