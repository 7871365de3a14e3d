"""mmengine's ``ConcatDataset`` that passes each sample's augmentation seed on.

ai4rs' ``DefaultSampler`` sends :class:`~ai4rs.datasets.samplers.SeededIndex` indices, whose
``seed`` makes a sample's augmentation (and its text sampling) the same in every run and after a
resume. mmengine's ``ConcatDataset`` turns the index into a plain ``int`` for every dataset after
the first (``idx - cumulative_sizes[i - 1]``), so those samples lost their seed. This one keeps
it: training on several datasets at once (e.g. several aerial datasets with their own
vocabularies) is as reproducible as training on one.
"""

from mmengine.dataset import ConcatDataset as MMEngineConcatDataset

from ai4rs.registry import DATASETS

from .samplers.seeded_sampler import SeededIndex


@DATASETS.register_module()
class ConcatDataset(MMEngineConcatDataset):
    """mmengine's ``ConcatDataset`` (same arguments) whose ``__getitem__`` gives the wrapped
    dataset a :class:`SeededIndex` with the incoming index's seed, when it has one."""

    def __getitem__(self, idx):
        if not self._fully_initialized:
            self.full_init()
        dataset_idx, sample_idx = self._get_ori_dataset_idx(idx)
        seed = getattr(idx, 'seed', None)
        if seed is not None:
            sample_idx = SeededIndex(sample_idx, seed)
        return self.datasets[dataset_idx][sample_idx]
