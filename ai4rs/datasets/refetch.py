"""Drawing another sample when one yields ``None``, without touching the global RNGs.

mmengine's ``BaseDataset.__getitem__`` replaces a training sample whose pipeline returns
``None`` (a skipped bad image, a transform that drops the sample) by an index drawn from
numpy's global RNG: in a data-loader worker that state depends on the worker's history,
so a resumed run, with fresh workers, draws another replacement and the run is no longer
exact after the first bad sample. Here the replacement index and its augmentation seed
come from the sample's own seed (:class:`~ai4rs.datasets.samplers.SeededIndex`, sent by
ai4rs' ``DefaultSampler``), so the replacement is the same in every run.
"""

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
from mmengine.logging import print_log

from .samplers.seeded_sampler import SeededIndex


def refetch_index(index: int, length: int) -> int:
    """The index drawn in place of ``index``, whose sample yielded ``None``.

    Args:
        index (int): a :class:`SeededIndex` (or a plain int).
        length (int): the dataset's length.

    Returns:
        int: with a ``SeededIndex``, a ``SeededIndex`` whose index and seed are a function
        of ``index.seed`` alone (a chain of refetches goes on from the new seed); with a
        plain int, numpy's global RNG draws it (mmengine's rule).
    """
    seed = getattr(index, 'seed', None)
    if seed is None:
        return int(np.random.randint(0, length))
    rng = np.random.default_rng(np.random.SeedSequence([seed % 2**32, 0x5EED]))
    return SeededIndex(int(rng.integers(length)), int(rng.integers(2**32)))


def fetch_sample(
    prepare: Callable[[int], Any],
    index: int,
    length: int,
    training: bool,
    max_refetch: int,
    describe: Callable[[int], str],
) -> Any:
    """``prepare(index)``; in training another sample (:func:`refetch_index`) while it is ``None``.

    Args:
        prepare (callable): index -> the pipeline's output, or ``None``.
        index (int): the sample asked for.
        length (int): the dataset's length.
        training (bool): whether a ``None`` may be replaced.
        max_refetch (int): how many replacements are tried.
        describe (callable): index -> the dataset and the sample, for the error messages.

    Raises:
        RuntimeError: in test mode, the pipeline returned ``None`` (a test pipeline must not
            drop a sample: its prediction would be missing); in training, no valid sample in
            ``max_refetch`` replacements.
    """
    data = prepare(index)
    if data is not None:
        return data
    if not training:
        raise RuntimeError(
            f'{describe(index)}: the pipeline returned None in test mode; a test pipeline '
            'must not drop a sample (its prediction would be missing from the results)'
        )
    for _ in range(max_refetch):
        index = refetch_index(index, length)
        data = prepare(index)
        if data is not None:
            return data
    raise RuntimeError(
        f'{describe(index)}: no valid sample after {max_refetch} draws; check the images '
        'and the pipeline'
    )


class SeededRefetchMixin:
    """``__getitem__`` for mmengine ``BaseDataset`` subclasses: mmengine's rule, except that
    a training sample that yields ``None`` is replaced by one drawn from its own seed
    (:func:`refetch_index`), not from the worker's global RNG, so a resumed run draws the
    same replacement; in test mode a ``None`` is an error naming the sample.

    Put it before ``BaseDataset`` in the bases (``class D(SeededRefetchMixin, BaseDataset)``).
    A dataset wrapper provides what it uses: ``_fully_initialized`` / ``full_init``,
    ``prepare_data``, ``max_refetch``, ``__len__``, and overrides :attr:`refetch_allowed` /
    :meth:`describe_sample` where its rule differs.
    """

    @property
    def refetch_allowed(self) -> bool:
        """Whether a ``None`` may be replaced by another sample (training)."""
        return not self.test_mode

    def __getitem__(self, idx: int) -> Any:
        if not self._fully_initialized:
            print_log(
                'Please call `full_init()` method manually to accelerate the speed.',
                logger='current',
                level=logging.WARNING,
            )
            self.full_init()
        return fetch_sample(
            self.prepare_data,
            idx,
            len(self),
            self.refetch_allowed,
            self.max_refetch,
            self.describe_sample,
        )

    def describe_sample(self, idx: int) -> str:
        """The dataset and sample ``idx`` (its image), for error messages."""
        path = self.get_data_info(idx).get('img_path')
        return f'{type(self).__name__}({self.ann_file}) sample {int(idx)} ({path})'
