"""Architecture rules the code must keep (issue #14): no import cycle (lazy imports count),
no import of another module's private names, and the core never imports a backend's innards."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
PACKAGES = {"threatlang": ROOT / "threatlang", "threatlang.backends": ROOT / "backends"}


def _modules() -> dict[str, Path]:
    out = {}
    for prefix, base in PACKAGES.items():
        for path in base.rglob("*.py"):
            rel = path.relative_to(base).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([prefix, *parts])
            if prefix == "threatlang" and name.startswith("threatlang.backends"):
                continue
            out[name] = path
    return out


MODULES = _modules()


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for _ in range(node.level - 1):
        package = package.rsplit(".", 1)[0]
    return f"{package}.{node.module}" if node.module else package


def _imports(module: str, path: Path):
    """(target module, imported names) of every import statement in the module, those inside
    functions included: a lazy import still ties the two modules into one unit."""
    todo = [ast.parse(path.read_text())]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue  # annotations only: never executed
        if isinstance(node, ast.ImportFrom):
            yield _resolve(module, path, node), [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, []
        todo.extend(ast.iter_child_nodes(node))


def _known(target: str, names: list[str]) -> list[str]:
    """The project modules an import statement loads (a submodule imported by name counts)."""
    out = [target] if target in MODULES else []
    out += [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
    return out


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        for target, names in _imports(module, path):
            for dep in _known(target, names):
                if dep != module and not module.startswith(dep + "."):
                    graph[module].add(dep)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    cycles = _cycles(_graph())
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_no_module_imports_another_modules_private_names():
    offenders = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                target = _resolve(module, path, node)
                if not target.startswith("threatlang"):
                    continue
                for a in node.names:
                    if a.name.startswith("_") and not a.name.startswith("__"):
                        offenders.append(f"{module} imports {target}.{a.name}")
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize(
    "module", sorted(m for m in MODULES if not m.startswith("threatlang.backends"))
)
def test_core_imports_only_the_backend_protocol(module):
    """The language core may know the backend protocol and registry, never a backend."""
    allowed = (
        "threatlang.backends.base",
        "threatlang.backends.capabilities",
        "threatlang.backends.registry",
    )
    tree = ast.parse(MODULES[module].read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            target = _resolve(module, MODULES[module], node)
            if target.startswith("threatlang.backends") and target not in allowed:
                names = [a.name for a in node.names]
                if target == "threatlang.backends" and all(
                    f"threatlang.backends.{n}" in allowed for n in names
                ):
                    continue
                pytest.fail(f"{module} imports {target} {names}")
