"""Writes the toy brightness dataset (used by tests/conftest.py)."""
import os.path as osp

import mmcv
import numpy as np


def write_dataset(root, num_images=16, size=16, seed=0):
    """Write ``num_images`` PNGs (half dark, half bright) and ``ann.txt`` under ``root``."""
    rng = np.random.default_rng(seed)
    img_dir = osp.join(root, 'images')
    lines = []
    for i in range(num_images):
        label = i % 2
        base = 200 if label else 40
        img = np.clip(base + rng.normal(0, 20, (size, size, 3)), 0, 255).astype(np.uint8)
        mmcv.imwrite(img, osp.join(img_dir, f'{i:03d}.png'))
        lines.append(f'{i:03d}.png {label}')
    with open(osp.join(root, 'ann.txt'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
