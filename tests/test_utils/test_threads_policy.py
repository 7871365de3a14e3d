"""ai4rs sets OMP_WAIT_POLICY=PASSIVE on import unless the user decided otherwise."""

import os
import subprocess
import sys

from tests.conftest import REPO_ROOT

PRINT = "import os, ai4rs; print(os.environ.get('OMP_WAIT_POLICY'))"


def _run(code, **env_changes):
    env = {
        k: v for k, v in os.environ.items() if k not in ('OMP_WAIT_POLICY', 'AI4RS_OMP_WAIT_POLICY')
    }
    env.update(env_changes)
    out = subprocess.run(
        [sys.executable, '-c', code],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip().splitlines()[-1]


def test_passive_by_default_and_inherited_by_children():
    assert _run(PRINT) == 'PASSIVE'
    child = (
        "import os, subprocess, sys, ai4rs; print(subprocess.run([sys.executable, '-c', "
        '"import os; print(os.environ.get(\'OMP_WAIT_POLICY\'))"], capture_output=True, '
        'text=True).stdout.strip())'
    )
    assert _run(child) == 'PASSIVE'


def test_user_choice_opt_out_and_late_import_are_respected():
    assert _run(PRINT, OMP_WAIT_POLICY='ACTIVE') == 'ACTIVE'
    assert _run(PRINT, AI4RS_OMP_WAIT_POLICY='unset') == 'None'
    # torch already loaded OpenMP: setting the variable now would only mislead
    assert _run("import os, torch, ai4rs; print(os.environ.get('OMP_WAIT_POLICY'))") == 'None'


def _first_heavy_import(path):
    """The first module among torch/mmengine/mmcv/ai4rs a script imports at top level."""
    import ast

    with open(path) as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        names = (
            [a.name for a in node.names]
            if isinstance(node, ast.Import)
            else [node.module or '']
            if isinstance(node, ast.ImportFrom)
            else []
        )
        for name in names:
            root = name.split('.')[0]
            if root in ('torch', 'mmengine', 'mmcv', 'ai4rs', 'torchvision'):
                return root
    return None


def test_every_tool_imports_ai4rs_before_torch():
    """The wait policy only takes effect when set before torch loads its OpenMP runtime."""
    import glob

    scripts = [
        p
        for folder in ('tools', 'demo')
        for p in glob.glob(os.path.join(REPO_ROOT, folder, '**', '*.py'), recursive=True)
    ]
    assert len(scripts) > 15
    late = [
        os.path.relpath(p, REPO_ROOT)
        for p in scripts
        if _first_heavy_import(p) not in (None, 'ai4rs')
        and 'apply_omp_wait_policy' not in open(p).read()
    ]
    assert late == []
