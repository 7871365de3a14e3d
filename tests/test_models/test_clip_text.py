"""CLIP text backbone of YOLO-World: embeddings, freezing, the per-string cache,
offline loading errors, legacy checkpoint keys, the saved-embeddings backbone,
and the ViT-B/32 key/shape/parameter layout against the upstream reference."""

import importlib.util
import json
import logging
import os.path as osp
import shutil

import numpy as np
import pytest
import torch

from ai4rs.models.backbones.clip_text import (
    HuggingCLIPLanguageBackbone,
    PseudoLanguageBackbone,
    load_text_embeddings,
)
from ai4rs.registry import MODELS
from tests.conftest import DATA_DIR, REPO_ROOT

transformers = pytest.importorskip('transformers')

TEXTS = [['person', 'a cat', 'dog'], ['dog', 'traffic light', 'person']]


def reference_embeddings(model_dir, texts):
    """Independent path: transformers directly, one string at a time."""
    tok = transformers.AutoTokenizer.from_pretrained(model_dir)
    model = transformers.CLIPTextModelWithProjection.from_pretrained(model_dir).eval()
    out = []
    with torch.no_grad():
        for text in texts:
            ids = tok([text], return_tensors='pt')
            emb = model(**ids).text_embeds[0]
            out.append(emb / emb.norm())
    return torch.stack(out)


class CallCounter:
    """Counts forward calls of a module."""

    def __init__(self, module):
        self.calls = 0
        module.register_forward_pre_hook(self.hook)

    def hook(self, module, args):
        self.calls += 1


def count_calls(backbone):
    return CallCounter(backbone.model)


def test_embeddings_shape_norm_and_values(tiny_clip_dir):
    backbone = MODELS.build(dict(type='HuggingCLIPLanguageBackbone', model_name=tiny_clip_dir))
    feats = backbone(TEXTS)
    assert feats.shape == (2, 3, 512)
    torch.testing.assert_close(feats.norm(dim=-1), torch.ones(2, 3))
    flat = [t for ts in TEXTS for t in ts]
    ref = reference_embeddings(tiny_clip_dir, flat).reshape(2, 3, 512)
    torch.testing.assert_close(feats, ref, atol=1e-5, rtol=1e-5)
    # identical strings give identical embeddings wherever they appear
    torch.testing.assert_close(feats[0, 0], feats[1, 2])


def test_full_clip_checkpoint_and_text_model_without_projection(tmp_path, tiny_clip_dir):
    """A whole CLIPModel directory (the hub layout) gives the text tower's
    projected features without a report of its unused vision keys; a
    CLIPTextModel (no projection) is a clear error."""
    from ai4rs.testing.tiny_clip import make_tiny_clip

    full_dir = make_tiny_clip(tmp_path / 'full', full_clip=True)
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    hf_logger = logging.getLogger('transformers')
    hf_logger.addHandler(handler)
    try:
        backbone = HuggingCLIPLanguageBackbone(full_dir)
    finally:
        hf_logger.removeHandler(handler)
    assert not [r for r in records if 'vision_model' in r.getMessage()]
    full = transformers.CLIPModel.from_pretrained(full_dir).eval()
    tok = transformers.AutoTokenizer.from_pretrained(full_dir)
    with torch.no_grad():
        ids = tok(['a cat', 'dog'], return_tensors='pt', padding=True)
        text = full.text_model(**ids).pooler_output
        ref = full.text_projection(text)
    torch.testing.assert_close(
        backbone([['a cat', 'dog']])[0], ref / ref.norm(dim=-1, keepdim=True), atol=1e-5, rtol=1e-5
    )
    no_proj = str(tmp_path / 'no_proj')
    transformers.CLIPTextModel.from_pretrained(tiny_clip_dir).save_pretrained(no_proj)
    for name in ('vocab.json', 'merges.txt', 'tokenizer_config.json'):
        shutil.copy(osp.join(tiny_clip_dir, name), no_proj)
    with pytest.raises(ValueError, match='text_projection'):
        HuggingCLIPLanguageBackbone(no_proj)


def test_config_only_dir_takes_weights_from_a_checkpoint(tmp_path, tiny_clip_dir):
    """config.json + tokenizer without weights: built from the config, refuses
    to embed until a checkpoint supplies every text-model weight."""
    from ai4rs.testing.tiny_clip import make_tiny_clip

    config_dir = make_tiny_clip(tmp_path / 'cfg_only', weights=False)
    backbone = HuggingCLIPLanguageBackbone(config_dir)
    assert not backbone.has_weights
    with pytest.raises(RuntimeError, match='no text-model weights'):
        backbone(TEXTS)
    trained = HuggingCLIPLanguageBackbone(tiny_clip_dir)
    wrapper, source = torch.nn.Module(), torch.nn.Module()
    wrapper.text_model, source.text_model = backbone, trained
    state = source.state_dict()
    partial = {k: v for k, v in state.items() if 'text_projection' not in k}
    wrapper.load_state_dict(partial, strict=False)
    with pytest.raises(RuntimeError, match='no text-model weights'):
        backbone(TEXTS)
    wrapper.load_state_dict(state)
    assert backbone.has_weights
    torch.testing.assert_close(backbone(TEXTS), trained(TEXTS))


def test_frozen_all_stays_eval_without_grad(tiny_clip_dir):
    backbone = HuggingCLIPLanguageBackbone(tiny_clip_dir)  # frozen_modules=('all',)
    backbone.train()
    assert backbone.training and not backbone.model.training
    assert all(not m.training for m in backbone.model.modules())
    assert not any(p.requires_grad for p in backbone.parameters())
    assert backbone.is_frozen
    assert not backbone(TEXTS).requires_grad


def test_frozen_prefix_freezes_only_those_modules(tiny_clip_dir):
    backbone = HuggingCLIPLanguageBackbone(tiny_clip_dir, frozen_modules=('text_model.embeddings',))
    backbone.train()
    for name, p in backbone.model.named_parameters():
        assert p.requires_grad == (not name.startswith('text_model.embeddings')), name
    assert not backbone.model.text_model.embeddings.training
    assert backbone.model.text_model.encoder.training
    assert not backbone.is_frozen


def test_cache_same_as_fresh_forward_and_model_not_rerun(tiny_clip_dir):
    backbone = HuggingCLIPLanguageBackbone(tiny_clip_dir)
    backbone.train()
    counter = count_calls(backbone)
    first = backbone(TEXTS)
    assert counter.calls == 1
    # 4 distinct strings, computed once each
    assert sorted(backbone._cache) == ['a cat', 'dog', 'person', 'traffic light']
    second = backbone(TEXTS)
    reordered = backbone([['dog', 'person', 'a cat']])
    assert counter.calls == 1  # no new text-model forward
    torch.testing.assert_close(second, first)
    torch.testing.assert_close(reordered[0], first[0][[2, 0, 1]])
    # a fresh (uncached) backbone gives the same embeddings
    fresh = HuggingCLIPLanguageBackbone(tiny_clip_dir)
    torch.testing.assert_close(fresh(TEXTS), first, atol=1e-5, rtol=1e-5)
    # a new string runs the model once more, on the new string only
    backbone([['person', 'bird', 'dog']])
    assert counter.calls == 2 and 'bird' in backbone._cache and len(backbone._cache) == 5


def test_no_cache_when_text_model_trains(tiny_clip_dir):
    backbone = HuggingCLIPLanguageBackbone(tiny_clip_dir, frozen_modules=())
    backbone.train()
    assert not backbone.is_frozen
    assert all(p.requires_grad for p in backbone.parameters())
    counter = count_calls(backbone)
    feats = backbone(TEXTS)
    backbone(TEXTS)
    assert counter.calls == 2 and backbone._cache == {}
    assert feats.requires_grad
    # gradients reach the text model, and a step changes the embeddings
    loss = feats[..., 0].sum()
    loss.backward()
    grad = backbone.model.text_model.embeddings.token_embedding.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    with torch.no_grad():
        for p in backbone.parameters():
            if p.grad is not None:
                p -= 0.5 * p.grad
    after = backbone(TEXTS)
    assert not torch.allclose(after, feats)


def test_cache_cleared_on_load_and_unfreeze(tiny_clip_dir):
    backbone = HuggingCLIPLanguageBackbone(tiny_clip_dir)
    before = backbone(TEXTS)
    assert backbone._cache
    state = {k: v + 0.01 if v.is_floating_point() else v for k, v in backbone.state_dict().items()}
    backbone.load_state_dict(state)
    assert backbone._cache == {}
    assert not torch.allclose(backbone(TEXTS), before)
    for p in backbone.parameters():
        p.requires_grad = True
    backbone.model.train()
    backbone(TEXTS)
    assert backbone._cache == {}


def test_legacy_position_ids_key_accepted(tiny_clip_dir):
    from mmengine.runner.checkpoint import load_state_dict

    backbone = HuggingCLIPLanguageBackbone(tiny_clip_dir)
    wrapper = torch.nn.Module()
    wrapper.text_model = backbone
    state = dict(wrapper.state_dict())
    key = 'text_model.model.text_model.embeddings.position_ids'
    assert key not in state  # current transformers does not save it
    state[key] = torch.arange(77)[None]
    result = wrapper.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    # mmengine's loader (used by load_checkpoint) reports nothing either
    messages = []
    load_state_dict(
        wrapper, dict(state), strict=False, logger=type('L', (), {'warning': messages.append})()
    )
    assert not messages


def test_missing_model_gives_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv('AI4RS_ALLOW_DOWNLOAD', raising=False)
    missing = tmp_path / 'no_such_clip'
    with pytest.raises(FileNotFoundError) as info:
        HuggingCLIPLanguageBackbone(str(missing))
    msg = str(info.value)
    assert str(missing) in msg and 'does not exist' in msg
    assert 'hf download openai/clip-vit-base-patch32 --local-dir' in msg
    assert 'AI4RS_ALLOW_DOWNLOAD=1' in msg
    assert 'Hugging Face cache' in msg
    # a hub id that is not cached: looked for in the cache, no network
    with pytest.raises(FileNotFoundError) as info:
        HuggingCLIPLanguageBackbone('ai4rs-tests/not-a-model')
    assert "'ai4rs-tests/not-a-model'" in str(info.value)
    assert 'hf download ai4rs-tests/not-a-model' in str(info.value)
    # an existing directory without a model lists what it holds
    (tmp_path / 'empty').mkdir()
    (tmp_path / 'empty' / 'notes.txt').write_text('x')
    with pytest.raises(FileNotFoundError, match=r"contains: \['notes.txt'\]"):
        HuggingCLIPLanguageBackbone(str(tmp_path / 'empty'))


def test_bad_text_batches_rejected(tiny_clip_dir):
    backbone = HuggingCLIPLanguageBackbone(tiny_clip_dir)
    with pytest.raises(ValueError, match='same number of texts'):
        backbone([['a', 'b'], ['c']])
    with pytest.raises(TypeError, match='list'):
        backbone(['person', 'dog'])


def test_cache_computed_outside_autocast_and_deepcopy(tiny_clip_dir):
    import copy

    backbone = HuggingCLIPLanguageBackbone(tiny_clip_dir)
    reference = HuggingCLIPLanguageBackbone(tiny_clip_dir)(TEXTS)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        under_amp = backbone(TEXTS)
    # the cache holds full-precision embeddings, reused unchanged outside autocast
    assert under_amp.dtype == torch.float32
    torch.testing.assert_close(under_amp, reference, atol=1e-5, rtol=1e-5)
    assert backbone(TEXTS).dtype == torch.float32
    # EMA hooks deep-copy the model: the copy (tokenizer, cache) works on its own
    clone = copy.deepcopy(backbone)
    torch.testing.assert_close(clone([['a cat', 'bird']]), backbone([['a cat', 'bird']]))
    assert 'bird' in clone._cache


def test_init_weights_keeps_pretrained(tiny_clip_dir):
    backbone = HuggingCLIPLanguageBackbone(tiny_clip_dir)
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    backbone.init_weights()
    for k, v in backbone.state_dict().items():
        assert torch.equal(v, before[k]), k


# ----------------------------------------------------------- saved embeddings
@pytest.mark.parametrize('fmt', ['pt_dict', 'pt_texts', 'npy'])
def test_pseudo_backbone_equals_clip(tiny_clip_dir, tmp_path, fmt):
    vocab = ['person', 'a cat', 'dog', 'traffic light']
    clip = HuggingCLIPLanguageBackbone(tiny_clip_dir)
    embeds = clip([vocab])[0]
    kwargs = {}
    if fmt == 'pt_dict':
        path = str(tmp_path / 'e.pt')
        torch.save({t: e for t, e in zip(vocab, embeds)}, path)
    elif fmt == 'pt_texts':
        path = str(tmp_path / 'e.pth')
        torch.save({'texts': vocab, 'embeddings': embeds}, path)
    else:
        path = str(tmp_path / 'e.npy')
        np.save(path, embeds.numpy())
        texts_json = tmp_path / 'texts.json'
        texts_json.write_text(json.dumps([[t] for t in vocab]))
        kwargs['texts'] = str(texts_json)
    pseudo = MODELS.build(dict(type='PseudoLanguageBackbone', text_embed_path=path, **kwargs))
    for mode in (True, False):
        pseudo.train(mode)
        torch.testing.assert_close(pseudo(TEXTS), clip(TEXTS))
    # upstream key rule: text before the first '/'
    torch.testing.assert_close(pseudo([['dog/puppy']])[0, 0], embeds[2])
    assert list(pseudo.state_dict()) == ['buff']


def test_pseudo_backbone_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pt'):
        PseudoLanguageBackbone(str(tmp_path / 'nope.pt'))
    path = str(tmp_path / 'e.npy')
    np.save(path, np.zeros((3, 8), np.float32))
    with pytest.raises(ValueError, match='holds no texts'):
        PseudoLanguageBackbone(path)
    with pytest.raises(ValueError, match=r'expected \(2, D\)'):
        load_text_embeddings(path, ['a', 'b'])
    torch.save({'cat': torch.ones(4)}, tmp_path / 'd.pt')
    pseudo = PseudoLanguageBackbone(str(tmp_path / 'd.pt'))
    with pytest.raises(KeyError, match="no embedding for \\['zebra'\\]"):
        pseudo([['cat', 'zebra']])
    with pytest.raises(KeyError, match='padding text of RandomLoadText'):
        pseudo([['cat', '']])


@pytest.mark.parametrize(
    'allow,offline,expected',
    [
        (None, None, False),
        ('1', None, True),
        ('true', None, True),
        ('0', None, False),
        ('1', '1', False),
    ],
)
def test_download_allowed_env(monkeypatch, allow, offline, expected):
    from ai4rs.models.backbones.clip_text import download_allowed

    for name, value in (('AI4RS_ALLOW_DOWNLOAD', allow), ('HF_HUB_OFFLINE', offline)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert download_allowed() is expected


def run_tool(argv):
    """tools/misc/generate_text_embeddings.py main(argv), in process."""
    spec = importlib.util.spec_from_file_location(
        'generate_text_embeddings',
        osp.join(REPO_ROOT, 'tools', 'misc', 'generate_text_embeddings.py'),
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(argv)


def test_generate_text_embeddings_tool(tiny_clip_dir, tmp_path):
    ref = reference_embeddings(tiny_clip_dir, ['person', 'a cat'])
    out = tmp_path / 'coco.pt'
    run_tool([tiny_clip_dir, '--texts', 'person', 'a cat', '--out', str(out)])
    table = load_text_embeddings(str(out))
    assert list(table) == ['person', 'a cat']
    torch.testing.assert_close(torch.stack(list(table.values())), ref, atol=1e-5, rtol=1e-5)
    # .npy from a class-text JSON (upstream layout), read back with the same texts
    texts_json = tmp_path / 'class_texts.json'
    texts_json.write_text(json.dumps([['person'], ['a cat']]))
    run_tool([tiny_clip_dir, '--texts', str(texts_json), '--out', str(tmp_path / 'e.npy')])
    array = np.load(tmp_path / 'e.npy')
    assert array.shape == (2, 512) and array.dtype == np.float32
    torch.testing.assert_close(torch.from_numpy(array), ref, atol=1e-5, rtol=1e-5)
    # a config file names the text model
    config = tmp_path / 'cfg.py'
    config.write_text(
        f'model = dict(backbone=dict(text_model=dict('
        f"type='HuggingCLIPLanguageBackbone', model_name={tiny_clip_dir!r})))\n"
    )
    run_tool([str(config), '--texts', 'a cat', '--out', str(tmp_path / 'c.pt')])
    torch.testing.assert_close(
        load_text_embeddings(str(tmp_path / 'c.pt'))['a cat'], ref[1], atol=1e-5, rtol=1e-5
    )
    with pytest.raises(ValueError, match='--out must end with'):
        run_tool([tiny_clip_dir, '--texts', 'a', '--out', str(tmp_path / 'e.txt')])


# ----------------------------------------------------------- ViT-B/32 layout
def test_vit_b32_text_keys_shapes_params(tmp_path):
    """The ViT-B/32 text dims give exactly upstream's text-model keys, shapes,
    order and parameter count (random weights, ~250 MB in a temp dir)."""
    from ai4rs.testing.tiny_clip import make_tiny_clip

    # config + tokenizer only: the model is built from the config (no 250 MB write)
    model_dir = make_tiny_clip(
        tmp_path / 'clip_b32',
        weights=False,
        hidden_size=512,
        intermediate_size=2048,
        num_hidden_layers=12,
        num_attention_heads=8,
        projection_dim=512,
        vocab_size=49408,
        max_position_embeddings=77,
    )
    backbone = HuggingCLIPLanguageBackbone(model_dir)
    with open(osp.join(DATA_DIR, 'yolo_world_v2_state_dict_keys.json')) as f:
        ref = json.load(f)['yolo_world_v2_s_vlpan_bn_2e-4_80e_8gpus_mask-refine_finetune_coco']
    prefix = 'backbone.text_model.'
    ref_text = [(k, v) for k, v in ref.items() if k.startswith(prefix)]
    ours = [(prefix + k, list(v.shape)) for k, v in backbone.state_dict().items()]
    assert ours == ref_text
    n_params = sum(p.numel() for p in backbone.parameters())
    assert n_params == ref['_params']['text_model'] == 63_428_096
