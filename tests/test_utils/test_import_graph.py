"""The package's import graph has no cycle, and no import inside a function dodges one.

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
