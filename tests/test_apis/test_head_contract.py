"""The inference contract between detectors/heads and ``ai4rs.apis``.

A head family that ``ai4rs.apis`` has never heard of (``ToyCornerHead`` below, registered
by this test only) plugs into inference, sliced inference, ONNX export and the ONNX
runtime through the contract alone -- ``box_type``, ``decode_by_feat``,
``select_candidates`` (and the base class's ``postprocess_decoded``) -- and ``apis/`` reads
no private attribute of a model or head.

Checked against planted bugs: ``OnnxDetector.predict_one`` skipping the rescale (the
detections no longer equal the PyTorch ones), ``DecodedDetector`` returning the scores'
logits instead of the head's scores (ONNX vs PyTorch detections differ), and an ``apis``
module calling ``head._bbox_post_process`` (the AST check names the file and line).
"""

import ast
import os.path as osp
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.structures import InstanceData
from torch import nn

from ai4rs.models.dense_heads.base_dense_head import BaseDenseHead
from ai4rs.registry import MODELS
from ai4rs.structures.bbox import HorizontalBoxes
from tests.conftest import REPO_ROOT
from tests.yolo_world_infer_helpers import yolox_config

SIZE = 64
CLASSES = ('a', 'b', 'c')


@MODELS.register_module(force=True)
class ToyCornerHead(BaseDenseHead):
    """One level (stride 8): per cell a 1x1 conv predicts distances to the four box sides
    (softplus, in stride units) and K class logits. Only the contract is implemented."""

    box_type = HorizontalBoxes
    clip_to_image = True

    def __init__(self, num_classes, in_channels, train_cfg=None, test_cfg=None, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        from ai4rs.models.task_modules.prior_generators import MlvlPointGenerator

        self.num_classes = num_classes
        self.test_cfg = test_cfg
        self.prior_generator = MlvlPointGenerator([8], offset=0.5)
        self.conv = nn.Conv2d(in_channels, 4 + num_classes, 1)

    def forward(self, feats):
        out = self.conv(feats[0])
        return [out[:, :4]], [out[:, 4:]]

    def loss_by_feat(self, *args, **kwargs):
        raise NotImplementedError('inference only')

    def decode_by_feat(self, dist_maps, cls_maps):
        priors = self.flat_priors(cls_maps)  # (P, 4): x, y, stride, stride
        dists = nn.functional.softplus(self.flatten_levels(dist_maps, 4)) * priors[:, 2:3]
        xy = priors[:, :2]
        boxes = torch.cat([xy - dists[..., :2], xy + dists[..., 2:]], -1)
        return boxes, self.flatten_levels(cls_maps, self.num_classes).sigmoid()

    def select_candidates(self, boxes, scores, cfg):
        best, labels = scores.max(1)
        keep = best > cfg['score_thr']
        return InstanceData(
            bboxes=HorizontalBoxes(boxes[keep]), scores=best[keep], labels=labels[keep]
        )


def _toy_config() -> Config:
    """The tiny rotated YOLOX config of the inference tests with the toy head."""
    cfg = yolox_config(SIZE)
    cfg.model.bbox_head = dict(type='ToyCornerHead', num_classes=len(CLASSES), in_channels=16)
    cfg.model.data_preprocessor = dict(type='DetDataPreprocessor', pad_size_divisor=32)
    cfg.model.train_cfg = None
    cfg.model.test_cfg = dict(
        score_thr=0.3, nms=dict(type='nms', iou_threshold=0.5), max_per_img=50
    )
    cfg.test_dataloader.dataset.metainfo = dict(classes=CLASSES)
    return cfg


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    """(config path, checkpoint path, image path) of the toy family."""
    from ai4rs.utils import register_all_modules

    register_all_modules()
    tmp = tmp_path_factory.mktemp('toy')
    cfg = _toy_config()
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    with torch.no_grad():  # distinct scores, many confident cells: detections to compare
        model.bbox_head.conv.weight.normal_(0, 0.5)
        model.bbox_head.conv.bias[4:].fill_(0.5)
    config, ckpt = str(tmp / 'toy.py'), str(tmp / 'toy.pth')
    cfg.dump(config)
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    rng = np.random.default_rng(0)
    # square, so the export size (64 x 64) is the PyTorch model's input size too (a fixed-size
    # graph sees padding where the PyTorch model's input ends); scale factor 0.8
    img = (rng.random((80, 80, 3)) * 255).astype(np.uint8)
    img_path = str(tmp / 'scene.png')
    assert cv2.imwrite(img_path, img)
    return config, ckpt, img_path


def _same(a, b, atol=1e-4):
    pa, pb = a.pred_instances, b.pred_instances
    assert len(pa) == len(pb) > 0
    assert type(pa.bboxes) is type(pb.bboxes) is HorizontalBoxes
    torch.testing.assert_close(pa.bboxes.tensor, pb.bboxes.tensor, atol=atol, rtol=0)
    torch.testing.assert_close(pa.scores, pb.scores, atol=1e-5, rtol=0)
    assert torch.equal(pa.labels, pb.labels)


def test_new_head_family_runs_through_inference_and_predict(toy):
    from ai4rs.apis import inference_detector, init_detector
    from ai4rs.apis.pipeline import build_inference_pipeline, pipeline_input

    config, ckpt, img = toy
    model = init_detector(config, ckpt)
    assert model.box_type is HorizontalBoxes and model.takes_texts is False
    result = inference_detector(model, img)
    pred = result.pred_instances
    assert len(pred) > 0 and pred.scores.min() > 0.3
    # independent expectation: decode by hand from the raw outputs, undo the resize
    data = build_inference_pipeline(model.cfg, False, False)(pipeline_input(img, 0))
    batch = model.data_preprocessor(
        dict(inputs=[data['inputs']], data_samples=[data['data_samples']])
    )
    with torch.no_grad():
        (dist,), (cls,) = model(batch['inputs'], None, mode='tensor')
    h, w = cls.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
    cx, cy = (xs.flatten() + 0.5) * 8, (ys.flatten() + 0.5) * 8
    d = nn.functional.softplus(dist[0].flatten(1)) * 8
    sx, sy = batch['data_samples'][0].scale_factor
    assert (sx, sy) == pytest.approx((0.8, 0.8))
    boxes = torch.stack([cx - d[0], cy - d[1], cx + d[2], cy + d[3]], 1)
    boxes = boxes / torch.tensor([sx, sy, sx, sy])
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, 80)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, 80)
    best = cls[0].flatten(1).sigmoid().max(0).values
    top = int(best.argmax())
    torch.testing.assert_close(pred.scores[0], best[top])
    torch.testing.assert_close(pred.bboxes.tensor[0], boxes[top], atol=1e-4, rtol=0)


def test_new_head_family_sliced_inference(toy):
    from ai4rs.apis import inference_detector, inference_detector_by_patches, init_detector

    config, ckpt, img = toy
    model = init_detector(config, ckpt)
    # one patch covering the whole image: the same network input, the same detections up to
    # the merge NMS at 0.1
    sliced = inference_detector_by_patches(model, img, sizes=(80,), steps=(80,), progress=False)
    whole = inference_detector(model, img)
    assert isinstance(sliced.pred_instances.bboxes, HorizontalBoxes)
    assert sliced.ori_shape == (80, 80)
    assert len(sliced.pred_instances) > 0
    assert float(sliced.pred_instances.scores.max()) == pytest.approx(
        float(whole.pred_instances.scores.max()), abs=1e-6
    )


def test_new_head_family_exports_and_runs_in_onnxruntime(toy, tmp_path):
    pytest.importorskip('onnx')
    pytest.importorskip('onnxruntime')
    from ai4rs.apis import inference_detector, inference_detector_by_patches, init_detector
    from ai4rs.apis.deployment import OnnxDetector, Preprocessor, export_onnx

    config, ckpt, img = toy
    model = init_detector(config, ckpt)
    ref = inference_detector(model, img)
    for with_nms in (False, True):
        onnx_file = str(tmp_path / f'toy_{with_nms}.onnx')
        inputs, _ = Preprocessor(model.cfg, (SIZE, SIZE))(img)
        meta = export_onnx(model, inputs, onnx_file, with_nms=with_nms)
        assert meta == dict(
            box_type='hbox', img_size=[SIZE, SIZE], with_nms=with_nms, classes=list(CLASSES)
        )
        # init_detector takes the .onnx file where a checkpoint goes
        onnx_model = init_detector(config, onnx_file)
        assert isinstance(onnx_model, OnnxDetector)
        assert onnx_model.box_type is HorizontalBoxes and not onnx_model.takes_texts
        # with NMS in the graph: equal as long as the rescale is uniform (here 0.8 both ways)
        _same(inference_detector(onnx_model, img), ref)
    sliced_onnx = inference_detector_by_patches(
        onnx_model, img, sizes=(SIZE,), steps=(40,), progress=False
    )
    sliced = inference_detector_by_patches(model, img, sizes=(SIZE,), steps=(40,), progress=False)
    _same(sliced_onnx, sliced)


def test_image_demo_runs_an_onnx_file(toy, tmp_path, capsys):
    """``demo/image_demo.py IMG CONFIG model.onnx`` runs the file (it used to refuse it as an
    unsafe checkpoint)."""
    pytest.importorskip('onnx')
    pytest.importorskip('onnxruntime')
    import importlib.util

    from ai4rs.apis import init_detector
    from ai4rs.apis.deployment import Preprocessor, export_onnx

    config, ckpt, img = toy
    model = init_detector(config, ckpt)
    onnx_file = str(tmp_path / 'toy.onnx')
    export_onnx(model, Preprocessor(model.cfg, (SIZE, SIZE))(img)[0], onnx_file)
    spec = importlib.util.spec_from_file_location(
        'image_demo', osp.join(REPO_ROOT, 'demo', 'image_demo.py')
    )
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    outs = {}
    for name, weights in (('pth', ckpt), ('onnx', onnx_file)):
        out_file = str(tmp_path / f'{name}.png')
        demo.main([img, config, weights, '--out-file', out_file, '--score-thr', '0.3'])
        outs[name] = capsys.readouterr().out
        assert cv2.imread(out_file) is not None
    assert outs['pth'].split(';')[0] == outs['onnx'].split(';')[0]  # 'N objects with score...'
    assert int(outs['onnx'].split()[0]) > 0
    # the file with a config whose head predicts another box type: one line, exit status 1
    from ai4rs.utils.checkpoint import CheckpointMismatchError
    from tests.yolo_world_infer_helpers import yolox_config

    rotated = str(tmp_path / 'rotated.py')
    yolox_config(SIZE).dump(rotated)
    with pytest.raises(CheckpointMismatchError, match='outputs HorizontalBoxes but the config'):
        init_detector(rotated, onnx_file)
    with pytest.raises(SystemExit, match='^error: .*give the config the file was exported from'):
        demo.main([img, rotated, onnx_file])


def _private_accesses(path: Path, root: Path) -> list[str]:
    """``obj._name`` reads in a module where ``obj`` is not ``self`` / ``cls``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith('_')
            and not node.attr.startswith('__')
            and not (isinstance(node.value, ast.Name) and node.value.id in ('self', 'cls'))
        ):
            found.append(f'{path.relative_to(root)}:{node.lineno}: .{node.attr}')
    return found


def test_apis_use_no_private_attribute_of_models_or_heads(tmp_path):
    root = Path(REPO_ROOT)
    apis = root / 'ai4rs' / 'apis'
    found = [hit for path in sorted(apis.rglob('*.py')) for hit in _private_accesses(path, root)]
    assert found == []
    # the check sees what it is meant to catch
    planted = tmp_path / 'planted.py'
    planted.write_text('def f(head):\n    return head._bbox_post_process\n')
    assert _private_accesses(planted, tmp_path) == ['planted.py:2: ._bbox_post_process']
