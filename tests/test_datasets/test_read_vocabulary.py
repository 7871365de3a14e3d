"""read_vocabulary: the one reader of a vocabulary given on a command line (demo, ONNX export,
text-embedding generation)."""

import json

import pytest

from ai4rs.datasets.class_texts import read_vocabulary


def test_forms(tmp_path):
    assert read_vocabulary(' person, dog ,bus,') == ['person', 'dog', 'bus']
    txt = tmp_path / 'v.txt'
    txt.write_text('traffic light\n\n  stop sign \n')
    assert read_vocabulary(str(txt)) == ['traffic light', 'stop sign']
    js = tmp_path / 'v.json'
    js.write_text(json.dumps([['person', 'human'], ['dog'], 'bus']))
    assert read_vocabulary(str(js)) == ['person', 'dog', 'bus']  # first string of each entry
    assert read_vocabulary([str(js)]) == ['person', 'dog', 'bus']
    # a list is taken as given (commas inside a text stay)
    assert read_vocabulary(['a, b', 'c']) == ['a, b', 'c']


def test_errors_name_the_option_and_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r'--texts: text file not found: .*nope\.txt'):
        read_vocabulary(str(tmp_path / 'nope.txt'))
    with pytest.raises(ValueError, match='expected one or more non-empty texts'):
        read_vocabulary(' , ,')
    with pytest.raises(ValueError, match=r"holds duplicates: \['dog'\]"):
        read_vocabulary('dog,cat,dog')
    js = tmp_path / 'bad.json'
    js.write_text(json.dumps([['person'], [3], ['dog']]))
    with pytest.raises(ValueError, match=r'bad\.json: expected one .* texts, got \[3\]'):
        read_vocabulary(str(js), what='texts')
    empty = tmp_path / 'empty.txt'
    empty.write_text('\n')
    with pytest.raises(ValueError, match='empty.txt: expected one or more'):
        read_vocabulary(str(empty))
    broken = tmp_path / 'broken.json'
    broken.write_text('[["person"], ["dog"')  # cut short
    with pytest.raises(ValueError, match=r'broken\.json: not a valid json file \(Expecting'):
        read_vocabulary(str(broken))
