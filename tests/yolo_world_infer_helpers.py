"""Tiny models saved as (config file, checkpoint) pairs for the inference, demo and export
tests: a YOLO-World v2 (tiny widths, the tiny CLIP of ``make_tiny_clip``, 64 px letterbox)
a rotated YOLOX (``yolox_builders`` 'tiny', 64 px) and a rotated YOLO-World v2 (the
open-vocabulary rotated quick-start config with the tiny CLIP, 128 px), plus generated test
images."""

import os.path as osp

import cv2
import numpy as np
import torch
from mmengine.config import Config

WORLD_SIZE = 64
WORLD_META_KEYS = (
    'img_id',
    'img_path',
    'ori_shape',
    'img_shape',
    'scale_factor',
    'pad_param',
    'texts',
)


def world_config(clip_dir: str, size: int = WORLD_SIZE) -> Config:
    """A YOLO-World v2 config: tiny model, the upstream test pipeline at ``size``."""
    from tests.yolo_world_builders import detector_cfg

    model = detector_cfg(0.33, 0.125, 256, str(clip_dir), num_train_classes=3)
    model['test_cfg'].update(score_thr=0.001, max_per_img=100)
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='YOLOv5KeepRatioResize', scale=(size, size)),
        dict(type='LetterResize', scale=(size, size), allow_scale_up=False, pad_val=dict(img=114)),
        dict(type='LoadAnnotations', with_bbox=True),
        dict(type='LoadText'),
        dict(type='PackDetInputs', meta_keys=WORLD_META_KEYS),
    ]
    return Config(
        dict(
            default_scope='ai4rs',
            model=model,
            test_dataloader=dict(
                batch_size=1,
                dataset=dict(
                    type='MultiModalDataset',
                    dataset=dict(
                        type='YOLOv5CocoDataset',
                        data_root='data/coco/',
                        ann_file='annotations/instances_val2017.json',
                        test_mode=True,
                    ),
                    class_text_path='texts.json',
                    pipeline=pipeline,
                ),
            ),
        )
    )


def yolox_config(size: int = 64) -> Config:
    from tests.test_models.yolox_builders import rotated_yolox_cfg

    model = rotated_yolox_cfg('tiny')
    model['test_cfg'] = dict(
        score_thr=0.01, nms=dict(type='nms_rotated', iou_threshold=0.1), max_per_img=100
    )
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(size, size), keep_ratio=True),
        dict(
            type='PackDetInputs',
            meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'),
        ),
    ]
    return Config(
        dict(
            default_scope='ai4rs',
            model=model,
            test_dataloader=dict(
                batch_size=1, dataset=dict(type='DOTADataset', data_root='data/', pipeline=pipeline)
            ),
        )
    )


ROTATED_WORLD_QUICKSTART = osp.join(
    'configs', 'yolo_world_rotated', 'yolo_world_rotated_quickstart_synthetic.py'
)


def rotated_world_config(clip_dir: str, data_root: str, size: int = 128) -> Config:
    """The open-vocabulary rotated quick-start config (``RotatedYOLOWorldHead``, quarter
    width, the DOTA-style generated data with its class-text file) with the tiny CLIP at
    ``clip_dir``, ``data_root`` (a dataset of ``generate_dataset`` + ``write_class_texts``),
    its resizes at ``size`` and a score threshold of 0.01 (an untrained model's scores are
    about 0.1 after :func:`save_model`)."""
    from ai4rs.utils.config import load_config
    from tests.conftest import REPO_ROOT

    cfg = load_config(osp.join(REPO_ROOT, ROTATED_WORLD_QUICKSTART))
    cfg.model.backbone.text_model.model_name = str(clip_dir)
    cfg.model.test_cfg.update(score_thr=0.01, max_per_img=300)
    data_root = osp.join(str(data_root), '')
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg[key]
        loader.update(num_workers=0, persistent_workers=False)
        loader.dataset.class_text_path = osp.join(data_root, 'texts', 'class_texts.json')
        loader.dataset.dataset.data_root = data_root
        for transform in loader.dataset.pipeline:
            if transform['type'] == 'Resize':
                transform['scale'] = (size, size)
    return cfg


def save_model(
    cfg: Config,
    dirpath,
    name: str,
    seed: int = 0,
    box_bin: int | None = None,
    angle_std: float | None = None,
    logit_scale: float | None = None,
) -> tuple[str, str]:
    """Build ``cfg.model`` (seeded init, BN statistics made non-trivial), write
    ``name.py`` and ``name.pth`` to ``dirpath``; returns their paths.

    ``box_bin`` (YOLO-World): the box branch's distribution peaks at this bin on every side
    (its last conv's bias 6 there, 0 elsewhere, weights x 0.1), so boxes are about
    ``2 * box_bin`` strides wide; upstream's init (bias 1 on every bin) predicts the mean,
    7.5 strides, and every box then covers a 64 px input whole.

    ``angle_std`` (rotated YOLO-World): the angle branch's last conv gets weights
    N(0, angle_std^2) instead of its zero init (every angle 0), so boxes are oriented.

    ``logit_scale`` (YOLO-World v2): the region-text heads' ``logit_scale`` (init -1); larger
    spreads the scores of an untrained model over the priors (else they lie within about
    1e-4 of each other and ties, broken by float rounding, decide which boxes NMS keeps)."""
    from ai4rs.registry import MODELS
    from ai4rs.utils import register_all_modules

    register_all_modules()
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    model.init_weights()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
        for key, param in model.named_parameters():
            if 'cls_contrasts' in key and key.endswith('.bias'):
                param.fill_(-2.0)  # scores around 0.1 instead of the prior 0.01: more detections
            if ('conv_cls' in key or 'conv_obj' in key) and key.endswith('.bias'):
                param.fill_(0.0)  # rotated YOLOX: scores around 0.25 instead of 1e-4
        if box_bin is not None:
            for reg in model.bbox_head.head_module.reg_preds:
                reg_max = reg[-1].bias.numel() // 4
                peak = torch.zeros(reg_max)
                peak[box_bin] = 6.0
                reg[-1].weight.mul_(0.1)
                reg[-1].bias.copy_(peak.repeat(4))
        if logit_scale is not None:
            for contrast in model.bbox_head.head_module.cls_contrasts:
                contrast.logit_scale.fill_(logit_scale)
        if angle_std is not None:
            for ang in model.bbox_head.head_module.ang_preds:
                ang[-1].weight.normal_(0.0, angle_std, generator=g)
    config_path, ckpt_path = osp.join(dirpath, f'{name}.py'), osp.join(dirpath, f'{name}.pth')
    cfg.dump(config_path)
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt_path)
    return config_path, ckpt_path


def scene(h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    """A BGR uint8 image with coloured shapes on a textured background."""
    rng = np.random.default_rng(seed)
    img = (rng.random((h, w, 3)) * 60 + 100).astype(np.uint8)
    cv2.rectangle(img, (8, 10), (50, 46), (40, 40, 220), -1)
    cv2.circle(img, (90, 60), 22, (220, 60, 40), -1)
    cv2.line(img, (0, h - 5), (w - 1, 5), (20, 200, 60), 3)
    return img


def write_scene(path, **kwargs) -> str:
    if not cv2.imwrite(str(path), scene(**kwargs)):
        raise OSError(f'could not write {path}')
    return str(path)


def calibrate_batchnorm(config_path: str, ckpt_path: str, images, texts) -> None:
    """Set every BatchNorm's running statistics to those of ``images`` (files) with the
    vocabulary ``texts`` (one pass in train mode, cumulative averages) and rewrite the
    checkpoint. A random model's made-up statistics squash its features to nearly the same
    value everywhere (its scores then differ from prior to prior by float rounding only);
    calibrated, the features, and so the scores, follow the image content."""
    from mmengine.dataset import Compose

    from ai4rs.apis import init_detector

    model = init_detector(config_path, ckpt_path, inference_mode=False)
    steps = model.cfg.test_dataloader.dataset.pipeline
    pipeline = Compose([t for t in steps if 'LoadAnnotations' not in t['type']])
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    for i, img in enumerate(images):
        data = pipeline(dict(img_path=str(img), img_id=i, texts=[[t] for t in texts]))
        batch = model.data_preprocessor(
            dict(inputs=[data['inputs']], data_samples=[data['data_samples']]), False
        )
        for bn in bns:
            bn.train()
        with torch.no_grad():
            model(batch['inputs'], batch['data_samples'], mode='tensor')
    model.eval()
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt_path)
