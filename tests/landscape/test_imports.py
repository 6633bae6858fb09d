"""No import cycles inside the landscape and advtrain backends (lazy imports included); the
only allowed back edge is `Plan.run` importing its run module, which the scaffold permits."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "backends"


class _Imports(ast.NodeVisitor):
    """Relative imports of a module, each with the name of the function it sits in."""

    def __init__(self) -> None:
        self.found: list[tuple[str, str]] = []  # (enclosing function or "", module)
        self.stack: list[str] = []

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self.stack.append(node.name)
        self.generic_visit(node)
        self.stack.pop()

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level == 1:
            names = [node.module] if node.module else [a.name for a in node.names]
            where = self.stack[-1] if self.stack else ""
            self.found += [(where, n.split(".")[0]) for n in names]


def _graph(package: str) -> dict[str, set[str]]:
    folder = ROOT / package
    modules = {p.stem for p in folder.glob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for path in folder.glob("*.py"):
        visitor = _Imports()
        visitor.visit(ast.parse(path.read_text()))
        for where, name in visitor.found:
            if name not in modules:
                continue
            if path.stem == "plan" and where == "run" and name == "run":
                continue  # Plan.run imports its run module lazily: the scaffold's one back edge
            graph[path.stem].add(name)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path, node, nxt]
            if nxt not in state and (found := visit(nxt, [*path, node])):
                return found
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node, [])):
            return found
    return None


@pytest.mark.parametrize("package", ["landscape", "advtrain"])
def test_no_import_cycle_inside_the_backend(package):
    graph = _graph(package)
    assert graph["run"] and "plan" in graph["run"]  # the scan sees imports at all
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))
