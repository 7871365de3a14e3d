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
