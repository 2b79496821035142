"""What may import Qt: only the app's views, its engine thread and its start-up; never the engine or the records.

The engine (`bd3lm_core`) is shared with the CLI and the server, and the app's records and rendering are read by
exports and tests without a display; a Qt import there would drag the GUI into all of them.
"""

from __future__ import annotations

import ast

import pytest
from test_import_cycles import PACKAGES, import_graph, module_name

QT_FREE = ("bd3lm_core", "bd3lm_studio.records", "bd3lm_studio.rendering", "bd3lm_studio.engine.requests")


def imports_qt(module: str) -> bool:
    package, _, rest = module.partition(".")
    folder = PACKAGES[package]
    path = next(p for p in folder.rglob("*.py") if module_name(package, folder, p) == module)
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
        if any(n.split(".")[0] in ("PySide6", "PyQt5", "PyQt6") for n in names):
            return True
    return False


def reached(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo.extend(graph[m])
    return seen


def test_the_check_sees_a_qt_import() -> None:
    assert imports_qt("bd3lm_studio.views.main_window") and not imports_qt("bd3lm_studio.records.trace")


@pytest.mark.parametrize("group", QT_FREE)
def test_qt_free_modules_reach_no_qt_import(group: str) -> None:
    graph = import_graph()
    modules = [m for m in graph if m == group or m.startswith(group + ".")]
    assert modules
    offenders = sorted({m for start in modules for m in reached(graph, start) if imports_qt(m)})
    assert offenders == []
