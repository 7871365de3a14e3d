"""Tiny models saved as (config file, checkpoint) pairs for the inference, demo and export
tests: a YOLO-World v2 (tiny widths, the tiny CLIP of ``make_tiny_clip``, 64 px letterbox)
and a rotated YOLOX (``yolox_builders`` 'tiny', 64 px), plus generated test images."""

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


def save_model(
    cfg: Config, dirpath, name: str, seed: int = 0, box_bin: int | None = None
) -> tuple[str, str]:
    """Build ``cfg.model`` (seeded init, BN statistics made non-trivial), write
    ``name.py`` and ``name.pth`` to ``dirpath``; returns their paths.

    ``box_bin`` (YOLO-World): the box branch's distribution peaks at this bin on every side
    (its last conv's bias 6 there, 0 elsewhere, weights x 0.1), so boxes are about
    ``2 * box_bin`` strides wide; upstream's init (bias 1 on every bin) predicts the mean,
    7.5 strides, and every box then covers a 64 px input whole."""
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
