"""The package's import graph has no cycle, no import inside a function dodges one, and no
module imports from a higher floor of the package (:data:`LAYERS`).

Walks ``ai4rs/**/*.py`` with ``ast``: every ``import`` / ``from ... import`` of an ai4rs module
is an edge, at module level and inside functions alike. A function-body import that would
close a cycle at module level is exactly an import written inside a function to dodge the
cycle, so the graph of all edges must be acyclic.
"""

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / 'ai4rs'


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix('').parts)
    if parts[-1] == '__init__':
        parts.pop()
    return '.'.join(parts)


def _modules() -> dict:
    return {_module_name(p): p for p in PKG.rglob('*.py')}


def _edges(name: str, path: Path, modules: dict) -> list:
    """(target module, line, inside a function) for each import of an ai4rs module."""
    is_pkg = path.name == '__init__.py'
    tree = ast.parse(path.read_text(encoding='utf-8'))
    in_function = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            for sub in ast.walk(node):
                if sub is not node:
                    in_function.add(id(sub))
    edges = []
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split('.') if is_pkg else name.split('.')[:-1]
                base = base[: len(base) - (node.level - 1)]
                source = '.'.join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ''
            for alias in node.names:
                sub = f'{source}.{alias.name}'
                targets.append(sub if sub in modules else source)
        for target in targets:
            if target in modules and target != name:
                edges.append((target, node.lineno, id(node) in in_function))
    return edges


def _find_cycle(graph: dict):
    state, stack = {}, []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def _graph(include_function_imports: bool) -> dict:
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        graph[name] = {
            t
            for t, _, inside in _edges(name, path, modules)
            if include_function_imports or not inside
        }
    return graph


def test_walker_sees_the_package():
    graph = _graph(True)
    assert 'ai4rs.structures.bbox.rotated_boxes' in graph
    assert 'ai4rs.structures.bbox.geometry' in graph['ai4rs.structures.bbox.rotated_boxes']
    # and a planted cycle would be found
    assert _find_cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == ['a', 'b', 'c', 'a']


def test_no_cycle_among_module_level_imports():
    assert _find_cycle(_graph(False)) is None


def test_no_function_body_import_dodges_a_cycle():
    cycle = _find_cycle(_graph(True))
    assert cycle is None, f'import cycle through a function-body import: {" -> ".join(cycle)}'


#: the package's floors, lowest first: a module imports from its own package or from a lower
#: floor only (function-body imports included). ``utils`` is the ground floor (config, CLI
#: options, checkpoint loading); what builds a Runner lives in ``engine``; ``testing`` (the
#: tiny CLIP of the tests and quick starts) is for tests and tools, no ai4rs module imports
#: it. ``register_all_modules`` imports the registering packages by name (``importlib``), on
#: purpose: it is the one call that loads every floor.
LAYERS = (
    ('_threads', '_yapf_cache', 'version', 'registry', 'utils'),
    ('ops',),
    ('structures',),
    ('datasets', 'models'),
    ('geo',),  # scenes: reads tiles with the datasets' image rules and sliding windows
    ('evaluation', 'visualization'),
    ('engine',),
    ('apis',),
    ('testing',),
)
FLOOR = {package: floor for floor, packages in enumerate(LAYERS) for package in packages}


def _package(module: str) -> str:
    """``'ai4rs.utils.cli'`` -> ``'utils'``; the package root ``'ai4rs'`` -> ``''``."""
    parts = module.split('.')
    return parts[1] if len(parts) > 1 else ''


def _layer_violations(graph: dict) -> list:
    """``(importer, imported)`` pairs where a module imports a higher or sibling floor."""
    bad = []
    for source, targets in graph.items():
        src = _package(source)
        if not src:  # ai4rs/__init__.py: the top, may import any floor
            continue
        for target in sorted(targets):
            dst = _package(target)
            if dst != src and FLOOR[dst] >= FLOOR[src]:
                bad.append((source, target))
    return sorted(bad)


def test_every_package_has_a_floor():
    packages = {_package(m) for m in _modules()} - {''}
    assert packages <= set(FLOOR), f'packages without a floor in LAYERS: {packages - set(FLOOR)}'


def test_layer_check_catches_a_ground_floor_importing_the_top():
    # the import that used to be in ai4rs/utils/cli.py (inside run_with_runner)
    planted = {'ai4rs.utils.cli': {'ai4rs.engine.runner', 'ai4rs.utils.config'}}
    assert _layer_violations(planted) == [('ai4rs.utils.cli', 'ai4rs.engine.runner')]
    # siblings on one floor do not import each other either
    assert _layer_violations({'ai4rs.models.x': {'ai4rs.datasets.y'}}) == [
        ('ai4rs.models.x', 'ai4rs.datasets.y')
    ]
    assert _layer_violations({'ai4rs.engine.runner': {'ai4rs.utils.dist'}}) == []


def test_no_import_from_a_lower_floor_to_a_higher_one():
    bad = _layer_violations(_graph(True))
    assert not bad, 'imports against the floors of LAYERS: ' + ', '.join(
        f'{a} -> {b}' for a, b in bad
    )
