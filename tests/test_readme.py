"""README.md stays true: CI runs exactly README's test command."""

import os.path as osp
import re

from tests.conftest import REPO_ROOT


def _bash_blocks(text):
    return re.findall(r'```bash\n(.*?)```', text, flags=re.S)


def test_ci_runs_readme_test_command():
    readme = open(osp.join(REPO_ROOT, 'README.md')).read()
    section = readme[readme.index('## Two commands on a fresh machine') :]
    blocks = _bash_blocks(section)
    install = blocks[0].strip()
    test_cmds = [b.strip() for b in blocks if 'pytest' in b]
    assert install.startswith('pip install -e .') and len(test_cmds) == 1
    test_cmd = test_cmds[0]
    ci = open(osp.join(REPO_ROOT, '.ci', 'run')).read()
    ci_lines = [ln for ln in ci.splitlines() if ln and not ln.lstrip().startswith('#')]
    assert ci_lines[-1] == test_cmd


def test_readme_documents_every_tool_option():
    readme = open(osp.join(REPO_ROOT, 'README.md')).read()
    for option in (
        '--work-dir',
        '--amp',
        '--auto-scale-lr',
        '--resume',
        '--cfg-options',
        '--out',
        '--show-dir',
        '--tta',
        'dist_train.sh',
        'dist_test.sh',
        'slurm_train.sh',
        'NNODES',
        'NODE_RANK',
        'MASTER_ADDR',
    ):
        assert option in readme, option


def test_readme_quick_subset_leaves_out_the_end_to_end_tests():
    """README says how long the suite takes and how to leave out the slow tests: its
    ``-m "..."`` expression deselects an end-to-end test and keeps a unit test."""
    import subprocess
    import sys

    readme = open(osp.join(REPO_ROOT, 'README.md')).read()
    assert 'more than 10 minutes on 2 CPU cores' in readme
    expr = re.search(r'`-m "([^"]+)"`', readme).group(1)
    files = [
        'tests/test_e2e/test_quickstart_documented_commands.py',
        'tests/test_tools/test_launch_scripts.py',
    ]
    proc = subprocess.run(
        [sys.executable, '-m', 'pytest', '--collect-only', '-q', '-p', 'no:cacheprovider']
        + ['-m', expr, *files],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    selected = [line for line in proc.stdout.splitlines() if '::' in line]
    assert any('test_launch_scripts.py::test_dist_scripts' in line for line in selected)
    assert not any('test_quickstart_documented_commands' in line for line in selected)


DIR_OPTIONS = ('--out-dir', '--output-dir', '--local-dir')


def documented_outputs():
    """Paths that the commands of README.md and docs/*.md write, relative to where they run:
    the values of their output options (placeholders such as ``DIR`` left out)."""
    import glob

    found = set()
    for path in [osp.join(REPO_ROOT, 'README.md'), *glob.glob(osp.join(REPO_ROOT, 'docs', '*.md'))]:
        text = open(path, encoding='utf-8').read()
        pattern = r'(--out-file|--out-dir|--output-dir|--out-json|--local-dir|--out)[ =]([\w./-]+)'
        for option, value in re.findall(pattern, text):
            if value.isupper() or value.startswith(('/', 'work_dirs/')):
                continue
            found.add(f'{value}/file' if option in DIR_OPTIONS else value)
    return sorted(found)


def test_documented_outputs_are_git_ignored():
    import shutil
    import subprocess

    if shutil.which('git') is None or not osp.exists(osp.join(REPO_ROOT, '.git')):
        import pytest

        pytest.skip('not a git checkout')
    outputs = documented_outputs()
    # the demo drawing and outputs of get_started.md / yolo_world.md are among them
    assert {'result.png', 'outputs/file', 'pretrained_models/clip-vit-base-patch32/file'} <= set(
        outputs
    )
    not_ignored = [
        p
        for p in outputs
        if subprocess.run(
            ['git', 'check-ignore', '-q', '--no-index', p], cwd=REPO_ROOT, timeout=30
        ).returncode
        != 0
    ]
    assert not not_ignored, f'written by documented commands, not in .gitignore: {not_ignored}'
