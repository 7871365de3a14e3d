"""Augmentation randomness as a function of (seed, epoch, position), so resuming is exact.

Data-loader workers keep their own random state. With ``persistent_workers``
that state runs on across epochs, and a run resumed at epoch 2 starts fresh
workers: its augmentations differ from the uninterrupted run's (without
persistent workers, every epoch reuses the same worker seeds instead). Here
the sampler sends, with each index, a seed derived from (sampler seed, epoch,
position in the epoch's global order), and the dataset runs the pipeline for
that sample under exactly that seed (:func:`sample_rng`). The augmentation of
a sample then depends neither on the worker that runs it, nor on the number
of workers, nor on whether the workers are persistent, nor on the rank.
"""

import random
from contextlib import contextmanager

import numpy as np
import torch
from mmengine.dataset import DefaultSampler as MMEngineDefaultSampler

from ai4rs.registry import DATA_SAMPLERS


class SeededIndex(int):
    """A dataset index that carries the seed of its sample's augmentation (``.seed``)."""

    def __new__(cls, index: int, seed: int):
        obj = super().__new__(cls, index)
        obj.seed = int(seed)
        return obj

    def __reduce__(self):  # travels to worker processes through pickling
        return (SeededIndex, (int(self), self.seed))


def sample_seed(seed: int, epoch: int, position: int) -> int:
    """A 32-bit seed from (sampler seed, epoch, position in the epoch's global index order)."""
    return int(np.random.SeedSequence([seed % 2**32, epoch, position]).generate_state(1)[0])


@contextmanager
def sample_rng(index):
    """Run the body with Python's, numpy's and torch's (CPU) global RNGs seeded for ``index``.

    ``index`` is a :class:`SeededIndex` (else nothing is seeded). The previous
    states are restored afterwards, so the caller's random streams (e.g. a
    main process with ``num_workers=0``) continue undisturbed.
    """
    seed = getattr(index, 'seed', None)
    if seed is None:
        yield
        return
    py_state, np_state = random.getstate(), np.random.get_state()
    torch_state = torch.get_rng_state()
    random.seed(seed)
    np.random.seed(seed)
    torch.default_generator.manual_seed(seed)
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.set_rng_state(torch_state)


@DATA_SAMPLERS.register_module()
class DefaultSampler(MMEngineDefaultSampler):
    """mmengine's ``DefaultSampler`` (same arguments and order) yielding :class:`SeededIndex`.

    Datasets that run their pipeline under :func:`sample_rng` (``DOTADataset``)
    get per-sample augmentation seeds, so a resumed run repeats the
    uninterrupted run's augmentations exactly. Other datasets see plain ints.
    """

    def __iter__(self):
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed + self.epoch)
            indices = torch.randperm(len(self.dataset), generator=g).tolist()
        else:
            indices = torch.arange(len(self.dataset)).tolist()
        if self.round_up:
            indices = (indices * int(self.total_size / len(indices) + 1))[: self.total_size]
        positions = range(self.rank, self.total_size, self.world_size)
        for position in positions:
            if position >= len(indices):
                break
            yield SeededIndex(indices[position], sample_seed(self.seed, self.epoch, position))
