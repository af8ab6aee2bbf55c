"""xcompile's shape: no module over 400 lines, no class over 200, no function over 60, so that each
reads in one sitting; and every wing a package that says in one line what it holds."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "xcompile"
LIMITS = {"module": 400, "class": 200, "function": 60}


def _sizes(path: Path) -> list[tuple[str, str, int]]:
    source = path.read_text(encoding="utf-8")
    where = str(path.relative_to(REPO))
    found = [("module", where, len(source.splitlines()))]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef):
            found.append(("class", f"{where}:{node.lineno} {node.name}", node.end_lineno - node.lineno + 1))
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found.append(("function", f"{where}:{node.lineno} {node.name}", node.end_lineno - node.lineno + 1))
    return found


def test_no_module_class_or_function_is_over_its_limit() -> None:
    over = [
        f"{kind} {where}: {lines} lines (limit {LIMITS[kind]})"
        for path in sorted(PACKAGE.rglob("*.py"))
        for kind, where, lines in _sizes(path)
        if lines > LIMITS[kind]
    ]
    assert not over, "\n".join(over)


def test_every_wing_is_a_package_with_a_one_line_docstring() -> None:
    wings = sorted(path for path in PACKAGE.iterdir() if path.is_dir() and any(path.glob("*.py")))
    assert len(wings) >= 9
    for wing in wings:
        docstring = ast.get_docstring(ast.parse((wing / "__init__.py").read_text(encoding="utf-8")))
        assert docstring, f"{wing.name}/__init__.py has no docstring"
        assert docstring.splitlines()[0].endswith("."), f"{wing.name}: {docstring.splitlines()[0]!r}"
