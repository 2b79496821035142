"""No import cycles inside `bd3lm_core` or the app: the graph is read from the sources with `ast`.

Every import counts, those under `if TYPE_CHECKING:` and those inside functions
included: a cycle through a type-only or deferred import still ties two modules
together for the reader, even when Python can load them. One exemption:
`from package import module` counts as an import of the module, not of the
package's `__init__`, which re-exports the package's modules (counting it would
make every module that takes a sibling this way part of a cycle); what the
`__init__` itself imports is counted as usual.
"""

from __future__ import annotations

import ast
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"bd3lm_core": ROOT / "bd3lm_core", "bd3lm_studio": ROOT / "app"}  # import name -> folder


def module_name(package: str, folder: Path, path: Path) -> str:
    parts = [package, *path.relative_to(folder).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules of our packages it imports (a `from package import name` of a submodule counts it)."""
    files = {module_name(p, f, path): path for p, f in PACKAGES.items() for path in f.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = package.split(".")
                if node.level:
                    base = base[: len(base) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else [])) if node.level else node.module or ""
                submodules = [f"{source}.{alias.name}" for alias in node.names if f"{source}.{alias.name}" in files]
                targets = submodules or [source]
            else:
                continue
            graph[name] |= {t for t in targets if t in files and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_relative_type_only_and_deferred_imports() -> None:
    graph = import_graph()
    assert "bd3lm_core.sampling.kv_cache" in graph["bd3lm_core.model.network"]  # under TYPE_CHECKING
    assert "bd3lm_core.loader" in graph["bd3lm_core.cli"]  # inside a function
    assert "bd3lm_core.sampling" in graph["bd3lm_studio.records.samplers"]  # absolute: a name the package exports
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [frozenset("abc")]


def test_no_import_cycles() -> None:
    assert [sorted(c) for c in cycles(import_graph())] == []
