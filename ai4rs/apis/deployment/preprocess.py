"""Images to the fixed-size input of an exported graph, with the config's own pipeline."""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.dataset import Compose
from torch import Tensor

from ai4rs.registry import MODELS

from ..pipeline import pipeline_input, test_pipeline_cfg


def pad_to_size(inputs: Tensor, size: tuple[int, int], pad_value: float) -> Tensor:
    """(B, C, h, w) -> (B, C, H, W), padded at the bottom/right with ``pad_value``.

    Raises:
        ValueError: the input is larger than ``size`` (the export size).
    """
    h, w = inputs.shape[-2:]
    height, width = (int(v) for v in size)
    if h > height or w > width:
        raise ValueError(
            f'the preprocessed image is {h}x{w}, larger than the export size '
            f'{height}x{width}: export with a matching --img-size'
        )
    if (h, w) == (height, width):
        return inputs
    return F.pad(inputs, (0, width - w, 0, height - h), value=pad_value)


class Preprocessor:
    """Image (file or BGR array) -> (1, 3, H, W) network input padded to ``img_size``
    (bottom/right, the data preprocessor's ``pad_value``) and its data sample, with
    the config's test pipeline (no annotations, no texts) and data preprocessor."""

    def __init__(self, config, img_size: tuple[int, int]) -> None:
        self.config = config
        self.img_size = tuple(int(v) for v in img_size)
        self.data_preprocessor = MODELS.build(config.model.data_preprocessor).eval()
        self.pad_value = float(getattr(self.data_preprocessor, 'pad_value', 0))
        self.pipelines = {}
        self.warned = set()  # network input sizes already warned about

    def _pipeline(self, from_array: bool) -> Compose:
        if from_array not in self.pipelines:
            steps = [
                t for t in test_pipeline_cfg(self.config, from_array) if t['type'] != 'LoadText'
            ]
            if 'meta_keys' in steps[-1]:  # the texts are baked in: none to pack
                steps[-1]['meta_keys'] = tuple(k for k in steps[-1]['meta_keys'] if k != 'texts')
            self.pipelines[from_array] = Compose(steps)
        return self.pipelines[from_array]

    def batch(self, data: dict) -> tuple[Tensor, list]:
        """A batch from a test pipeline (``inputs``, ``data_samples`` lists) -> the
        (B, 3, H, W) export-size input and the data samples, through the data preprocessor."""
        with torch.no_grad():
            out = self.data_preprocessor(data, False)
        size = tuple(out['inputs'].shape[-2:])
        if size != self.img_size and size not in self.warned:
            self.warned.add(size)
            warnings.warn(
                f'the network input is {size[0]}x{size[1]}, padded to the export size '
                f'{self.img_size[0]}x{self.img_size[1]}: PyTorch runs it unpadded, so '
                'detections near the padded border can differ from its (a keep-ratio resize '
                'of another aspect ratio; export at this size for equal detections)',
                stacklevel=2,
            )
        inputs = pad_to_size(out['inputs'].float(), self.img_size, self.pad_value)
        return inputs, out['data_samples']

    def __call__(self, img) -> tuple[Tensor, object]:
        data = self._pipeline(isinstance(img, np.ndarray))(pipeline_input(img, 0))
        inputs, samples = self.batch(
            dict(inputs=[data['inputs']], data_samples=[data['data_samples']])
        )
        return inputs, samples[0]
