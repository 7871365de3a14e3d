"""Import-time checks of the versions ai4rs was built and tested against.

Each check raises an ``ImportError`` that says which package is off and the
command that fixes it, instead of failing later with an obscure traceback.
"""

import importlib.metadata
import re

#: (distribution, lowest version, first version that is too new or None)
REQUIRED = (
    ('torch', '2.1.0', None),
    ('mmengine', '0.10.4', '1.0.0'),
)
MMCV_RANGE = ('2.0.0', '2.3.0')


def parse_version(text):
    """``'2.14.1+cu130'`` -> ``(2, 14, 1)``; pre-release tags sort low."""
    parts = []
    for piece in text.split('+')[0].split('.')[:3]:
        m = re.match(r'(\d+)', piece)
        parts.append(int(m.group(1)) if m else 0)
    while len(parts) < 3:
        parts.append(0)
    return tuple(parts)


def _installed(dist):
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def version_problem(name, installed, low, high):
    """A human sentence describing what is wrong, or ``None`` when all is fine."""
    if installed is None:
        return (
            f'{name} is not installed. Install ai4rs with `pip install -e .` '
            f'(it needs {name}>={low}).'
        )
    v = parse_version(installed)
    if v < parse_version(low):
        return (
            f'{name}=={installed} is too old: ai4rs needs {name}>={low}. '
            f'Run `pip install -U "{name}>={low}"`.'
        )
    if high is not None and v >= parse_version(high):
        return (
            f'{name}=={installed} is too new: ai4rs supports {name}<{high}. '
            f'Run `pip install "{name}>={low},<{high}"`.'
        )
    return None


def mmcv_problem():
    """mmcv (full or lite) must be present; its compiled ops are never needed."""
    full, lite = _installed('mmcv'), _installed('mmcv-lite')
    if full is None and lite is None:
        return (
            'Neither mmcv nor mmcv-lite is installed. Run `pip install mmcv-lite` '
            '(ai4rs needs no compiled mmcv ops).'
        )
    return version_problem('mmcv' if full else 'mmcv-lite', full or lite, *MMCV_RANGE)


def check_dependencies():
    """Raise ``ImportError`` naming every dependency whose version is off."""
    problems = [version_problem(n, _installed(n), lo, hi) for n, lo, hi in REQUIRED]
    problems.append(mmcv_problem())
    problems = [p for p in problems if p]
    if problems:
        raise ImportError('ai4rs cannot start:\n  - ' + '\n  - '.join(problems))
