"""Class-text transforms of YOLO-World: ``RandomLoadText`` (training) and ``LoadText`` (test).

``results['texts']`` comes from ``MultiModalDataset`` (or ``text_path``): a list with one
list of caption strings per class, e.g. ``[['person'], ['bicycle'], ...]``. After these
transforms ``results['texts']`` is a flat list of strings, one prompt per label index.
"""

from __future__ import annotations

import random

import numpy as np
from mmcv.transforms import BaseTransform

from ai4rs.registry import TRANSFORMS

from ..class_texts import load_class_texts
from .instances import keep_instances


def _class_texts(transform, results: dict) -> list:
    texts = results.get('texts', getattr(transform, 'class_texts', None))
    if texts is None:
        raise KeyError(
            f'{type(transform).__name__}: no "texts" in the results (wrap the '
            'dataset in MultiModalDataset) and no text_path given'
        )
    return texts


@TRANSFORMS.register_module()
class RandomLoadText(BaseTransform):
    """Sample the prompts of a training image: its positive classes plus random negatives,
    in random order, and remap labels to the new order (YOLO-World).

    Positives are the distinct labels present (at most ``max_num_samples``, a random
    subset beyond that); ``min(min(C, max_num_samples) - P, randint(*num_neg_samples))``
    negatives are drawn from the other classes. Labels become indexes into the shuffled
    list, objects whose class was not kept are dropped, and ``results['texts']`` becomes
    one prompt per index: ``prompt_format.format(caption)`` with a random caption of the
    class, padded with ``padding_value`` to ``max_num_samples`` if ``padding_to_max``.
    Uses Python's ``random`` module, as upstream.

    Args:
        text_path (str, optional): class-text json used when the results have no texts.
        prompt_format (str): Defaults to '{}'.
        num_neg_samples (tuple[int, int]): inclusive range. Defaults to (80, 80).
        max_num_samples (int): Defaults to 80.
        padding_to_max (bool): Defaults to False.
        padding_value (str): Defaults to ''.
    """

    def __init__(
        self,
        text_path: str | None = None,
        prompt_format: str = '{}',
        num_neg_samples: tuple[int, int] = (80, 80),
        max_num_samples: int = 80,
        padding_to_max: bool = False,
        padding_value: str = '',
    ) -> None:
        self.prompt_format = prompt_format
        self.num_neg_samples = num_neg_samples
        self.max_num_samples = max_num_samples
        self.padding_to_max = padding_to_max
        self.padding_value = padding_value
        if text_path is not None:
            self.class_texts = load_class_texts(text_path)

    def transform(self, results: dict) -> dict:
        class_texts = _class_texts(self, results)
        num_classes = len(class_texts)
        if 'gt_labels' in results:
            label_key = 'gt_labels'
        elif 'gt_bboxes_labels' in results:
            label_key = 'gt_bboxes_labels'
        else:
            raise KeyError('RandomLoadText: no gt_bboxes_labels in the results')
        labels = np.asarray(results[label_key], dtype=np.int64).reshape(-1)
        if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(
                f'RandomLoadText: label {int(labels.max())} of '
                f'{results.get("img_path", "?")} has no text ({num_classes} '
                'class texts)'
            )
        positives = set(labels.tolist())
        if len(positives) > self.max_num_samples:
            positives = set(random.sample(sorted(positives), k=self.max_num_samples))
        num_neg = min(
            min(num_classes, self.max_num_samples) - len(positives),
            random.randint(*self.num_neg_samples),
        )
        candidates = [i for i in range(num_classes) if i not in positives]
        negatives = random.sample(candidates, k=max(num_neg, 0))
        sampled = list(positives) + list(negatives)
        random.shuffle(sampled)
        label2id = {label: i for i, label in enumerate(sampled)}

        keep = np.asarray([int(lb) in label2id for lb in labels], dtype=bool)
        new_labels = np.asarray([label2id[int(lb)] for lb in labels[keep]], dtype=np.int64)
        keep_instances(results, keep)
        results[label_key] = new_labels
        if 'instances' in results:
            kept = []
            for inst in results['instances']:
                if inst['bbox_label'] in label2id:
                    inst['bbox_label'] = label2id[inst['bbox_label']]
                    kept.append(inst)
            results['instances'] = kept

        texts = []
        for label in sampled:
            captions = class_texts[label]
            texts.append(self.prompt_format.format(captions[random.randrange(len(captions))]))
        if self.padding_to_max:
            texts += [self.padding_value] * (self.max_num_samples - len(sampled))
        results['texts'] = texts
        return results

    def __repr__(self) -> str:
        return (
            f'{self.__class__.__name__}(prompt_format={self.prompt_format!r}, '
            f'num_neg_samples={self.num_neg_samples}, '
            f'max_num_samples={self.max_num_samples}, padding_to_max={self.padding_to_max}, '
            f'padding_value={self.padding_value!r})'
        )


@TRANSFORMS.register_module()
class LoadText(BaseTransform):
    """The prompts of a test image: every class, in dataset order, its first caption
    formatted with ``prompt_format`` (YOLO-World).

    Args:
        text_path (str, optional): class-text json used when the results have no texts.
        prompt_format (str): Defaults to '{}'.
        multi_prompt_flag (str): kept for config compatibility (unused upstream too).
    """

    def __init__(
        self, text_path: str | None = None, prompt_format: str = '{}', multi_prompt_flag: str = '/'
    ) -> None:
        self.prompt_format = prompt_format
        self.multi_prompt_flag = multi_prompt_flag
        if text_path is not None:
            self.class_texts = load_class_texts(text_path)

    def transform(self, results: dict) -> dict:
        texts = []
        for i, captions in enumerate(_class_texts(self, results)):
            if len(captions) == 0:
                raise ValueError(f'LoadText: class {i} has no text')
            texts.append(self.prompt_format.format(captions[0]))
        results['texts'] = texts
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(prompt_format={self.prompt_format!r})'
