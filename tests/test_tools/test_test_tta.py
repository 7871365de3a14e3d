"""``tools/test.py --tta`` on the three quick-start configs: a tiny untrained model's
checkpoint, generated data, the config's own ``tta_model`` / ``tta_pipeline``.

Each run must evaluate (the metric is logged) and dump merged predictions: one per image,
boxes of the family's type, at most ``max_per_img``, best first, carried by the unflipped
view's sample (YOLO-World: with the texts its labels index). The merge itself is checked
against hand merges in tests/test_models/test_det_tta.py.
"""

import glob
import importlib.util
import json
import os.path as osp
import pickle

import pytest
import torch

from ai4rs.registry import MODELS
from ai4rs.utils.config import load_config
from tests.conftest import REPO_ROOT

CONFIGS = osp.join(REPO_ROOT, 'configs')
ROTATED_YOLOX = osp.join(CONFIGS, 'rotated_yolox', 'rotated_yolox_quickstart_synthetic.py')
YOLO_WORLD = osp.join(CONFIGS, 'yolo_world_v2', 'yolo_world_v2_quickstart_synthetic.py')
YOLO_WORLD_ROTATED = osp.join(
    CONFIGS, 'yolo_world_rotated', 'yolo_world_rotated_quickstart_synthetic.py'
)
LOADER = ['test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False']


@pytest.fixture(scope='module')
def test_tool():
    spec = importlib.util.spec_from_file_location(
        'test_tool_for_tta', osp.join(REPO_ROOT, 'tools', 'test.py')
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _checkpoint(config: str, path, options: dict | None = None) -> str:
    """A tiny untrained model of ``config`` saved as a Runner checkpoint."""
    cfg = load_config(config)
    if options:
        cfg.merge_from_dict(options)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, str(path))
    return str(path)


def _run(test_tool, config, ckpt, work_dir, out, options) -> dict:
    """``tools/test.py CONFIG CKPT --tta --out OUT``; returns the logged metrics."""
    test_tool.main(
        [config, ckpt, '--tta', '--work-dir', str(work_dir), '--out', str(out)]
        + ['--cfg-options', *LOADER, *options]
    )
    (log,) = glob.glob(osp.join(str(work_dir), '*', '*.json'))
    with open(log) as f:
        return json.loads(f.readline())


def _check_dump(out, num_images: int, box_dim: int, max_per_img: int, texts=None) -> None:
    with open(out, 'rb') as f:
        results = pickle.load(f)
    assert len(results) == num_images
    assert len({r['img_id'] for r in results}) == num_images
    for result in results:
        pred = result['pred_instances']
        assert 0 < pred['bboxes'].shape[0] <= max_per_img
        assert pred['bboxes'].shape[1] == box_dim
        assert pred['scores'].shape == pred['labels'].shape == (pred['bboxes'].shape[0],)
        assert torch.all(pred['scores'][:-1] >= pred['scores'][1:])
        assert result['flip'] is False
        if texts is not None:
            assert result['texts'] == texts
            assert int(pred['labels'].max()) < len(texts)


@pytest.mark.slow
def test_rotated_yolox_quickstart_with_tta(test_tool, tmp_path):
    from ai4rs.datasets.preparation.synthetic_dota import generate_dataset

    data = tmp_path / 'data'
    generate_dataset(str(data), num_train=1, num_val=2)
    ckpt = _checkpoint(ROTATED_YOLOX, tmp_path / 'model.pth')
    metrics = _run(
        test_tool,
        ROTATED_YOLOX,
        ckpt,
        tmp_path / 'work',
        tmp_path / 'out.pkl',
        [
            f'test_dataloader.dataset.data_root={data}/',
            # an untrained model scores ~1e-4: keep every candidate to have detections
            'model.test_cfg.score_thr=0.0',
            'tta_model.tta_cfg.max_per_img=50',
        ],
    )
    assert 0.0 <= metrics['dota/mAP'] <= 1.0 and 0.0 <= metrics['dota/AP50'] <= 1.0
    _check_dump(tmp_path / 'out.pkl', num_images=2, box_dim=5, max_per_img=50)


@pytest.mark.slow
def test_yolo_world_v2_quickstart_with_tta(test_tool, tmp_path, tiny_clip_dir):
    from ai4rs.datasets.preparation.synthetic_coco import generate_dataset

    data = tmp_path / 'data'
    # not square: the letterbox pads, unevenly at some of the three TTA scales
    generate_dataset(str(data), num_train=1, num_val=2, img_size=(250, 190))
    clip = {'model.backbone.text_model.model_name': tiny_clip_dir}
    ckpt = _checkpoint(YOLO_WORLD, tmp_path / 'model.pth', clip)
    metrics = _run(
        test_tool,
        YOLO_WORLD,
        ckpt,
        tmp_path / 'work',
        tmp_path / 'out.pkl',
        [
            f'test_dataloader.dataset.dataset.data_root={data}/',
            f'test_dataloader.dataset.class_text_path={data}/texts/class_texts.json',
            f'test_evaluator.ann_file={data}/annotations/instances_val.json',
            f'model.backbone.text_model.model_name={tiny_clip_dir}',
            'model.test_cfg.score_thr=0.0',
            'tta_model.tta_cfg.max_per_img=30',
        ],
    )
    assert 0.0 <= metrics['coco/bbox_mAP'] <= 1.0
    texts = ['red circle', 'blue square', 'green triangle', 'yellow star']
    _check_dump(tmp_path / 'out.pkl', num_images=2, box_dim=4, max_per_img=30, texts=texts)


@pytest.mark.slow
def test_rotated_yolo_world_quickstart_with_tta(test_tool, tmp_path, tiny_clip_dir):
    from ai4rs.datasets.preparation.synthetic_dota import generate_dataset, write_class_texts

    data = tmp_path / 'data'
    generate_dataset(str(data), num_train=1, num_val=2)
    write_class_texts(str(data))
    clip = {'model.backbone.text_model.model_name': tiny_clip_dir}
    ckpt = _checkpoint(YOLO_WORLD_ROTATED, tmp_path / 'model.pth', clip)
    metrics = _run(
        test_tool,
        YOLO_WORLD_ROTATED,
        ckpt,
        tmp_path / 'work',
        tmp_path / 'out.pkl',
        [
            f'test_dataloader.dataset.dataset.data_root={data}/',
            f'test_dataloader.dataset.class_text_path={data}/texts/class_texts.json',
            f'model.backbone.text_model.model_name={tiny_clip_dir}',
            'model.test_cfg.score_thr=0.0',
            'model.test_cfg.nms_pre=200',
            'tta_model.tta_cfg.max_per_img=30',
        ],
    )
    assert 0.0 <= metrics['dota/mAP'] <= 1.0
    texts = ['vehicle', 'pool', 'court']
    _check_dump(tmp_path / 'out.pkl', num_images=2, box_dim=5, max_per_img=30, texts=texts)
