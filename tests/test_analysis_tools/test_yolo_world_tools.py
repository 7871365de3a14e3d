"""get_flops.py, benchmark.py and profile_train_step.py on a tiny YOLO-World v2 (tiny CLIP,
tiny widths, 64 px): counts against hand counts, memory against the tensors' sizes."""

import importlib.util
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from ai4rs.registry import MODELS
from tests.conftest import REPO_ROOT
from tests.test_models.test_yolo_world_integration import detector_cfg

pytest.importorskip('transformers')

SIZE = 64


def _load_tool(name):
    path = osp.join(REPO_ROOT, 'tools', 'analysis_tools', f'{name}.py')
    spec = importlib.util.spec_from_file_location(f'ai4rs_{name}_tool', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_world_cfg(clip_dir, num_texts=3) -> Config:
    return Config(
        dict(
            default_scope='ai4rs',
            model=detector_cfg(0.33, 0.125, 256, str(clip_dir), num_train_classes=num_texts),
        )
    )


def clip_text_params(vocab, hidden, inter, layers, proj, positions=77) -> int:
    """Parameters of a CLIPTextModelWithProjection, counted by hand."""
    attn = 4 * (hidden * hidden + hidden)
    mlp = hidden * inter + inter + inter * hidden + hidden
    norms = 2 * 2 * hidden
    return (
        vocab * hidden
        + positions * hidden
        + layers * (attn + mlp + norms)
        + 2 * hidden
        + hidden * proj
    )


def clip_text_flops(n, length, hidden, inter, layers, proj) -> int:
    """Multiply-adds of the text model on n sequences of ``length`` tokens: the linear layers,
    the two attention products (all heads together: n * L * L * hidden each), the projection
    of the n end tokens, and mmengine's 5 FLOPs per element of an affine layer norm
    (2 per layer + the final one)."""
    tokens = n * length
    linear = layers * tokens * (4 * hidden * hidden + 2 * hidden * inter) + n * hidden * proj
    attention = layers * 2 * n * length * length * hidden
    norms = (2 * layers + 1) * 5 * tokens * hidden
    return linear + attention + norms


def flops_per_text(model, size) -> int:
    """FLOPs that one more text adds to the reparameterized image network, from the modules:
    each contrastive head scores C x H x W per text; each max-sigmoid attention block maps the
    text to its embedding (guide_fc: in x out) and scores embed x H x W per text."""
    from ai4rs.models.dense_heads.yolo_world_head import BNContrastiveHead
    from ai4rs.models.layers.yolo_bricks import MaxSigmoidAttnBlock

    total = []

    def hook(module, args, _):
        h, w = args[0].shape[-2:]
        if isinstance(module, BNContrastiveHead):
            total.append(module.norm.num_features * h * w)
        else:
            embed = module.num_heads * module.head_channels
            total.append(module.guide_fc.in_features * module.guide_fc.out_features + embed * h * w)

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, (BNContrastiveHead, MaxSigmoidAttnBlock))
    ]
    with torch.no_grad():
        model(torch.zeros(1, 3, size, size), mode='tensor')
    for handle in handles:
        handle.remove()
    assert len(handles) == 3 + 4  # three head levels, four T-CSP layers
    return sum(total)


def test_get_flops_yolo_world_against_hand_counts(tiny_clip_dir):
    tool = _load_tool('get_flops')
    small = tool.world_complexity(tiny_world_cfg(tiny_clip_dir), (SIZE, SIZE), tiny_clip_dir, 3)
    large = tool.world_complexity(tiny_world_cfg(tiny_clip_dir), (SIZE, SIZE), tiny_clip_dir, 6)

    from ai4rs.testing.tiny_clip import CLIP_TEXT_SIZES, tiny_clip_vocab

    dims = CLIP_TEXT_SIZES['tiny']
    hidden, inter, layers = (
        dims['hidden_size'],
        dims['intermediate_size'],
        dims['num_hidden_layers'],
    )
    assert small['text_params'] == clip_text_params(
        len(tiny_clip_vocab()), hidden, inter, layers, 512
    )
    model = MODELS.build(tiny_world_cfg(tiny_clip_dir).model)
    image_params = sum(
        p.numel()
        for name, p in model.named_parameters()
        if not name.startswith('backbone.text_model.')
    )
    assert small['image_params'] == image_params
    assert small['params'] == image_params + small['text_params']
    for info, k in ((small, 3), (large, 6)):
        assert info['text_flops'] == clip_text_flops(k, 77, hidden, inter, layers, 512)
        assert info['flops'] == info['image_flops'] + info['text_flops']
    model.reparameterize(['a', 'b', 'c'])
    model.eval()
    # mmengine reads einsum costs from numpy's einsum_path report, printed with 4 significant
    # digits: each einsum count may be off in its 4th digit
    expected = 3 * flops_per_text(model, SIZE)
    assert abs(large['image_flops'] - small['image_flops'] - expected) <= 1e-3 * expected


def test_get_flops_yolo_world_from_saved_embeddings(tiny_clip_dir, tmp_path):
    """--text-feats: no text model is built; the image count equals the reparameterized one."""
    tool = _load_tool('get_flops')
    feats = {t: torch.randn(512) for t in ('cat', 'dog', 'person')}
    torch.save(feats, tmp_path / 'emb.pt')
    info = tool.world_complexity(
        tiny_world_cfg(tiny_clip_dir), (SIZE, SIZE), text_feats=str(tmp_path / 'emb.pt')
    )
    ref = tool.world_complexity(tiny_world_cfg(tiny_clip_dir), (SIZE, SIZE), tiny_clip_dir, 3)
    assert info['text_params'] == 0 and info['text_flops'] is None
    assert (info['image_params'], info['image_flops']) == (ref['image_params'], ref['image_flops'])


def test_benchmark_yolo_world_paths_and_memory(tiny_clip_dir, tmp_path):
    tool = _load_tool('benchmark')
    config = str(tmp_path / 'tiny_world.py')
    tiny_world_cfg(tiny_clip_dir).dump(config)
    out = tool.main(
        [
            config,
            '--shape',
            str(SIZE),
            '--num-iters',
            '1',
            '--warmup',
            '1',
            '--device',
            'cpu',
            '--text-model',
            tiny_clip_dir,
        ]
    )
    assert list(out['fps']) == ['rerun', 'cached', 'reparameterized']
    model = MODELS.build(tiny_world_cfg(tiny_clip_dir).model)
    # float32 parameters; buffers: BN statistics (float32, int64 counters), CLIP's int64
    # position ids
    tensors = list(model.named_parameters()) + list(model.named_buffers())
    image = sum(
        t.numel() * t.element_size()
        for name, t in tensors
        if not name.startswith('backbone.text_model.')
    )
    text = sum(
        t.numel() * t.element_size()
        for name, t in tensors
        if name.startswith('backbone.text_model.')
    )
    from ai4rs.testing.tiny_clip import tiny_clip_vocab

    assert text == 4 * clip_text_params(len(tiny_clip_vocab()), 32, 64, 2, 512) + 8 * 77
    assert out['bytes'] == dict(total=image + text, text_model=text, image_model=image)


@pytest.mark.parametrize('mode', ['both'])
def test_profile_train_step_yolo_world(tiny_clip_dir, tmp_path, mode):
    tool = _load_tool('profile_train_step')
    config = str(tmp_path / 'tiny_world.py')
    tiny_world_cfg(tiny_clip_dir).dump(config)
    out = tool.main(
        [
            config,
            '--shape',
            str(SIZE),
            '--iters',
            '1',
            '--num-gts',
            '4',
            '--device',
            'cpu',
            '--text-model',
            tiny_clip_dir,
            '--text-mode',
            mode,
        ]
    )
    assert list(out) == ['main']
    assert list(out['main']) == ['rerun', 'cached']
    for times in out['main'].values():
        assert list(times) == ['text', 'forward', 'assignment', 'loss', 'backward']


def test_profile_train_step_rotated_yolox(tmp_path):
    from tests.test_models.yolox_builders import rotated_yolox_cfg

    tool = _load_tool('profile_train_step')
    config = str(tmp_path / 'tiny_yolox.py')
    Config(dict(default_scope='ai4rs', model=rotated_yolox_cfg('tiny'))).dump(config)
    out = tool.main(
        [config, '--shape', str(SIZE), '--iters', '1', '--num-gts', '3', '--device', 'cpu']
    )
    assert list(out) == ['main']
    assert list(out['main']) == ['default']
    assert list(out['main']['default']) == ['forward', 'assignment', 'loss', 'backward']


def test_profile_train_step_compare_channels_last(tmp_path, capsys):
    """``--compare-channels-last``: the config's model twice, main channels-last, baseline
    contiguous; the printed ratio is the ratio of the two totals."""
    from tests.test_models.yolox_builders import rotated_yolox_cfg

    tool = _load_tool('profile_train_step')
    config = str(tmp_path / 'tiny_yolox.py')
    Config(dict(default_scope='ai4rs', model=rotated_yolox_cfg('tiny'))).dump(config)
    args = [config, '--shape', str(SIZE), '--iters', '1', '--num-gts', '3', '--device', 'cpu']
    out = tool.main(args + ['--compare-channels-last'])
    assert list(out) == ['main', 'baseline']
    printed = capsys.readouterr().out
    headers = [line for line in printed.splitlines() if 'rotated YOLOX): batch' in line]
    assert len(headers) == 2
    assert headers[0].startswith('main: ') and headers[0].endswith(', channels-last')
    assert headers[1].startswith('baseline: ') and not headers[1].endswith('channels-last')
    ratio = sum(out['main']['default'].values()) / sum(out['baseline']['default'].values())
    assert f'total main (default) / baseline (default): {ratio:.3f}' in printed
    with pytest.raises(SystemExit):
        tool.main(args + ['--compare-channels-last', '--channels-last'])


def test_random_clip_sizes_and_single_token_words(tmp_path):
    """The 'vit-b-32' size has CLIP ViT-B/32's text parameter count (upstream: 63,428,096);
    ``words`` become one token each (plus the start and end tokens)."""
    from transformers import AutoTokenizer, CLIPTextConfig

    from ai4rs.testing.tiny_clip import make_tiny_clip

    words = ['traffic light', 'person', 'hair drier', 'toothbrush', 'cat']
    path = make_tiny_clip(tmp_path / 'b32', size='vit-b-32', words=words, weights=False)
    config = CLIPTextConfig.from_pretrained(path)
    assert (
        clip_text_params(
            config.vocab_size,
            config.hidden_size,
            config.intermediate_size,
            config.num_hidden_layers,
            config.projection_dim,
        )
        == 63_428_096
    )
    assert (config.num_attention_heads, config.max_position_embeddings) == (8, 77)
    tokens = AutoTokenizer.from_pretrained(path)(text=words)['input_ids']
    assert [len(t) for t in tokens] == [2 + len(w.split()) for w in words]
    with pytest.raises(ValueError, match='size'):
        make_tiny_clip(tmp_path / 'x', size='huge')


def test_benchmark_batch_inference_runs_batches_and_caches_texts(tiny_clip_dir, tmp_path, capsys):
    from tests.yolo_world_infer_helpers import world_config

    tool = _load_tool('benchmark_batch_inference')
    config = str(tmp_path / 'world.py')
    world_config(tiny_clip_dir).dump(config)
    out = tool.main(
        [config, '--shape', '48', '64', '--batch-sizes', '1', '3', '--num-images', '3']
        + [
            '--rounds',
            '1',
            '--num-texts',
            '4',
            '--cache-texts',
            '20',
            '--text-model',
            tiny_clip_dir,
        ]
    )
    assert list(out['fps']) == [1, 3] and all(v > 0 for v in out['fps'].values())
    first, second = out['text_seconds']
    # the second call with the same 20 prompts looks them up: the text model's forward runs
    # (the timer sees it) but CLIP does not
    assert 0 < second < first
    printed = capsys.readouterr().out
    assert '| 3 |' in printed and 'second call with the same vocabulary' in printed


def test_benchmark_batch_inference_channels_last_and_bf16(tiny_clip_dir, tmp_path, monkeypatch):
    """``--channels-last`` / ``--no-channels-last`` and ``--bf16`` reach ``init_detector`` (the
    model timed is the inference model converted so)."""
    from ai4rs.models.utils.inference_mode import bf16_supported, is_bf16
    from tests.yolo_world_infer_helpers import world_config

    tool = _load_tool('benchmark_batch_inference')
    config = str(tmp_path / 'world.py')
    world_config(tiny_clip_dir).dump(config)
    built = []
    real = tool.init_detector
    monkeypatch.setattr(
        tool, 'init_detector', lambda *a, **k: built.append(real(*a, **k)) or built[-1]
    )
    argv = [config, '--shape', '48', '64', '--batch-sizes', '1', '2', '--num-images', '2']
    argv += [
        '--rounds',
        '1',
        '--num-texts',
        '3',
        '--cache-texts',
        '0',
        '--text-model',
        tiny_clip_dir,
    ]
    tool.main(argv + ['--channels-last'])
    assert built[-1]._ai4rs_inference_mode['channels_last'] and not is_bf16(built[-1])
    tool.main(argv)  # init_detector's default on CPU: channels-last
    assert built[-1]._ai4rs_inference_mode['channels_last']
    tool.main(argv + ['--no-channels-last'])
    assert not built[-1]._ai4rs_inference_mode['channels_last']
    with pytest.raises(SystemExit):  # one or the other
        tool.parse_args(argv + ['--channels-last', '--no-channels-last'])
    if bf16_supported('cpu'):
        tool.main(argv + ['--bf16'])
        assert is_bf16(built[-1])
