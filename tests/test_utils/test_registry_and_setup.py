"""Registries, default scope, version checks and the install-time mmcv decision."""

import importlib
import importlib.util
import os.path as osp
import subprocess
import sys
import venv
import zipfile

import pytest
import torch
from mmengine import DefaultScope
from mmengine.registry import MODELS as MMENGINE_MODELS

from ai4rs import registry
from ai4rs.utils.version_check import parse_version, version_problem
from tests.conftest import REPO_ROOT


def test_every_registry_is_a_child_of_mmengine_root_with_scope_ai4rs():
    import mmengine.registry as root

    assert len(registry.ALL_REGISTRIES) >= 20
    for name, reg in registry.ALL_REGISTRIES.items():
        assert reg.scope == 'ai4rs', name
        assert reg.parent is getattr(root, name), name
        assert reg.parent.scope == 'mmengine'
        assert reg._locations, f'{name} has no locations'
        for loc in reg._locations:
            assert importlib.util.find_spec(loc) is not None, f'{name}: {loc} is not importable'
            assert not _is_empty_package(loc), f'{name}: {loc} is an empty package'


def _is_empty_package(module_name: str) -> bool:
    """A package whose ``__init__`` has no statement and which holds no other module."""
    import ast
    import pkgutil

    spec = importlib.util.find_spec(module_name)
    if spec.submodule_search_locations is None:
        return False
    with open(spec.origin, encoding='utf-8') as f:
        body = [
            n
            for n in ast.parse(f.read()).body
            if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))
        ]
    return not body and not list(pkgutil.iter_modules(spec.submodule_search_locations))


def test_empty_package_check_is_not_vacuous(tmp_path, monkeypatch):
    (tmp_path / 'pkg_empty').mkdir()
    (tmp_path / 'pkg_empty' / '__init__.py').write_text('"""Only a docstring."""\n')
    (tmp_path / 'pkg_full').mkdir()
    (tmp_path / 'pkg_full' / '__init__.py').write_text('')
    (tmp_path / 'pkg_full' / 'mod.py').write_text('X = 1\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _is_empty_package('pkg_empty')
    assert not _is_empty_package('pkg_full')
    assert not _is_empty_package('ai4rs.registry')


def test_registered_ai4rs_classes_live_under_their_registry_locations():
    """Lazy lookup imports a registry's locations: every class ai4rs registers must be
    defined inside one of them, or a config naming it fails before anything imports it."""
    from ai4rs.utils import register_all_modules

    register_all_modules(init_default_scope=False)
    checked = 0
    for name, reg in registry.ALL_REGISTRIES.items():
        for type_name, obj in reg.module_dict.items():
            module = getattr(obj, '__module__', '')
            if not module.startswith('ai4rs'):
                continue
            checked += 1
            assert any(module == loc or module.startswith(loc + '.') for loc in reg._locations), (
                f'{name}: {type_name} is defined in {module}, outside {reg._locations}'
            )
    assert checked >= 30


def test_unscoped_names_resolve_through_parents():
    import mmcv.cnn  # noqa: F401  (registers ConvModule into mmengine's root)

    # torch's SGD is in mmengine's root OPTIMIZERS, mmcv's CenterCrop in root TRANSFORMS
    assert registry.OPTIMIZERS.get('SGD') is torch.optim.SGD
    assert registry.TRANSFORMS.get('CenterCrop').__module__.startswith('mmcv')
    # LoadImageFromFile is ai4rs' own (bit depth, named decode errors), a subclass of mmcv's
    from mmcv.transforms import LoadImageFromFile as MMCV_LoadImageFromFile

    ours = registry.TRANSFORMS.get('LoadImageFromFile')
    assert ours.__module__.startswith('ai4rs') and issubclass(ours, MMCV_LoadImageFromFile)
    conv = registry.MODELS.build(
        dict(type='ConvModule', in_channels=3, out_channels=4, kernel_size=3, padding=1)
    )
    assert conv(torch.zeros(1, 3, 8, 8)).shape == (1, 4, 8, 8)


def test_build_through_root_registry_with_default_scope():
    from ai4rs.utils import register_all_modules

    register_all_modules(init_default_scope=True)
    assert DefaultScope.get_current_instance().scope_name == 'ai4rs'
    # mmengine's root registry switches to the ai4rs child under the default scope
    wrapper = MMENGINE_MODELS.build(
        dict(type='ConvModule', in_channels=1, out_channels=1, kernel_size=1)
    )
    assert wrapper.conv.weight.shape == (1, 1, 1, 1)
    from mmengine.registry import OPTIM_WRAPPERS
    from mmengine.registry import VISUALIZERS as ROOT_VIS

    from ai4rs.engine.optimizers import AmpOptimWrapper

    w = OPTIM_WRAPPERS.build(
        dict(type='AmpOptimWrapper', optimizer=torch.optim.SGD(wrapper.parameters(), lr=0.1))
    )
    assert type(w) is AmpOptimWrapper
    vis = ROOT_VIS.build(dict(type='RotLocalVisualizer', name='reg_test_vis'))
    assert type(vis).__name__ == 'RotLocalVisualizer'


def test_register_all_modules_registers_lazily_imported_classes():
    from ai4rs.utils import register_all_modules

    register_all_modules(init_default_scope=False)
    assert registry.HOOKS.get('DetVisualizationHook') is not None
    assert registry.METRICS.get('DumpDetResults') is not None


@pytest.mark.parametrize(
    'text,expected',
    [
        ('2.14.1+cu130', (2, 14, 1)),
        ('0.10.7', (0, 10, 7)),
        ('2.0.0rc4', (2, 0, 0)),
        ('1.0', (1, 0, 0)),
    ],
)
def test_parse_version(text, expected):
    assert parse_version(text) == expected


def test_version_problem_messages():
    assert version_problem('mmengine', '0.10.7', '0.10.4', '1.0.0') is None
    msg = version_problem('mmengine', '1.2.0', '0.10.4', '1.0.0')
    assert 'too new' in msg and 'pip install' in msg
    msg = version_problem('torch', '2.0.1', '2.1.0', None)
    assert 'too old' in msg and 'torch>=2.1.0' in msg
    assert 'not installed' in version_problem('mmcv-lite', None, '2.0.0', '2.3.0')


def _setup_module():
    spec = importlib.util.spec_from_file_location('ai4rs_setup', osp.join(REPO_ROOT, 'setup.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _venv_with_fake_mmcv(path, with_mmcv):
    venv.EnvBuilder(with_pip=False).create(path)
    python = osp.join(path, 'bin', 'python')
    site = subprocess.run(
        [python, '-c', 'import site; print(site.getsitepackages()[0])'],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if with_mmcv:
        info = osp.join(site, 'mmcv-2.1.0.dist-info')
        import os

        os.makedirs(info)
        with open(osp.join(info, 'METADATA'), 'w') as f:
            f.write('Metadata-Version: 2.1\nName: mmcv\nVersion: 2.1.0\n')
    return python


def test_mmcv_lite_is_not_required_when_full_mmcv_is_installed(tmp_path):
    setup = _setup_module()
    assert setup.mmcv_requirements(True) == []
    assert setup.mmcv_requirements(False) == ['mmcv-lite>=2.0.0,<2.3']
    with_mmcv = _venv_with_fake_mmcv(str(tmp_path / 'a'), True)
    without = _venv_with_fake_mmcv(str(tmp_path / 'b'), False)
    # the probe ignores the isolation variables pip's build environment sets
    env = {'PYTHONNOUSERSITE': '1', 'PYTHONPATH': str(tmp_path)}
    assert setup.full_mmcv_installed(with_mmcv, env=env) is True
    assert setup.full_mmcv_installed(without, env=env) is False


@pytest.mark.slow
def test_built_wheel_metadata_follows_installed_mmcv(tmp_path):
    """pip's isolated build of ai4rs, for an environment that has a full mmcv."""
    python = _venv_with_fake_mmcv(str(tmp_path / 'env'), True)
    proc = subprocess.run(
        [
            sys.executable,
            '-m',
            'pip',
            '--python',
            python,
            'wheel',
            '--no-deps',
            '-w',
            str(tmp_path / 'whl'),
            REPO_ROOT,
        ],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0 and 'no such option: --python' in proc.stderr:
        pytest.skip('pip older than 22.3 has no --python option')
    assert proc.returncode == 0, proc.stderr[-3000:]
    wheel = next((tmp_path / 'whl').glob('ai4rs-*.whl'))
    with zipfile.ZipFile(wheel) as z:
        meta = z.read(next(n for n in z.namelist() if n.endswith('METADATA'))).decode()
    requires = [ln for ln in meta.splitlines() if ln.startswith('Requires-Dist:')]
    assert any(r.startswith('Requires-Dist: mmengine') for r in requires)
    assert not any('mmcv' in r for r in requires), requires
