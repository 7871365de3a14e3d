"""tools/analysis_tools/analyze_logs.py (ai4rs.visualization.log_curves) on the scalars of real
tiny trainings (the toy project of tests/data: 4 iterations an epoch, logged every iteration,
validated every epoch), and the TensorBoard / Weights & Biases logging backends."""

import glob
import importlib.util
import json
import os.path as osp
import shutil
import statistics
import sys

import numpy as np
import pytest

from ai4rs.visualization.log_curves import (
    LogFormatError,
    find_scalars_file,
    load_run_log,
    plot_curves,
    train_time_stats,
)
from tests.conftest import DATA_DIR, REPO_ROOT, run_cmd

TRAIN = osp.join(REPO_ROOT, 'tools', 'train.py')
TOOL = osp.join(REPO_ROOT, 'tools', 'analysis_tools', 'analyze_logs.py')  # run in-process


def _toy_project(path):
    """tests/conftest.py's toy project (projects/toy_cls, toy_data/, toy_config.py) in ``path``."""
    src = osp.join(DATA_DIR, 'toy_project')
    shutil.copytree(osp.join(src, 'projects'), path / 'projects')
    runtime = osp.join(REPO_ROOT, 'configs', '_base_', 'default_runtime.py')
    text = open(osp.join(src, 'toy_config.py')).read().replace("'RUNTIME'", repr(runtime))
    (path / 'toy_config.py').write_text(text)
    spec = importlib.util.spec_from_file_location(
        'make_toy_data', osp.join(src, 'make_toy_data.py')
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.write_dataset(str(path / 'toy_data'))
    return path


def _train(project, config, work_dir, *cfg_options, env=None):
    args = [sys.executable, TRAIN, config, '--work-dir', work_dir]
    if cfg_options:
        args += ['--cfg-options', *cfg_options]
    return run_cmd(args, cwd=project, env=env)


#: the TensorBoard backend next to the local one, from a config (docs/train_test.md)
TENSORBOARD_CONFIG = (
    "_base_ = './toy_config.py'\n"
    'visualizer = dict(\n'
    "    vis_backends=_base_.vis_backends + [dict(type='TensorboardVisBackend')])\n"
)


def _has_tensorboard():
    return importlib.util.find_spec('tensorboard') is not None


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """Two real runs: ``epochs`` (2 epochs, lr halved after the first; TensorBoard events
    too when tensorboard is installed) and ``iters``
    (an iteration-based loop of 6 iterations validated every 3, metrics logged by iteration)."""
    project = _toy_project(tmp_path_factory.mktemp('logs'))
    (project / 'tb_config.py').write_text(TENSORBOARD_CONFIG)
    _train(project, 'tb_config.py' if _has_tensorboard() else 'toy_config.py', 'epochs')
    (project / 'iter_config.py').write_text(
        "_base_ = './toy_config.py'\n"
        "train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=6, val_interval=3)\n"
        'param_scheduler = []\n'
        'log_processor = dict(by_epoch=False)\n'
        'default_hooks = dict(logger=dict(log_metric_by_epoch=False),\n'
        '                     checkpoint=dict(by_epoch=False, interval=3))\n'
    )
    _train(project, 'iter_config.py', 'iters')
    return project


def _records(path):
    """The file's records, parsed here independently of the module under test."""
    with open(path) as f:
        return [json.loads(line) for line in f]


def _scalars_of(work_dir):
    (path,) = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    return path


def _tool():
    spec = importlib.util.spec_from_file_location('analyze_logs_tool', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_series_equal_the_json_lines(trained):
    scalars = _scalars_of(trained / 'epochs')
    records = _records(scalars)
    train = [r for r in records if 'iter' in r]
    val = [r for r in records if 'iter' not in r]
    assert len(train) == 8 and len(val) == 2  # 2 epochs x 4 iterations, 2 validations

    run = load_run_log(str(trained / 'epochs'))
    assert run.path == scalars and run.name == 'epochs' and run.by_epoch
    loss = run.series('loss')
    assert loss.x_label == 'iter'
    assert loss.xs == list(range(1, 9)) == [r['iter'] for r in train]
    assert loss.ys == [r['loss'] for r in train]
    assert run.series('lr').ys == [0.05] * 4 + [0.025] * 4  # MultiStepLR at epoch 1, gamma 0.5
    acc = run.series('toy/accuracy')
    assert acc.x_label == 'epoch' and acc.xs == [1, 2]
    assert acc.ys == [r['toy/accuracy'] for r in val]

    # iteration-based: validation points at the iterations they were run at
    run = load_run_log(str(trained / 'iters'))
    assert not run.by_epoch
    acc = run.series('toy/accuracy')
    assert acc.x_label == 'iter' and acc.xs == [3, 6]
    records = _records(run.path)
    assert acc.ys == [r['toy/accuracy'] for r in records if 'iter' not in r]
    assert run.series('loss').xs == list(range(1, 7))


def test_plot_curve_writes_the_runs_curves(trained, tmp_path, capsys):
    out = tmp_path / 'curves' / 'out.png'
    _tool().main(
        [
            'plot_curve',
            str(trained / 'epochs'),
            _scalars_of(trained / 'iters'),
            '--keys',
            'loss',
            'toy/accuracy',
            '--legend',
            'by-epoch',
            'by-iter',
            '--title',
            'toy',
            '--out',
            str(out),
        ]
    )
    assert str(out) in capsys.readouterr().out
    import matplotlib.image

    image = matplotlib.image.imread(out)  # a PNG that decodes: (H, W, 4) floats
    assert image.shape[:2] == (600, 800)  # 8 x 3 inches per key, 100 dpi

    # the same figure in-process: its lines hold the json values, and are in the PNG
    runs = [load_run_log(str(trained / 'epochs'), 'by-epoch'), load_run_log(str(trained / 'iters'))]
    fig = plot_curves(runs, ['loss', 'toy/accuracy'], title='toy')
    assert [ax.get_ylabel() for ax in fig.axes] == ['loss', 'toy/accuracy']
    # validation of an epoch-based and of an iteration-based run on one axis: both units named
    assert [ax.get_xlabel() for ax in fig.axes] == ['iter', 'epoch: by-epoch; iter: iters']
    for ax, key in zip(fig.axes, ['loss', 'toy/accuracy']):
        assert [line.get_label() for line in ax.lines] == ['by-epoch', 'iters']
        for line, work_dir in zip(ax.lines, ['epochs', 'iters']):
            records = _records(_scalars_of(trained / work_dir))
            points = [
                (r['iter'] if 'iter' in r else r['step'], r[key]) for r in records if key in r
            ]
            np.testing.assert_array_equal(line.get_xdata(), [x for x, _ in points])
            np.testing.assert_array_equal(line.get_ydata(), [y for _, y in points])
    # each run's colour covers pixels of the written image
    from matplotlib.colors import to_rgb

    rgb = image[..., :3]
    for line in fig.axes[0].lines:
        near = np.abs(rgb - np.array(to_rgb(line.get_color()))).max(axis=-1) < 0.05
        assert near.sum() > 100, line.get_label()
    background = np.abs(rgb - rgb[0, 0]).max(axis=-1) > 0.05
    assert background.mean() > 0.3  # axes faces, lines and text


def test_newest_run_folder_with_scalars_is_used(trained, tmp_path):
    work_dir = tmp_path / 'w'
    shutil.copytree(trained / 'epochs', work_dir)
    (newest,) = glob.glob(str(work_dir / '*' / 'vis_data' / 'scalars.json'))
    older = work_dir / '20000101_000000' / 'vis_data'
    older.mkdir(parents=True)
    (older / 'scalars.json').write_text(json.dumps({'loss': 1.0, 'iter': 1, 'step': 1}) + '\n')
    (work_dir / '29991231_235959').mkdir()  # a tools/test.py run folder: no scalars
    assert find_scalars_file(str(work_dir)) == newest
    assert load_run_log(str(work_dir)).series('loss').ys == [
        r['loss'] for r in _records(newest) if 'iter' in r
    ]
    # a json file is used as given
    assert find_scalars_file(str(older / 'scalars.json')) == str(older / 'scalars.json')


def _hand_train_time(path, include_outliers):
    per_epoch = {}
    for r in _records(path):
        if 'iter' in r:
            per_epoch.setdefault(r['epoch'], []).append(r['time'])
    counted = {e: t if include_outliers else t[1:] for e, t in per_epoch.items()}
    means = {e: sum(t) / len(t) for e, t in counted.items()}
    everything = [x for t in counted.values() for x in t]
    return means, statistics.pstdev(means.values()), sum(everything) / len(everything)


@pytest.mark.parametrize('include_outliers', [False, True])
def test_cal_train_time_equals_a_hand_computation(trained, include_outliers, capsys):
    path = _scalars_of(trained / 'epochs')
    means, std, average = _hand_train_time(path, include_outliers)
    stats = train_time_stats(load_run_log(path), include_outliers)
    assert stats.epochs == [1, 2]
    assert stats.epoch_means == pytest.approx([means[1], means[2]], rel=1e-12)
    assert stats.slowest_epoch == max(means, key=means.get)
    assert stats.fastest_epoch == min(means, key=means.get)
    assert stats.std_over_epochs == pytest.approx(std, rel=1e-9)
    assert stats.average == pytest.approx(average, rel=1e-12)

    args = ['cal_train_time', str(trained / 'epochs')]
    _tool().main(args + (['--include-outliers'] if include_outliers else []))
    stdout = capsys.readouterr().out
    slow, fast = max(means, key=means.get), min(means, key=means.get)
    assert f'Analyze train time of {path}' in stdout
    assert f'slowest epoch {slow}, average time is {means[slow]:.4f} s/iter' in stdout
    assert f'fastest epoch {fast}, average time is {means[fast]:.4f} s/iter' in stdout
    assert f'time std over epochs is {std:.4f}' in stdout
    assert f'average iter time: {average:.4f} s/iter' in stdout


def test_iteration_based_run_logged_by_epoch(tmp_path):
    """``LoggerHook(log_metric_by_epoch=True)`` (the default) with an iteration-based loop logs
    every validation at step 0: the points go to the last training iteration before them."""
    lines = [
        {'loss': 2.0, 'time': 0.5, 'iter': 1, 'step': 1},
        {'loss': 1.5, 'time': 0.3, 'iter': 2, 'step': 2},
        {'dota/mAP': 0.1, 'time': 0.01, 'step': 0},
        {'loss': 1.0, 'time': 0.2, 'iter': 3, 'step': 3},
        {'loss': 0.5, 'time': 0.4, 'iter': 4, 'step': 4},
        {'dota/mAP': 0.3, 'time': 0.01, 'step': 0},
    ]
    path = tmp_path / 'scalars.json'
    path.write_text(''.join(json.dumps(line) + '\n' for line in lines))
    run = load_run_log(str(path))
    assert not run.by_epoch and run.name == 'scalars'
    assert (run.series('dota/mAP').xs, run.series('dota/mAP').ys) == ([2, 4], [0.1, 0.3])
    assert run.series('time').ys == [0.5, 0.3, 0.2, 0.4]  # the training key wins
    stats = train_time_stats(run)  # one epoch; the first line is the outlier
    assert stats.epochs == [1] and stats.average == pytest.approx(0.3)


def test_epoch_based_run_with_metrics_logged_by_iteration(tmp_path):
    """``LoggerHook(log_metric_by_epoch=False)`` in an epoch-based run: the validation steps
    are iterations (larger than any logged epoch), and are plotted against the iteration."""
    lines = [
        {'loss': 2.0, 'time': 0.5, 'epoch': 1, 'iter': 1, 'step': 1},
        {'loss': 1.5, 'time': 0.3, 'epoch': 1, 'iter': 2, 'step': 2},
        {'coco/bbox_mAP': 0.1, 'step': 2},
        {'loss': 1.0, 'time': 0.2, 'epoch': 2, 'iter': 3, 'step': 3},
        {'loss': 0.5, 'time': 0.4, 'epoch': 2, 'iter': 4, 'step': 4},
        {'coco/bbox_mAP': 0.3, 'step': 4},
    ]
    path = tmp_path / 'scalars.json'
    path.write_text(''.join(json.dumps(line) + '\n' for line in lines))
    run = load_run_log(str(path))
    assert run.by_epoch
    mAP = run.series('coco/bbox_mAP')
    assert (mAP.x_label, mAP.xs, mAP.ys) == ('iter', [2, 4], [0.1, 0.3])
    # the same run logged by epoch
    lines[2]['step'], lines[5]['step'] = 1, 2
    path.write_text(''.join(json.dumps(line) + '\n' for line in lines))
    mAP = load_run_log(str(path)).series('coco/bbox_mAP')
    assert (mAP.x_label, mAP.xs) == ('epoch', [1, 2])


def test_bad_inputs_name_the_file_line_and_value(trained, tmp_path, capsys):
    tool = _tool()
    scalars = _scalars_of(trained / 'epochs')
    missing = tmp_path / 'nowhere'
    with pytest.raises(SystemExit, match=f'error: {missing}: no such file or work dir'):
        tool.main(['plot_curve', str(missing), '--out', str(tmp_path / 'a.png')])
    (tmp_path / 'empty_work_dir').mkdir()
    with pytest.raises(SystemExit, match='no run folder with vis_data/scalars.json'):
        tool.main(['cal_train_time', str(tmp_path / 'empty_work_dir')])

    with pytest.raises(SystemExit) as e:
        tool.main(['plot_curve', scalars, '--keys', 'loss', 'bbox_mAP', '--out', 'x.png'])
    message = str(e.value)
    assert "has no key 'bbox_mAP'" in message and scalars in message
    assert "'loss_cls'" in message and "'toy/accuracy'" in message  # the keys it has
    assert not osp.exists('x.png')

    lines = open(scalars).read().splitlines()
    for bad, expected in [
        ('', ':3: empty line'),
        ('{"loss": 0.5, "iter": 3', ':3: not a JSON line'),
        ('[1, 2]', ':3: expected a JSON object'),
        ('{"loss": "nan?", "iter": 3, "step": 3}', ":3: 'loss' is 'nan?', not a number"),
    ]:
        path = tmp_path / 'bad.json'
        path.write_text('\n'.join(lines[:2] + [bad] + lines[3:]) + '\n')
        with pytest.raises(LogFormatError) as e:
            load_run_log(str(path))
        assert str(e.value).startswith(f'{path}:3: ') and expected in str(e.value)
        with pytest.raises(SystemExit, match=f'error: {path}:3: '):
            tool.main(['cal_train_time', str(path)])
    (tmp_path / 'none.json').write_text('')
    with pytest.raises(SystemExit, match='none.json: no records'):
        tool.main(['cal_train_time', str(tmp_path / 'none.json')])

    with pytest.raises(SystemExit, match='--legend gives 1 names for 2 runs'):
        tool.main(['plot_curve', scalars, scalars, '--legend', 'a', '--out', 'x.png'])
    with pytest.raises(SystemExit, match=r'validated at epochs \[1, 2\], not every 2'):
        tool.main(['plot_curve', scalars, '--keys', 'toy/accuracy', '--eval-interval', '2'])
    with pytest.raises(SystemExit, match="unknown plot style 'nope'"):
        tool.main(['plot_curve', scalars, '--style', 'nope', '--out', str(tmp_path / 'b.png')])
    assert not osp.exists(tmp_path / 'b.png')


# ------------------------------------------------------------------ logging backends
def test_tensorboard_backend_scalars_equal_scalars_json(trained):
    pytest.importorskip('tensorboard')
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    scalars = _scalars_of(trained / 'epochs')
    (events,) = glob.glob(osp.join(osp.dirname(scalars), 'events.out.tfevents.*'))
    acc = EventAccumulator(events)
    acc.Reload()
    records = _records(scalars)
    for key in ('loss', 'lr', 'toy/accuracy'):
        logged = [(r['step'], r[key]) for r in records if key in r]
        assert len(logged) == (2 if key == 'toy/accuracy' else 8)
        read = [(e.step, e.value) for e in acc.Scalars(key)]
        assert [s for s, _ in read] == [s for s, _ in logged], key
        np.testing.assert_allclose([v for _, v in read], [v for _, v in logged], rtol=1e-6)


def test_tensorboard_instead_of_local_from_the_command_line():
    """The one-list-item override of ``--cfg-options`` replaces the local backend (its
    scalars.json is then not written); adding a backend takes a config (see TENSORBOARD_CONFIG)."""
    from ai4rs.utils.config import load_config

    runtime = osp.join(REPO_ROOT, 'configs', '_base_', 'default_runtime.py')
    cfg = load_config(runtime, {'visualizer.vis_backends.0.type': 'TensorboardVisBackend'})
    assert cfg.visualizer.vis_backends == [dict(type='TensorboardVisBackend')]
    with pytest.raises(KeyError, match='exceeds the length'):
        load_config(runtime, {'visualizer.vis_backends.1.type': 'TensorboardVisBackend'})


@pytest.mark.slow
def test_wandb_offline_run_folder_under_the_work_dir(tmp_path):
    pytest.importorskip('wandb', reason='wandb is optional (pip install wandb)')
    project = _toy_project(tmp_path)
    (project / 'wandb_config.py').write_text(
        "_base_ = './toy_config.py'\n"
        'visualizer = dict(vis_backends=_base_.vis_backends + [\n'
        "    dict(type='WandbVisBackend', init_kwargs=dict(mode='offline', project='toy'))])\n"
    )
    home = tmp_path / 'wandb_home'  # wandb's settings and debug logs, not the user's
    env = {
        'WANDB_CONFIG_DIR': str(home / 'config'),
        'WANDB_CACHE_DIR': str(home / 'cache'),
        'WANDB_DATA_DIR': str(home / 'data'),
        'WANDB_MODE': 'offline',
    }
    _train(project, 'wandb_config.py', 'wb', 'train_cfg.max_epochs=1', env=env)
    scalars = _scalars_of(project / 'wb')
    (run_file,) = glob.glob(osp.join(osp.dirname(scalars), 'wandb', 'offline-run-*', 'run-*.wandb'))
    data = open(run_file, 'rb').read()
    assert data.startswith(b':W&B')
    # the history records hold each logged key and its value as JSON text
    for record in _records(scalars):
        if 'iter' in record:
            assert json.dumps(record['loss']).encode() in data
    assert b'toy/accuracy' in data


@pytest.mark.slow
def test_rotated_yolox_run_curves_and_train_time(tmp_path, capsys):
    """A real detector run (the rotated YOLOX quick start at tiny widths, 8 images, 2 epochs of
    2 iterations, validated each epoch): its loss and dota/mAP curves and its training time."""
    from ai4rs.datasets.preparation.synthetic_dota import generate_dataset

    generate_dataset(str(tmp_path / 'data'), num_train=8, num_val=2)
    opts = [f'{k}_dataloader.dataset.data_root=data/' for k in ('train', 'val', 'test')]
    opts += [
        f'{k}_dataloader.{o}'
        for k in ('train', 'val')
        for o in ('num_workers=0', 'persistent_workers=False')
    ]
    opts += [
        'train_cfg.max_epochs=2',
        'train_cfg.val_interval=1',
        'train_dataloader.batch_size=4',
        'default_hooks.logger.interval=1',
        'model.backbone.widen_factor=0.125',
        'model.neck.in_channels=[32,64,128]',
        'model.neck.out_channels=32',
        'model.bbox_head.in_channels=32',
        'model.bbox_head.feat_channels=32',
    ]
    config = osp.join(
        REPO_ROOT, 'configs', 'rotated_yolox', 'rotated_yolox_quickstart_synthetic.py'
    )
    _train(tmp_path, config, 'yolox', *opts)
    records = _records(_scalars_of(tmp_path / 'yolox'))
    out = tmp_path / 'curves.png'
    _tool().main(
        ['plot_curve', str(tmp_path / 'yolox'), '--keys', 'loss', 'dota/mAP', '--out', str(out)]
    )
    import matplotlib.image

    assert matplotlib.image.imread(out).shape[:2] == (600, 800)
    run = load_run_log(str(tmp_path / 'yolox'))
    assert run.series('loss').ys == [r['loss'] for r in records if 'iter' in r]
    assert run.series('loss').xs == [1, 2, 3, 4]
    mAP = run.series('dota/mAP')
    assert (mAP.x_label, mAP.xs) == ('epoch', [1, 2])
    assert mAP.ys == [r['dota/mAP'] for r in records if 'dota/mAP' in r]

    capsys.readouterr()
    _tool().main(['cal_train_time', str(tmp_path / 'yolox')])
    means, std, average = _hand_train_time(_scalars_of(tmp_path / 'yolox'), False)
    assert f'average iter time: {average:.4f} s/iter' in capsys.readouterr().out
    assert len(means) == 2 and std == pytest.approx(abs(means[1] - means[2]) / 2)
