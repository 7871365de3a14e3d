"""browse_dataset.py on COCO / YOLO-World configs: boxes, polygon masks and the sample's texts."""

import importlib.util
import json
import os.path as osp

import cv2
import numpy as np
import pytest
import torch

from ai4rs.datasets.preparation.synthetic_coco import CLASSES, PALETTE, generate_dataset
from ai4rs.datasets.utils import yolov5_collate
from ai4rs.registry import DATASETS
from ai4rs.structures import DetDataSample
from ai4rs.structures.bbox import HorizontalBoxes
from ai4rs.structures.mask import PolygonMasks
from ai4rs.utils.cli import config_from_args, load_config
from ai4rs.visualization import DetLocalVisualizer, label_names
from tests.conftest import REPO_ROOT

QUICKSTART = osp.join(
    REPO_ROOT, 'configs', 'yolo_world_v2', 'yolo_world_v2_quickstart_synthetic.py'
)


def load_tool():
    path = osp.join(REPO_ROOT, 'tools', 'analysis_tools', 'browse_dataset.py')
    spec = importlib.util.spec_from_file_location('ai4rs_browse_dataset_tool', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('coco') / 'syn'
    generate_dataset(str(root), num_train=2, num_val=2, img_size=128, seed=4)
    return root


def cfg_options(root):
    """The quick-start train pipeline on ``root`` with masks kept and no photometric or flip
    randomness (HSV with zero deltas is a fixed BGR -> HSV -> BGR round trip)."""
    return [
        f'train_dataloader.dataset.dataset.data_root={root}/',
        f'train_dataloader.dataset.class_text_path={root}/texts/class_texts.json',
        'train_dataloader.dataset.pipeline.1.with_mask=True',
        'train_dataloader.dataset.pipeline.4.hue_delta=0',
        'train_dataloader.dataset.pipeline.4.saturation_delta=0',
        'train_dataloader.dataset.pipeline.4.value_delta=0',
        'train_dataloader.dataset.pipeline.5.prob=0.0',
        f'val_dataloader.dataset.dataset.data_root={root}/',
        f'val_dataloader.dataset.class_text_path={root}/texts/class_texts.json',
    ]


def build_dataset(root, phase='train', pipeline=None):
    """The dataset the tool builds for ``phase`` (``pipeline``: edits its pipeline list)."""
    tool = load_tool()
    cfg = config_from_args(tool.parse_args([QUICKSTART, '--cfg-options', *cfg_options(root)]))
    dataset_cfg = cfg[f'{phase}_dataloader'].dataset
    if pipeline is not None:
        dataset_cfg.pipeline = pipeline(dataset_cfg.pipeline)
    return DATASETS.build(dataset_cfg)


def original_objects(root, split, img_path):
    """(class name, xyxy box) of each annotation of the image ``img_path``."""
    coco = json.loads((root / 'annotations' / f'instances_{split}.json').read_text())
    image = next(i for i in coco['images'] if i['file_name'] == osp.basename(img_path))
    names = {c['id']: c['name'] for c in coco['categories']}
    out = []
    for ann in coco['annotations']:
        if ann['image_id'] == image['id']:
            x, y, w, h = ann['bbox']
            out.append((names[ann['category_id']], np.array([x, y, x + w, y + h])))
    return out


def to_pipeline_pixels(box, meta):
    top, _, left, _ = meta['pad_param']
    sx, sy = meta['scale_factor']
    return box * [sx, sy, sx, sy] + [left, top, left, top]


def test_label_names_follow_remapped_texts(data_root):
    """After RandomLoadText the labels index the sample's shuffled texts: each box is named
    (and coloured) as the class of the annotation it comes from."""
    import random

    dataset = build_dataset(data_root)
    visualizer = DetLocalVisualizer()
    visualizer.dataset_meta = dataset.metainfo
    remapped = checked = 0
    for seed in range(4):
        random.seed(seed)
        np.random.seed(seed)
        for i in range(len(dataset)):
            sample = dataset[i]['data_samples']
            names = label_names(sample, CLASSES)
            assert names == list(sample.texts)
            gt = sample.gt_instances
            labels = gt.labels.tolist()
            colors = visualizer._label_colors(labels, names)
            objects = original_objects(data_root, 'train', sample.img_path)
            for box, label, color in zip(gt.bboxes.tensor.numpy(), labels, colors):
                # the annotation this box comes from (same place after the letterbox)
                dist = [
                    np.abs(to_pipeline_pixels(b, sample.metainfo) - box).max() for _, b in objects
                ]
                name = objects[int(np.argmin(dist))][0]
                assert min(dist) < 0.05
                assert names[label] == name
                assert tuple(color) == PALETTE[CLASSES.index(name)]
                remapped += CLASSES[label] != name
                checked += 1
    assert checked > 0 and remapped > 0  # the dataset's class order would have named wrongly
    # without texts, the dataset's classes name the labels
    assert label_names(DetDataSample(), CLASSES) == list(CLASSES)
    assert label_names(None, None) is None


def test_browse_coco_draws_boxes_masks_and_texts(data_root, tmp_path, monkeypatch):
    tool = load_tool()
    drawn_texts, drawn_masks = [], []
    orig_draw_texts = DetLocalVisualizer.draw_texts
    orig_draw_masks = DetLocalVisualizer.draw_masks
    orig_add = DetLocalVisualizer.add_datasample
    samples = []

    def record_texts(self, texts, *args, **kwargs):
        drawn_texts.append(list(texts))
        return orig_draw_texts(self, texts, *args, **kwargs)

    def record_masks(self, masks, colors):
        drawn_masks.append(masks)
        return orig_draw_masks(self, masks, colors)

    def record_add(self, name, image, data_sample=None, **kwargs):
        samples.append(data_sample)
        return orig_add(self, name, image, data_sample=data_sample, **kwargs)

    monkeypatch.setattr(DetLocalVisualizer, 'draw_texts', record_texts)
    monkeypatch.setattr(DetLocalVisualizer, 'draw_masks', record_masks)
    monkeypatch.setattr(DetLocalVisualizer, 'add_datasample', record_add)
    out = tmp_path / 'vis'
    tool.main(
        [
            QUICKSTART,
            '--output-dir',
            str(out),
            '--not-show',
            '--cfg-options',
            *cfg_options(data_root),
        ]
    )

    files = sorted(out.iterdir())
    assert len(files) == 2 and len(samples) == 2 and len(drawn_texts) == 2
    reference = build_dataset(data_root)  # same geometry: the pipeline has no randomness left
    for k, (path, sample) in enumerate(zip(files, samples)):
        drawn = cv2.imread(str(path))
        assert drawn is not None, path
        drawn = drawn[..., ::-1].astype(int)  # RGB
        item = reference[k]
        pipeline_img = item['inputs'].permute(1, 2, 0).numpy()[..., ::-1].astype(int)
        assert drawn.shape == pipeline_img.shape == (256, 256, 3)
        gt = sample.gt_instances
        np.testing.assert_allclose(
            gt.bboxes.tensor.numpy(), item['data_samples'].gt_instances.bboxes.tensor.numpy()
        )
        # the label strings drawn are the sample's own texts
        assert drawn_texts[k] == [sample.texts[lb] for lb in gt.labels.tolist()]
        # its polygon masks were drawn
        assert isinstance(drawn_masks[k], PolygonMasks) and len(drawn_masks[k]) == len(gt)
        # along each box edge the pixels changed towards the class colour (alpha-blended)
        changed = np.abs(drawn - pipeline_img).sum(-1) > 40
        for box, label in zip(gt.bboxes.tensor.numpy(), gt.labels.tolist()):
            color = np.array(PALETTE[CLASSES.index(sample.texts[label])])
            x1, y1, x2, y2 = box
            points = [
                (x, y)
                for t in np.linspace(0.1, 0.9, 9)
                for x, y in (
                    (x1 + t * (x2 - x1), y1),
                    (x1 + t * (x2 - x1), y2),
                    (x1, y1 + t * (y2 - y1)),
                    (x2, y1 + t * (y2 - y1)),
                )
            ]
            good = 0
            for x, y in points:
                xi, yi = int(np.clip(round(x), 1, 254)), int(np.clip(round(y), 1, 254))
                win = (slice(yi - 1, yi + 2), slice(xi - 1, xi + 2))
                expected = 0.8 * color + 0.2 * pipeline_img[win]
                close = np.abs(drawn[win] - expected).sum(-1) < 60
                good += bool((close & changed[win]).any())
            assert good >= 0.8 * len(points), (box, good)


def test_val_phase_maps_boxes_loaded_after_the_letterbox(data_root, tmp_path):
    """The recipe's test pipeline loads annotations after resizing (original pixels); the
    tool maps them with scale_factor / pad_param onto the image, where a pipeline that loads
    them before the letterbox puts them."""
    tool = load_tool()
    cfg = load_config(QUICKSTART)
    assert tool.annotations_follow_resize(cfg.val_dataloader.dataset.pipeline)
    assert not tool.annotations_follow_resize(cfg.train_dataloader.dataset.pipeline)

    def load_first(pipeline):
        steps = list(pipeline)
        load = next(s for s in steps if s['type'] == 'LoadAnnotations')
        steps.remove(load)
        steps.insert(1, dict(load, with_mask=True))
        return steps

    def with_masks(pipeline):
        return [dict(s, with_mask=True) if s['type'] == 'LoadAnnotations' else s for s in pipeline]

    before = build_dataset(data_root, 'val', load_first)
    after = build_dataset(data_root, 'val', with_masks)
    for i in range(len(after)):
        mapped = tool.map_gt_to_image(after[i]['data_samples'])
        ref = before[i]['data_samples'].gt_instances
        np.testing.assert_allclose(
            mapped.gt_instances.bboxes.tensor.numpy(), ref.bboxes.tensor.numpy(), atol=1e-3
        )
        for got, want in zip(mapped.gt_instances.masks.masks, ref.masks.masks):
            np.testing.assert_allclose(got[0], want[0], atol=1e-3)
        # the original sample is untouched
        assert not torch.equal(
            after[i]['data_samples'].gt_instances.bboxes.tensor, mapped.gt_instances.bboxes.tensor
        )
    out = tmp_path / 'val'
    tool.main(
        [
            QUICKSTART,
            '--phase',
            'val',
            '--output-dir',
            str(out),
            '--not-show',
            '--cfg-options',
            *cfg_options(data_root),
        ]
    )
    assert len(list(out.iterdir())) == 2


def test_pack_det_inputs_keeps_polygon_masks_and_collate_rasterises_them():
    from ai4rs.datasets.transforms import PackDetInputs

    square = np.array([2.0, 2, 10, 2, 10, 10, 2, 10])
    tri = np.array([0.0, 0, 6, 0, 0, 6])
    results = dict(
        img=np.zeros((16, 20, 3), np.uint8),
        gt_bboxes=HorizontalBoxes(torch.tensor([[2.0, 2, 10, 10], [0, 0, 6, 6]])),
        gt_bboxes_labels=np.array([1, 0]),
        gt_ignore_flags=np.array([False, True]),
        gt_masks=PolygonMasks([[square], [tri]], 16, 20),
    )
    packed = PackDetInputs(meta_keys=())(results)
    gt = packed['data_samples'].gt_instances
    ignored = packed['data_samples'].ignored_instances
    assert isinstance(gt.masks, PolygonMasks) and len(gt.masks) == 1
    np.testing.assert_array_equal(gt.masks.masks[0][0], square)
    np.testing.assert_array_equal(ignored.masks.masks[0][0], tri)
    batch = yolov5_collate([packed])
    masks = batch['data_samples']['masks']
    assert masks.shape == (1, 16, 20) and masks.dtype == torch.bool
    # the 8 x 8 square, rasterised (pycocotools covers its boundary pixels: 8 or 9 per side)
    ys, xs = torch.nonzero(masks[0], as_tuple=True)
    assert 2 <= int(xs.min()) and int(xs.max()) <= 10 and 2 <= int(ys.min()) <= int(ys.max())
    assert 64 <= int(masks.sum()) <= 81
