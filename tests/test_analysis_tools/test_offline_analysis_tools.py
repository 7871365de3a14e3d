"""eval_metric.py and confusion_matrix.py on real ``tools/test.py --out`` pickles, both box
families.

The detector is ``OracleDetector`` (tests/data/oracle_project): it predicts each image's ground
truth changed by fixed rules (a few pixels off, every fourth object with the next class, one
false positive far outside the image), so the metrics are neither 0 nor 1 and the confusion
matrix can be worked out from the label files alone.
"""

import glob
import json
import os.path as osp
import pickle
import shutil
import sys

import numpy as np
import pytest
import torch

from tests.conftest import DATA_DIR, REPO_ROOT, run_cmd

# each family runs tools/test.py once (about 15 s on a CPU)
pytestmark = pytest.mark.slow

TEST = osp.join(REPO_ROOT, 'tools', 'test.py')
FAMILIES = {
    'rotated': dict(
        base=osp.join('rotated_yolox', 'rotated_yolox_quickstart_synthetic.py'),
        num_classes=3,
        extra='',
        metric='dota/AP50',
    ),
    'horizontal': dict(
        base=osp.join('yolo_world_v2', 'yolo_world_v2_quickstart_synthetic.py'),
        num_classes=4,
        # no resize: the oracle's boxes are the annotation's, in image coordinates
        extra="""
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='LoadText'),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'texts')),
]
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
""",
        metric='coco/bbox_mAP',
    ),
    # open-vocabulary rotated YOLO-World: DOTA data in a MultiModalDataset
    'open_vocab_rotated': dict(
        base=osp.join('yolo_world_rotated', 'yolo_world_rotated_quickstart_synthetic.py'),
        num_classes=3,
        extra='',
        metric='dota/AP50',
    ),
}


def _make_project(root, family):
    shutil.copytree(osp.join(DATA_DIR, 'oracle_project', 'projects'), root / 'projects')
    if family in ('rotated', 'open_vocab_rotated'):
        from ai4rs.datasets.preparation.synthetic_dota import CLASSES, generate_dataset

        generate_dataset(
            str(root / 'data' / 'synthetic_dota'), num_train=1, num_val=4, img_size=128
        )
        texts = root / 'data' / 'synthetic_dota' / 'texts'
        texts.mkdir(parents=True)
        (texts / 'class_texts.json').write_text(json.dumps([[c] for c in CLASSES]))
    else:
        from ai4rs.datasets.preparation.synthetic_coco import generate_dataset

        generate_dataset(str(root / 'data' / 'synthetic_coco'), num_train=1, num_val=4, img_size=96)
    spec = FAMILIES[family]
    base = osp.join(REPO_ROOT, 'configs', spec['base'])
    (root / 'oracle.py').write_text(
        f'_base_ = [{base!r}]\n'
        "custom_imports = dict(imports=['projects.oracle_det'], allow_failed_imports=False)\n"
        f"model = dict(_delete_=True, type='OracleDetector', num_classes={spec['num_classes']})\n"
        'test_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False)\n'
        + spec['extra']
    )
    torch.save({'state_dict': {'unused': torch.zeros(1)}}, root / 'oracle.pth')
    proc = run_cmd(
        [sys.executable, TEST, 'oracle.py', 'oracle.pth', '--out', 'r.pkl', '--work-dir', 'w'],
        cwd=root,
    )
    (scalars,) = glob.glob(str(root / 'w' / '*' / '*.json'))
    with open(scalars) as f:
        logged = json.loads(f.read().splitlines()[-1])
    return proc.stdout + proc.stderr, logged


@pytest.fixture(scope='module', params=sorted(FAMILIES))
def tested(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param)
    log, logged = _make_project(root, request.param)
    return request.param, root, log, logged


def _expected_matrix(family, root, num_classes):
    """The confusion matrix the oracle's rules give, from the label files alone."""
    per_image = []
    if family != 'horizontal':
        from ai4rs.datasets.dota import load_dota_labels
        from ai4rs.datasets.preparation.synthetic_dota import CLASSES

        for path in sorted(
            glob.glob(str(root / 'data' / 'synthetic_dota' / 'val' / 'annfiles' / '*.txt'))
        ):
            per_image.append([CLASSES.index(n) for n in load_dota_labels(path).names])
    else:
        with open(root / 'data' / 'synthetic_coco' / 'annotations' / 'instances_val.json') as f:
            coco = json.load(f)
        cat_ids = sorted(c['id'] for c in coco['categories'])
        for img in coco['images']:
            anns = [a for a in coco['annotations'] if a['image_id'] == img['id']]
            per_image.append([cat_ids.index(a['category_id']) for a in anns])
    matrix = np.zeros((num_classes + 1, num_classes + 1), np.int64)
    for labels in per_image:
        for i, label in enumerate(labels):
            if i % 4 == 3:  # taken for the next class: a wrong-class cell and a miss
                matrix[label, (label + 1) % num_classes] += 1
                matrix[label, -1] += 1
            else:
                matrix[label, label] += 1
        if labels:
            matrix[-1, 0] += 1  # the false positive outside the image
    return matrix


def test_eval_metric_gives_the_test_tools_metrics(tested, monkeypatch, capsys):
    family, root, log, logged = tested
    metric = FAMILIES[family]['metric']
    # a real evaluation: some objects found, some not
    assert 0.2 < logged[metric] < 1.0, log[-3000:]
    sys.path.insert(0, osp.join(REPO_ROOT, 'tools', 'analysis_tools'))
    import eval_metric

    monkeypatch.chdir(root)
    metrics = eval_metric.main(['oracle.py', 'r.pkl'])
    assert set(metrics) == {k for k in logged if '/' in k}
    for key, value in metrics.items():
        assert value == logged[key], key  # the same float, not only the same 4 decimals
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    assert f'{metric}: {logged[metric]:.4f}' in printed and printed in log
    if family == 'rotated':
        # a format-only evaluator writes the submission and computes nothing: said so
        opts = ['test_evaluator.format_only=True', 'test_evaluator.outfile_prefix=fmt']
        assert eval_metric.main(['oracle.py', 'r.pkl', '--cfg-options', *opts]) == {}
        assert 'computed no metric' in capsys.readouterr().out
        assert len(glob.glob(str(root / 'fmt' / 'Task1_*.txt'))) == 3
    if family == 'horizontal':
        # CocoMetric without ann_file takes the ground truth from the dataset's annotations
        # (what the offline samples carry): the same numbers
        again = eval_metric.main(
            ['oracle.py', 'r.pkl', '--cfg-options', 'test_evaluator.ann_file=None']
        )
        assert again == metrics


def test_confusion_matrix_tool_counts_what_the_oracle_did(tested, monkeypatch, capsys):
    family, root, _, _ = tested
    num_classes = FAMILIES[family]['num_classes']
    sys.path.insert(0, osp.join(REPO_ROOT, 'tools', 'analysis_tools'))
    import confusion_matrix

    from ai4rs.visualization.confusion_matrix import read_confusion_matrix_csv

    monkeypatch.chdir(root)
    matrix = confusion_matrix.main(['oracle.py', 'r.pkl', 'cm', '--show', '--score-thr', '0.3'])
    expected = _expected_matrix(family, root, num_classes)
    assert expected.trace() > 0 and expected[:-1, :-1].sum() > expected.trace()
    np.testing.assert_array_equal(matrix, expected)
    labels, counts = read_confusion_matrix_csv(str(root / 'cm' / 'confusion_matrix.csv'))
    assert labels[-1] == 'background' and len(labels) == num_classes + 1
    np.testing.assert_array_equal(counts, expected)
    import cv2

    img = cv2.imread(str(root / 'cm' / 'confusion_matrix.png'))
    assert img is not None and min(img.shape[:2]) >= 300
    assert (img < 250).any(axis=2).mean() > 0.05
    assert 'background' in capsys.readouterr().out
    # a higher score threshold drops the false positives (score 0.55) from the background row
    matrix = confusion_matrix.main(['oracle.py', 'r.pkl', 'cm2', '--score-thr', '0.6'])
    assert matrix[-1].sum() == 0


def _tool(name):
    sys.path.insert(0, osp.join(REPO_ROOT, 'tools', 'analysis_tools'))
    return __import__(name)


def test_bad_input_is_a_clear_error(tested, monkeypatch):
    family, root, _, _ = tested
    monkeypatch.chdir(root)
    with open(root / 'r.pkl', 'rb') as f:
        samples = pickle.load(f)

    def write(name, obj):
        with open(root / name, 'wb') as f:
            pickle.dump(obj, f)
        return name

    cases = [
        (write('dict.pkl', {'a': 1}), 'expected a non-empty list of per-image results'),
        (write('nopred.pkl', [{'img_path': 'x'}]), 'sample 0 is not a detection result'),
        (write('short.pkl', samples[:1]), 'holds 1 images, the test dataset'),
        (
            write(
                'other.pkl', [dict(s, img_path=f'elsewhere/{i}.png') for i, s in enumerate(samples)]
            ),
            "image 'elsewhere/0.png' is not an image of the test dataset",
        ),
    ]
    bad = [dict(s) for s in samples]
    bad[1] = dict(bad[1], pred_instances=dict(bad[1]['pred_instances']))
    bad[1]['pred_instances']['labels'] = bad[1]['pred_instances']['labels'] + 7
    cases.append((write('labels.pkl', bad), r'sample 1 .*predicted label .* is not a class'))
    (root / 'no_eval.py').write_text("_base_ = ['oracle.py']\ntest_evaluator = None\n")
    for tool in ('eval_metric', 'confusion_matrix'):
        main = _tool(tool).main
        for pkl, message in cases:
            with pytest.raises(SystemExit, match=message):
                main(['oracle.py', pkl] + (['cm_bad'] if tool == 'confusion_matrix' else []))
    with pytest.raises(SystemExit, match='no_eval.py: the config has no test_evaluator'):
        _tool('eval_metric').main(['no_eval.py', 'r.pkl'])
    with pytest.raises(SystemExit, match="--color-theme 'no_such_map' is not a colormap"):
        _tool('confusion_matrix').main(
            ['oracle.py', 'r.pkl', 'cm_bad', '--color-theme', 'no_such_map']
        )
    with pytest.raises(SystemExit, match=r'--tp-iou-thr must be in \(0, 1\], got 1.5'):
        _tool('confusion_matrix').main(['oracle.py', 'r.pkl', 'cm_bad', '--tp-iou-thr', '1.5'])
    assert not (root / 'cm_bad').exists()
