"""profile_train_step.py: the open-vocabulary rotated family (YOLO-World + RotatedYOLOWorldHead)
and ``--baseline`` (a second model profiled in the same run), at tiny sizes."""

import copy
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config

from ai4rs.structures.bbox import RotatedBoxes
from ai4rs.utils.config import load_config
from tests.conftest import REPO_ROOT
from tests.test_analysis_tools.test_yolo_world_tools import SIZE, _load_tool, tiny_world_cfg
from tests.test_models.yolox_builders import rotated_yolox_cfg

pytest.importorskip('transformers')

QUICKSTART = osp.join(
    REPO_ROOT, 'configs', 'yolo_world_rotated', 'yolo_world_rotated_quickstart_synthetic.py'
)
TOTAL_ROW = re.compile(r'^\| \*\*total\*\* \| \*\*([0-9.]+)\*\* \| 100 % \|$')
RATIO_LINE = re.compile(r'^total main \((\w+)\) / baseline \((\w+)\): ([0-9.]+)$')
PER_ITERATION_LINE = re.compile(
    r'^  per iteration: main ([0-9., ]+) s; baseline ([0-9., ]+) s; '
    r'ratio ([0-9., ]+) \(median ([0-9.]+)\)$'
)


def tiny_rotated_world_config(clip_dir, path) -> str:
    """The quick-start model (0.25 widths) with the tiny CLIP, dumped to ``path``."""
    model = copy.deepcopy(load_config(QUICKSTART).model)
    model.backbone.text_model.model_name = str(clip_dir)
    Config(dict(default_scope='ai4rs', model=model.to_dict())).dump(str(path))
    return str(path)


def tiny_yolox_config(path) -> str:
    Config(dict(default_scope='ai4rs', model=rotated_yolox_cfg('tiny'))).dump(str(path))
    return str(path)


def test_family_chosen_from_detector_and_head_classes(tiny_clip_dir, tmp_path):
    """The detector class's ``takes_texts`` and the head class's ``box_type`` pick the
    adapter; a combination no adapter has is refused with both class names."""
    tool = _load_tool('profile_train_step')
    rotated_world = load_config(tiny_rotated_world_config(tiny_clip_dir, tmp_path / 'rw.py'))
    yolox = load_config(tiny_yolox_config(tmp_path / 'yolox.py'))
    world = tiny_world_cfg(tiny_clip_dir)
    assert tool.family_of(rotated_world) is tool.RotatedYOLOWorldFamily
    assert tool.family_of(yolox) is tool.RotatedYOLOXFamily
    assert tool.family_of(world) is tool.YOLOWorldFamily
    # YOLO-World's horizontal head under the (text-less) YOLOX detector
    mixed = copy.deepcopy(yolox)
    mixed.model.bbox_head = copy.deepcopy(world.model.bbox_head)
    with pytest.raises(ValueError, match='YOLOX .*takes_texts=False.*YOLOWorldHead'):
        tool.family_of(mixed, 'mixed.py')
    mixed.model.bbox_head.type = 'NoSuchHead'
    with pytest.raises(KeyError, match="mixed.py: model.bbox_head.type='NoSuchHead'"):
        tool.family_of(mixed, 'mixed.py')


def test_rotated_world_batch_is_the_rotated_yolox_batch_with_texts(tiny_clip_dir, tmp_path):
    """Same seed and sizes: the open-vocabulary rotated batch has rotated YOLOX's images and
    rotated boxes (the two models of a --baseline run see the same data), labels index the
    K texts, and every sample carries the K class texts."""
    tool = _load_tool('profile_train_step')
    cfg = load_config(tiny_rotated_world_config(tiny_clip_dir, tmp_path / 'rw.py'))
    args = tool.parse_args(['x.py', '--text-model', str(tiny_clip_dir), '--text-mode', 'cached'])
    family = tool.RotatedYOLOWorldFamily(cfg, args, str(tmp_path))
    world = family.make_batch(None, 2, (48, 64), 5)
    yolox = tool.random_rotated_samples(2, (48, 64), 5, family.num_texts)
    for a, b in zip(world['inputs'], yolox['inputs'], strict=True):
        assert a.shape == (3, 48, 64) and torch.equal(a, b)
    for s, r in zip(world['data_samples'], yolox['data_samples'], strict=True):
        assert isinstance(s.gt_instances.bboxes, RotatedBoxes)
        assert torch.equal(s.gt_instances.bboxes.tensor, r.gt_instances.bboxes.tensor)
        assert s.texts == family.texts and len(s.texts) == family.num_texts == 3
        assert int(s.gt_instances.labels.max()) < 3


def test_rotated_world_with_baseline_prints_both_tables_and_their_ratio(
    tiny_clip_dir, tmp_path, capsys
):
    """The open-vocabulary rotated model and a rotated YOLOX baseline, 2 iterations at 64 px:
    two headed tables (their phases), the printed ratio is the totals' ratio, and the
    per-iteration ratios bracket it."""
    tool = _load_tool('profile_train_step')
    main_cfg = tiny_rotated_world_config(tiny_clip_dir, tmp_path / 'tiny_rotated_world.py')
    baseline_cfg = tiny_yolox_config(tmp_path / 'tiny_yolox.py')
    out = tool.main(
        [
            main_cfg,
            '--baseline',
            baseline_cfg,
            '--shape',
            str(SIZE),
            '--iters',
            '2',
            '--num-gts',
            '4',
            '--device',
            'cpu',
            '--text-model',
            str(tiny_clip_dir),
            '--text-mode',
            'cached',
        ]
    )
    printed = capsys.readouterr().out.splitlines()
    assert list(out) == ['main', 'baseline']
    assert list(out['main']) == ['cached']
    assert list(out['main']['cached']) == ['text', 'forward', 'assignment', 'loss', 'backward']
    assert list(out['baseline']) == ['default']
    assert list(out['baseline']['default']) == ['forward', 'assignment', 'loss', 'backward']
    # the rotated task-aligned assigner was timed as the assignment phase
    assert out['main']['cached']['assignment'] > 0

    headers = [line for line in printed if line.startswith(('main: ', 'baseline: '))]
    assert len(headers) == 2
    assert headers[0].startswith('main: tiny_rotated_world.py (open-vocabulary rotated')
    assert headers[1].startswith('baseline: tiny_yolox.py (rotated YOLOX)')
    for header in headers:
        assert f'batch 2, {SIZE}x{SIZE}' in header and 'models taking turns' in header
    totals = [float(m.group(1)) for line in printed if (m := TOTAL_ROW.match(line))]
    main_total = sum(out['main']['cached'].values())
    baseline_total = sum(out['baseline']['default'].values())
    assert totals == [round(main_total, 3), round(baseline_total, 3)]
    ratios = [m.groups() for line in printed if (m := RATIO_LINE.match(line))]
    assert len(ratios) == 1
    variant, other, ratio = ratios[0]
    assert (variant, other) == ('cached', 'default')
    assert ratio == f'{main_total / baseline_total:.3f}'
    # the printed totals (3 decimals) give the same ratio up to their rounding
    assert float(ratio) == pytest.approx(totals[0] / totals[1], abs=2e-3 / totals[1] + 1e-3)
    # each measured iteration: its seconds average to the table's total, ratio = main / baseline;
    # the totals' ratio (a mediant) lies between the iterations' ratios, the median of two is
    # their mean
    index = printed.index(f'total main (cached) / baseline (default): {ratio}')
    match = PER_ITERATION_LINE.match(printed[index + 1])
    assert match, printed[index + 1]
    main_s, baseline_s, per_iteration = (
        [float(v) for v in match.group(g).split(', ')] for g in (1, 2, 3)
    )
    assert len(main_s) == len(baseline_s) == len(per_iteration) == 2
    assert sum(main_s) / 2 == pytest.approx(main_total, abs=1e-3)
    assert sum(baseline_s) / 2 == pytest.approx(baseline_total, abs=1e-3)
    for m, b, r in zip(main_s, baseline_s, per_iteration, strict=True):
        assert r == pytest.approx(m / b, abs=1e-3 + 1e-3 / b)
    assert min(per_iteration) - 1e-3 <= main_total / baseline_total <= max(per_iteration) + 1e-3
    assert float(match.group(4)) == pytest.approx(sum(per_iteration) / 2, abs=1.5e-3)


def test_baseline_ratios_pair_variants_by_name_or_the_only_one():
    tool = _load_tool('profile_train_step')
    main = {'rerun': dict(text=1.0, forward=2.0), 'cached': dict(text=0.0, forward=2.0)}
    assert tool.baseline_ratios(main, {'default': dict(forward=4.0)}) == {
        'rerun': ('default', 0.75),
        'cached': ('default', 0.5),
    }
    assert tool.baseline_ratios(main, {'cached': dict(a=1.0), 'rerun': dict(a=6.0)}) == {
        'rerun': ('rerun', 0.5),
        'cached': ('cached', 2.0),
    }
    with pytest.raises(ValueError, match='several'):
        tool.baseline_ratios({'x': dict(a=1.0)}, {'cached': dict(a=1.0), 'rerun': dict(a=1.0)})
