"""The README's "What xcompile refuses" table keeps its promise: every row
names at least one test, and every test it names exists (issue 11)."""

from __future__ import annotations

import re

from conftest import REPO

SECTION = "## What xcompile refuses"


def rows() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| what ")]


def test_every_row_names_tests_that_exist() -> None:
    found = rows()
    assert len(found) >= 40, f"{len(found)} rows"
    for row in found:
        refs = re.findall(r"`((?:test_\w+\.py)?)::(test_\w+)`", row)
        assert refs, f"no test named in: {row}"
        module = ""
        for file, name in refs:
            module = file or module  # `::name` means the file named before it in the row
            source = (REPO / "tests" / module).read_text(encoding="utf-8")
            assert re.search(rf"^def {name}\(", source, re.M), f"{module}::{name} does not exist ({row})"
