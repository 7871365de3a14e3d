"""The shipped DOTA class-text files: one entry per class, in dataset order, in natural words."""

import os.path as osp

import pytest

from ai4rs.datasets import DOTADataset, DOTAv2Dataset, DOTAv15Dataset, load_class_texts

TEXTS_DIR = osp.join(osp.dirname(__file__), '..', '..', 'configs', '_base_', 'texts')

# Written out by hand (not derived from the class names): the words a text encoder reads.
NATURAL_WORDS = {
    'plane': 'plane',
    'baseball-diamond': 'baseball diamond',
    'bridge': 'bridge',
    'ground-track-field': 'ground track field',
    'small-vehicle': 'small vehicle',
    'large-vehicle': 'large vehicle',
    'ship': 'ship',
    'tennis-court': 'tennis court',
    'basketball-court': 'basketball court',
    'storage-tank': 'storage tank',
    'soccer-ball-field': 'soccer ball field',
    'roundabout': 'roundabout',
    'harbor': 'harbor',
    'swimming-pool': 'swimming pool',
    'helicopter': 'helicopter',
    'container-crane': 'container crane',
    'airport': 'airport',
    'helipad': 'helipad',
}


@pytest.mark.parametrize(
    'file_name, dataset_cls, num_classes',
    [
        ('dota_v1_class_texts.json', DOTADataset, 15),
        ('dota_v15_class_texts.json', DOTAv15Dataset, 16),
        ('dota_v2_class_texts.json', DOTAv2Dataset, 18),
    ],
)
def test_dota_class_texts_follow_the_dataset_classes(file_name, dataset_cls, num_classes):
    classes = dataset_cls.METAINFO['classes']
    assert len(classes) == num_classes
    texts = load_class_texts(osp.join(TEXTS_DIR, file_name), num_classes=len(classes))
    assert len(texts) == num_classes
    assert [entry[0] for entry in texts] == [NATURAL_WORDS[c] for c in classes]
    # no word joined by a dash is left for the text encoder
    assert not any('-' in t for entry in texts for t in entry)
