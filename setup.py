"""Install script for ai4rs.

``pip install -e .`` installs the runtime requirements listed in
``requirements/runtime.txt``. The OpenCV-free, op-free ``mmcv-lite``
distribution is added unless a full ``mmcv`` is already installed in the target
environment: installing ai4rs never replaces a user's compiled mmcv.
"""

import os
import subprocess
import sys

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def read_requirements(name):
    """Requirement strings of ``requirements/{name}.txt`` (comments dropped)."""
    path = os.path.join(HERE, 'requirements', f'{name}.txt')
    reqs = []
    with open(path, encoding='utf-8') as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if line:
                reqs.append(line)
    return reqs


_PROBE = (
    'import importlib.metadata as m\n'
    'try:\n'
    '    m.distribution("mmcv")\n'
    '    print("mmcv")\n'
    'except m.PackageNotFoundError:\n'
    '    print("none")\n'
)


def full_mmcv_installed(python=sys.executable, env=None):
    """Whether the distribution ``mmcv`` (the full, compiled one) is installed.

    pip builds packages in an isolated environment whose ``sys.path`` hides
    the target site-packages, so the check runs the target interpreter in a
    fresh process with the isolation variables removed.
    """
    env = dict(os.environ if env is None else env)
    for key in ('PYTHONPATH', 'PYTHONNOUSERSITE', 'PYTHONHOME'):
        env.pop(key, None)
    try:
        out = subprocess.run(
            [python, '-c', _PROBE], env=env, capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return out.stdout.strip() == 'mmcv'


def mmcv_requirements(has_full_mmcv):
    """The mmcv requirement to add: none when a full mmcv is present."""
    return [] if has_full_mmcv else read_requirements('mmcv')


def get_version():
    ns = {}
    with open(os.path.join(HERE, 'ai4rs', 'version.py'), encoding='utf-8') as f:
        exec(f.read(), ns)
    return ns['__version__']


if __name__ == '__main__':
    install_requires = read_requirements('runtime') + mmcv_requirements(full_mmcv_installed())
    extras = {
        'tests': read_requirements('tests'),
        'optional': read_requirements('optional'),
        'multimodal': read_requirements('multimodal'),
        'geo': read_requirements('geo'),
        'demo': read_requirements('demo'),
    }
    # the test suite runs every part, the georeferenced scenes and the web demo included; the
    # web demo's test drives a browser with playwright (its Python package only: the browser
    # is the system's chromium)
    extras['tests'] = extras['tests'] + extras['geo'] + extras['demo'] + ['playwright>=1.40']
    extras['all'] = sorted({r for v in extras.values() for r in v})
    with open(os.path.join(HERE, 'README.md'), encoding='utf-8') as f:
        long_description = f.read()
    setup(
        name='ai4rs',
        version=get_version(),
        description='Config-driven oriented and open-vocabulary object '
        'detection in pure PyTorch, in the OpenMMLab style',
        long_description=long_description,
        long_description_content_type='text/markdown',
        license='Apache-2.0',
        python_requires='>=3.10',
        packages=find_packages(include=['ai4rs', 'ai4rs.*']),
        include_package_data=True,
        install_requires=install_requires,
        extras_require=extras,
        classifiers=[
            'Programming Language :: Python :: 3',
            'Programming Language :: Python :: 3.10',
            'Programming Language :: Python :: 3.11',
            'Programming Language :: Python :: 3.12',
            'Topic :: Scientific/Engineering :: Artificial Intelligence',
        ],
        zip_safe=False,
    )
