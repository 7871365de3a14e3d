"""A syntax error in a config or in one of its `_base_` files names that file and line."""

import traceback

import pytest

from ai4rs.utils.config import find_config_syntax_error, load_config
from tests.conftest import REPO_ROOT


def _write(folder, name, text):
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_syntax_error_in_base_file_names_it(tmp_path):
    base = _write(tmp_path, 'bases/runtime.py', 'a = 1\nb = 2\nc = dict(x=1\nd = 4\n')
    middle = _write(tmp_path, 'middle.py', "_base_ = ['./bases/runtime.py']\ne = 5\n")
    child = _write(tmp_path, 'child.py', "_base_ = './middle.py'\nf = 6\n")
    with pytest.raises(SyntaxError) as err:
        load_config(str(child))
    assert err.value.filename == str(base)
    assert err.value.lineno == 3
    assert f'in config file {base} (a _base_ of {middle})' in str(err.value)
    # what Python prints as the last lines of a tool's traceback
    printed = ''.join(traceback.format_exception_only(err.value))
    assert f'File "{base}", line 3' in printed and '<unknown>' not in printed


def test_syntax_error_in_the_config_itself_and_valid_configs(tmp_path):
    bad = _write(tmp_path, 'bad.py', 'x = 1\ny = [1,\n  2\nz = 3\n')
    located = find_config_syntax_error(str(bad))
    assert located.filename == str(bad) and located.lineno == 2
    good = f'{REPO_ROOT}/configs/rotated_yolox/rotated_yolox_quickstart_synthetic.py'
    assert find_config_syntax_error(good) is None


def _load_tool(name):
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        f'ai4rs_{name}_tool', f'{REPO_ROOT}/tools/{name}.py'
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('name', ['text', 'filename'])
def test_reserved_top_level_name_is_named_with_file_and_line(tmp_path, name):
    from ai4rs.utils.config import ReservedConfigNameError

    base = _write(tmp_path, 'bases/runtime.py', f'a = 1\n\n{name} = ["cat", "dog"]\n')
    child = _write(tmp_path, 'child.py', "_base_ = ['./bases/runtime.py']\nb = 2\n")
    with pytest.raises(ReservedConfigNameError) as err:
        load_config(str(child))
    assert (err.value.filename, err.value.lineno, err.value.name) == (str(base), 3, name)
    assert f'{base}, line 3 (a _base_ of {child})' in str(err.value)
    assert f"defines '{name}'" in str(err.value)


def test_reserved_name_through_train_tool_and_other_bindings(tmp_path, monkeypatch):
    # what a new user writes: a vocabulary called `text`, in a tuple assignment
    cfg = _write(tmp_path, 'my_config.py', 'x = 1\nclasses, text = ("a",), "a photo"\n')
    train = _load_tool('train')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError) as err:
        train.build_config(train.parse_args([str(cfg), '--work-dir', 'w']))
    assert str(err.value).startswith(f"{cfg}, line 2: the config defines 'text'")
    for tool in (train, _load_tool('test')):  # the command line: that one line, status 1
        argv = [str(cfg)] + (['x.pth'] if tool is not train else []) + ['--work-dir', 'w']
        with pytest.raises(SystemExit) as exit_:
            tool.main(argv)
        assert exit_.value.code == f'error: {err.value}'
    # the same name in a function body or as a dict key is no top-level variable
    ok = _write(tmp_path, 'ok.py', 'def f(text):\n    return text\n\nd = dict(text=1)\n')
    assert load_config(str(ok)).d == {'text': 1}
