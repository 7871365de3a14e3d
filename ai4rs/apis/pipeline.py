"""A model's config and test pipeline, as inference, sliced inference and deployment need them.

One place for: a config given as a file or an object (:func:`load_model_config`), the
test pipeline of a config without annotation loading (:func:`test_pipeline_cfg`), the
pipeline that also packs a vocabulary of texts (:func:`build_inference_pipeline`), and one
image turned into a pipeline input (:func:`pipeline_input`).
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
from mmengine.config import Config
from mmengine.dataset import Compose

from ai4rs.utils.config import load_config

DEFAULT_META_KEYS = ('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')


def load_model_config(config, cfg_options: dict | None = None) -> Config:
    """A config file (str / Path) or a ``Config`` (deep-copied) with ``cfg_options`` merged in.

    Raises:
        TypeError: ``config`` is neither.
    """
    if isinstance(config, (str, Path)):
        return load_config(str(config), cfg_options)
    if not isinstance(config, Config):
        raise TypeError(f'config must be a filename or a Config, got {type(config).__name__}')
    config = copy.deepcopy(config)
    if cfg_options is not None:
        config.merge_from_dict(cfg_options)
    return config


def config_dataset_meta(config: Config) -> dict | None:
    """The ``metainfo`` (classes, palette) of the config's test dataset class, if any."""
    from ai4rs.registry import DATASETS

    for key in ('test_dataloader', 'val_dataloader', 'train_dataloader'):
        dataset = config.get(key, {}).get('dataset') if config.get(key) else None
        while isinstance(dataset, dict) and 'dataset' in dataset:  # wrappers
            dataset = dataset['dataset']
        if not isinstance(dataset, dict) or 'type' not in dataset:
            continue
        if dataset.get('metainfo'):
            return dict(dataset['metainfo'])
        cls = DATASETS.get(dataset['type'])
        if cls is not None and getattr(cls, 'METAINFO', None):
            return dict(cls.METAINFO)
    return None


def test_dataset_cfg(config: Config) -> dict:
    """The config dict of the dataset that holds the test (else val) pipeline: the test
    dataloader's dataset, inside any wrappers (``dataset=dict(dataset=...)``); the config's own
    dict (changing it changes ``config``).

    Raises:
        ValueError: the config has neither a test nor a val dataloader.
    """
    for key in ('test_dataloader', 'val_dataloader'):
        loader = config.get(key)
        if loader:
            dataset = loader['dataset']
            while 'pipeline' not in dataset and 'dataset' in dataset:
                dataset = dataset['dataset']
            return dataset
    raise ValueError(
        'the config has neither test_dataloader nor val_dataloader: no test pipeline to run'
    )


def test_pipeline_cfg(config: Config, from_array: bool) -> list[dict]:
    """The transforms of the config's test (else val) dataset, without annotation loading.

    Args:
        config (Config): a model config.
        from_array (bool): the images come as arrays: the first transform becomes
            ``LoadImageFromNDArray`` with the file loader's 8-bit rule.

    Returns:
        list[dict]: transform configs (a copy).
    """
    pipeline = copy.deepcopy(test_dataset_cfg(config)['pipeline'])
    # inference has no annotations to load
    pipeline = [t for t in pipeline if 'LoadAnnotations' not in t['type']]
    if from_array:
        if 'LoadImageFromFile' not in pipeline[0]['type']:
            raise ValueError('the test pipeline must start with LoadImageFromFile')
        # arrays are converted to uint8 by the same rule as the files
        pipeline[0] = dict(
            type='LoadImageFromNDArray', to_uint8=pipeline[0].get('to_uint8', 'bit_depth')
        )
    return pipeline


def build_inference_pipeline(config: Config, from_array: bool, with_texts: bool) -> Compose:
    """The test pipeline; ``with_texts``: the texts set on the inputs (see
    :func:`pipeline_input`) go through ``LoadText`` (its ``prompt_format``) and are packed
    as the data sample's ``texts``, also when the config's pipeline has no ``LoadText``."""
    pipeline = test_pipeline_cfg(config, from_array)
    if with_texts:
        if not any(t['type'] == 'LoadText' for t in pipeline):
            pipeline.insert(len(pipeline) - 1, dict(type='LoadText'))
        pack = pipeline[-1]
        meta_keys = tuple(pack.get('meta_keys', DEFAULT_META_KEYS))
        if 'texts' not in meta_keys:
            pack['meta_keys'] = meta_keys + ('texts',)
    return Compose(pipeline)


def pipeline_input(img, img_id: int, texts: list[str] | None = None) -> dict:
    """The results dict one image starts the pipeline with.

    Args:
        img (str | Path | ndarray): image file, or BGR array (H, W, C).
        img_id (int): its index in the call.
        texts (list[str], optional): the vocabulary, in the class-text form ``LoadText``
            reads.

    Raises:
        FileNotFoundError: the file does not exist.
        TypeError: neither a file name nor an array.
    """
    if isinstance(img, np.ndarray):
        data = dict(img=img, img_id=img_id)
    elif isinstance(img, (str, Path)):
        if not Path(img).is_file():
            raise FileNotFoundError(f'image {img} does not exist')
        data = dict(img_path=str(img), img_id=img_id)
    else:
        raise TypeError(f'images must be file names or ndarrays, got {type(img).__name__}')
    if texts is not None:
        data['texts'] = [[t] for t in texts]
    return data


def text_prompt_format(config: Config) -> str:
    """The ``prompt_format`` of the test pipeline's ``LoadText`` (``'{}'`` without one): how
    the pipeline turns a vocabulary word into the prompt the text model encodes, and so
    the format to bake a vocabulary with (``YOLOWorldDetector.reparameterize``)."""
    for transform in test_pipeline_cfg(config, from_array=False):
        if transform['type'] == 'LoadText':
            return transform.get('prompt_format', '{}')
    return '{}'
