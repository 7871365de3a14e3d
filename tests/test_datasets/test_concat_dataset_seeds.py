"""ai4rs' ConcatDataset gives every wrapped dataset the sample's seed (mmengine's drops it for
all datasets after the first)."""

from mmengine.dataset import BaseDataset
from mmengine.dataset import ConcatDataset as MMEngineConcatDataset

from ai4rs.datasets import ConcatDataset
from ai4rs.datasets.samplers.seeded_sampler import SeededIndex
from ai4rs.registry import DATASETS
from ai4rs.utils import register_all_modules


class _Recording(BaseDataset):
    """n samples; __getitem__ returns (name, index as received, its seed or None)."""

    def __init__(self, name, n):
        self.name, self.n = name, n
        super().__init__(lazy_init=True, serialize_data=False)

    def load_data_list(self):
        return [dict(i=i) for i in range(self.n)]

    def __getitem__(self, idx):
        return self.name, int(idx), getattr(idx, 'seed', None)


def _pair(cls):
    return cls([_Recording('a', 3), _Recording('b', 4)])


def test_every_dataset_gets_the_seed():
    concat = _pair(ConcatDataset)
    assert len(concat) == 7
    assert concat[SeededIndex(1, 11)] == ('a', 1, 11)
    assert concat[SeededIndex(3, 12)] == ('b', 0, 12)
    assert concat[SeededIndex(6, 13)] == ('b', 3, 13)
    assert concat[5] == ('b', 2, None)  # a plain index stays plain
    # mmengine's loses the seed after the first dataset (why this class exists)
    assert _pair(MMEngineConcatDataset)[SeededIndex(3, 12)] == ('b', 0, None)


def test_configs_get_the_seeded_concat_dataset():
    register_all_modules()
    assert DATASETS.get('ConcatDataset') is ConcatDataset
