"""Data preprocessor of YOLO-World: YOLO fast-collate batches with texts."""

import torch

from ai4rs.registry import MODELS

from .data_preprocessor import DetDataPreprocessor


@MODELS.register_module()
class YOLOWDetDataPreprocessor(DetDataPreprocessor):
    """:class:`DetDataPreprocessor` plus the YOLO fast-collate training path.

    Training batches from the YOLO-World collate (upstream ``yolow_collate``)
    arrive as ``{'inputs': (B, 3, H, W) tensor, 'data_samples': dict}`` with
    ``data_samples = {'bboxes_labels': (N, 6) tensor, 'texts': list[list[str]],
    ...}`` where each row of ``bboxes_labels`` is
    ``[img_idx, label, x1, y1, x2, y2]`` (absolute pixels, xyxy). In that case
    the images are channel-converted and normalised (no padding: the collate
    already stacked equal-size images), ``batch_augments`` run on the dict (so
    they must accept it, as mmyolo's ``YOLOXBatchSyncRandomResize`` does), and
    the output data samples are the dict
    ``{'bboxes_labels': (N, 6), 'texts': B lists of K strings,
    'img_metas': [{'batch_input_shape': (H, W)}] * B}`` (plus ``masks`` /
    ``is_detection`` when given), which ``YOLOWorldHead.loss`` consumes.

    Any other batch (evaluation, or a list of data samples from
    ``pseudo_collate``) goes through :class:`DetDataPreprocessor`; texts then
    stay in ``data_sample.texts``.

    Args: those of :class:`DetDataPreprocessor`; ``non_blocking`` defaults to
    True as upstream.
    """

    needs_texts = True

    def __init__(self, *args, non_blocking: bool = True, **kwargs) -> None:
        super().__init__(*args, non_blocking=non_blocking, **kwargs)

    def forward(self, data: dict, training: bool = False) -> dict:
        if not training or not isinstance(data.get('data_samples'), dict):
            return super().forward(data, training)
        data = self.cast_data(data)
        inputs, data_samples = data['inputs'], data['data_samples']
        if not isinstance(inputs, torch.Tensor) or inputs.dim() != 4:
            raise TypeError(
                'YOLOWDetDataPreprocessor: a YOLO-collated training batch needs '
                'inputs stacked as one (B, C, H, W) tensor, got '
                f'{type(inputs).__name__}'
            )
        for key in ('bboxes_labels', 'texts') if self.needs_texts else ('bboxes_labels',):
            if key not in data_samples:
                raise KeyError(
                    f'YOLOWDetDataPreprocessor: the collated data_samples dict has '
                    f'no {key!r} (keys: {sorted(data_samples)})'
                )
        bboxes_labels = data_samples['bboxes_labels']
        if bboxes_labels.dim() != 2 or bboxes_labels.shape[1] != 6:
            raise ValueError(
                'YOLOWDetDataPreprocessor: bboxes_labels must be (N, 6) '
                '[img_idx, label, x1, y1, x2, y2], got '
                f'{tuple(bboxes_labels.shape)}'
            )
        if 'texts' in data_samples and len(data_samples['texts']) != inputs.shape[0]:
            raise ValueError(
                f'YOLOWDetDataPreprocessor: {len(data_samples["texts"])} text '
                f'lists for {inputs.shape[0]} images'
            )
        if self._channel_conversion and inputs.shape[1] == 3:
            inputs = inputs[:, [2, 1, 0], ...]
        inputs = inputs.float()
        if self._enable_normalize:
            inputs = (inputs - self.mean) / self.std
        if self.batch_augments is not None:
            for batch_aug in self.batch_augments:
                inputs, data_samples = batch_aug(inputs, data_samples)
        img_metas = [{'batch_input_shape': tuple(inputs.shape[2:])}] * len(inputs)
        out = {'bboxes_labels': data_samples['bboxes_labels'], 'img_metas': img_metas}
        for key in ('texts', 'masks', 'is_detection'):
            if key in data_samples:
                out[key] = data_samples[key]
        return {'inputs': inputs, 'data_samples': out}


@MODELS.register_module()
class YOLOv5DetDataPreprocessor(YOLOWDetDataPreprocessor):
    """mmyolo's closed-set YOLO preprocessor (used by the reparameterized YOLO-World
    configs): :class:`YOLOWDetDataPreprocessor` whose collated training batches need no
    ``texts`` (the output dict then has none)."""

    needs_texts = False
