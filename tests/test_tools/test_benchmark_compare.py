"""tools/analysis_tools/benchmark.py --compare on tiny models: every mode x batch size is
timed, each mode's share of the float32 matmul rate is its FLOPs (get_flops.py's count x 2)
x images/s / the matmul's FLOP/s, and the modes' outputs are checked against the eager
model's (a mode with other weights is reported as differing)."""

import copy
import importlib.util
import json
import os.path as osp
import re

import pytest
import torch

from ai4rs.models.utils.inference_mode import bf16_supported
from tests.conftest import REPO_ROOT
from tests.yolo_world_infer_helpers import save_model, world_config, yolox_config

pytest.importorskip('onnxruntime')
pytest.importorskip('onnx')

SIZE = 64
# the modes listed by default: bfloat16 where this CPU has it natively
MODES = ('eager', 'inference', 'inference_cl', 'inference_bf16', 'onnxruntime')
if not bf16_supported('cpu'):
    MODES = tuple(m for m in MODES if m != 'inference_bf16')
MATMUL = 128


def _load_tool(name):
    path = osp.join(REPO_ROOT, 'tools', 'analysis_tools', f'{name}.py')
    spec = importlib.util.spec_from_file_location(f'ai4rs_{name}_compare_test', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_compare(config, ckpt, out, extra=()):
    tool = _load_tool('benchmark')
    argv = [
        config,
        '--checkpoint',
        ckpt,
        '--compare',
        '--batch-sizes',
        '1',
        '2',
        '--shape',
        str(SIZE),
        str(SIZE),
        '--num-iters',
        '1',
        '--warmup',
        '0',
        '--matmul-size',
        str(MATMUL),
        '--out',
        str(out),
        *extra,
    ]
    tool.main(argv)
    with open(out, encoding='utf-8') as f:
        return json.load(f)


def printed_rows(text: str) -> dict:
    """{(batch, mode): (images/s or None, GFLOP/s, %)} of the printed table."""
    rows = {}
    pattern = r'\| (\d+) \| ([^|]+) \| ([0-9.]+|-) \| ([0-9.]+) \| ([0-9.]+) % \|'
    for m in re.finditer(pattern, text):
        ips = None if m.group(3) == '-' else float(m.group(3))
        rows[(int(m.group(1)), m.group(2).strip())] = (ips, float(m.group(4)), float(m.group(5)))
    return rows


def check_report(report: dict, text: str, flops: int):
    """The report's and the printed table's numbers against each other and ``flops``."""
    assert report['flops_per_image'] == 2 * flops
    assert report['multiply_adds_per_image'] == flops
    printed = printed_rows(text)
    mm = [f'matmul {MATMUL}x{MATMUL} float32', f'matmul {MATMUL}x{MATMUL} bfloat16']
    conv_rows = {r['batch_size']: r for r in report['rows'] if 'convolutions alone' in r['mode']}
    assert set(printed) == {(bs, m) for bs in (1, 2) for m in (*MODES, *mm)} | {
        (bs, r['mode']) for bs, r in conv_rows.items()
    }
    assert set(conv_rows) == {1, 2}
    for bs, row in conv_rows.items():
        # the convolutions' FLOPs per step: the model's count (get_flops: the convolutions and
        # a small rest, e.g. YOLO-World's text-region products) for bs images
        assert 0.9 * 2 * flops <= row['conv_flops_per_image'] <= 2 * flops * 1.0001
        seconds, step = row['conv_seconds'], row['step_seconds']
        assert row['flop_per_s'] == pytest.approx(row['conv_flops_per_image'] * bs / seconds)
        assert 0 < seconds < step and row['calls'] > 10
        assert row['mode'].startswith(f'inference_cl: its {row["calls"]} convolutions alone')
    for row in report['rows']:
        if 'convolutions alone' in row['mode']:
            continue
        bs = row['batch_size']
        rate = report['matmul'][str(bs)]['float32']
        ips, gflops, pct = printed[(bs, row['mode'])]
        if row['mode'] in MODES:
            expected = 100 * 2 * flops * row['images_per_s'] / rate
            assert row['pct_float32_matmul'] == pytest.approx(expected, rel=1e-9)
            assert ips == pytest.approx(row['images_per_s'], abs=5e-4)
            # from the printed numbers alone: FLOPs x printed images/s / printed matmul rate
            printed_rate = printed[(bs, mm[0])][1] * 1e9
            assert pct == pytest.approx(100 * 2 * flops * ips / printed_rate, rel=0.02, abs=0.01)
        else:
            assert ips is None
            dtype = row['mode'].split()[-1]
            assert row['flop_per_s'] == report['matmul'][str(bs)][dtype]
            assert row['pct_float32_matmul'] == pytest.approx(100 * row['flop_per_s'] / rate)
        assert gflops == pytest.approx(row['flop_per_s'] / 1e9, abs=0.006)
        assert pct == pytest.approx(row['pct_float32_matmul'], abs=0.006)
    for mode in MODES[1:]:
        check = report['agreement'][mode]
        assert check['agree'], (mode, check)
        assert check['num_detections'] > 0, (mode, check)
        assert f'{mode}: agrees' in text


def test_compare_rotated_yolox(tmp_path, capsys):
    config, ckpt = save_model(yolox_config(SIZE), str(tmp_path), 'yolox')
    capsys.readouterr()
    report = run_compare(config, ckpt, tmp_path / 'report.json')
    text = capsys.readouterr().out
    flops = _load_tool('get_flops').main([config, '--shape', str(SIZE), str(SIZE)])['flops']
    assert 'onnxruntime' in text and f'torch {torch.get_num_threads()} threads' in text
    assert report['onnxruntime_intra_op_threads'] == report['torch_threads']
    check_report(report, text, flops)


def test_compare_yolo_world(tmp_path, capsys, tiny_clip_dir):
    config, ckpt = save_model(
        world_config(tiny_clip_dir, SIZE), str(tmp_path), 'world', box_bin=2, logit_scale=2.0
    )
    capsys.readouterr()
    extra = ('--text-model', tiny_clip_dir, '--num-texts', '3')
    report = run_compare(config, ckpt, tmp_path / 'report.json', extra)
    text = capsys.readouterr().out
    flops = _load_tool('get_flops').main([config, '--shape', str(SIZE), str(SIZE), *extra])[
        'image_flops'
    ]
    assert '3 texts baked in' in text
    check_report(report, text, flops)


def test_agreement_check_reports_a_differing_mode(tmp_path):
    """A 'mode' whose weights differ from the eager model's does not pass the check."""
    from ai4rs.apis import init_detector

    tool = _load_tool('benchmark')
    config, ckpt = save_model(yolox_config(SIZE), str(tmp_path), 'yolox')
    eager = init_detector(config, ckpt, inference_mode=False)
    other = copy.deepcopy(eager)
    with torch.no_grad():
        other.bbox_head.multi_level_conv_reg[0].bias.add_(0.5)
    runs = {'eager': (eager, torch.no_grad), 'other': (other, torch.no_grad)}
    result = tool.check_agreement(runs, tool.random_batch((SIZE, SIZE), 1), 1e-4)
    assert not result['other']['agree']
    assert result['other']['note'] == 'DIFFERS'
    assert result['other']['network'] > 1e-3


def test_onnx_mode_uses_the_given_threads(tmp_path):
    """The onnxruntime session runs with the intra-op threads it is given (torch's count in
    --compare), not onnxruntime's default (all cores)."""
    from ai4rs.apis import init_detector

    tool = _load_tool('benchmark')
    config, ckpt = save_model(yolox_config(SIZE), str(tmp_path), 'yolox')
    eager = init_detector(config, ckpt, inference_mode=False)
    ctx = dict(cfg=eager.cfg, shape=(SIZE, SIZE), tmpdir=str(tmp_path), threads=1)
    detector, _ = tool._build_onnx(eager, ctx)
    opts = detector.session.get_session_options()
    assert (opts.intra_op_num_threads, opts.inter_op_num_threads) == (1, 1)


@pytest.mark.parametrize('bad', [('--batch-sizes', '0'), ('--matmul-size', '0')])
def test_compare_refuses_bad_sizes(tmp_path, bad):
    config, _ = save_model(yolox_config(SIZE), str(tmp_path), 'yolox')
    with pytest.raises(SystemExit, match=f'{bad[0]} .*must be at least 1'):
        _load_tool('benchmark').main([config, '--compare', *bad])


@pytest.mark.skipif(not bf16_supported('cpu'), reason='no native bfloat16 on this CPU')
def test_bf16_flag_benchmarks_a_bfloat16_inference_model(tmp_path, monkeypatch):
    """``benchmark.py --bf16`` (outside ``--compare``) times the inference model with a
    bfloat16 network: ``--bf16`` implies the inference mode."""
    from ai4rs.models.utils.inference_mode import is_bf16

    config, ckpt = save_model(yolox_config(SIZE), str(tmp_path), 'yolox')
    tool = _load_tool('benchmark')
    built = []
    real = tool.init_detector

    def spy(*args, **kwargs):
        built.append(real(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(tool, 'init_detector', spy)
    argv = [config, '--checkpoint', ckpt, '--shape', str(SIZE), str(SIZE), '--num-iters', '1']
    assert tool.main(argv + ['--warmup', '0', '--bf16']) > 0
    assert tool.main(argv + ['--warmup', '0']) > 0
    assert [is_bf16(m) for m in built] == [True, False]
    assert built[0]._ai4rs_inference_mode['bf16'] and not hasattr(built[1], '_ai4rs_inference_mode')


def test_two_kernels_mode_only_on_request_and_without_fused_kernels(tmp_path, capsys):
    """``inference_cl_two_kernels`` is not a default mode; named, it times the channels-last
    inference model with each conv and activation as two kernels, which agrees with eager."""
    from ai4rs.apis import init_detector
    from ai4rs.models.utils.inference_ops import FusedConvAct

    tool = _load_tool('benchmark')
    assert 'inference_cl_two_kernels' not in tool.parse_args(['x.py']).modes
    config, ckpt = save_model(yolox_config(SIZE), str(tmp_path), 'yolox')
    eager = init_detector(config, ckpt, inference_mode=False)
    modes = tool.compare_modes()
    ctx = dict(cfg=eager.cfg, shape=(SIZE, SIZE), tmpdir=str(tmp_path), threads=1)
    two, _ = modes['inference_cl_two_kernels'][1](eager, ctx)
    one, _ = modes['inference_cl'][1](eager, ctx)
    assert not any(isinstance(m, FusedConvAct) for m in two.modules())
    assert two._ai4rs_inference_mode['conv_act'] == 0
    fused = sum(isinstance(m, FusedConvAct) for m in one.modules())
    assert fused == one._ai4rs_inference_mode['conv_act'] > 0
    # the hooks time each fused kernel once and each remaining conv (the 1x1 predictors) once
    assert (
        len(tool._conv_kernels(one))
        == len(tool._conv_kernels(two))
        == sum(isinstance(m, torch.nn.Conv2d) for m in eager.modules())
    )
    capsys.readouterr()
    extra = ('--modes', 'eager', 'inference_cl', 'inference_cl_two_kernels')
    report = run_compare(config, ckpt, tmp_path / 'report.json', extra)
    assert report['agreement']['inference_cl_two_kernels']['agree']
    assert {r['mode'] for r in report['rows'] if r['images_per_s']} == {
        'eager',
        'inference_cl',
        'inference_cl_two_kernels',
    }
