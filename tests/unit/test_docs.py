"""The docs keep their promises: the README stays a front door, the configuration reference lists
exactly the keys Config has, every refusal names tests that exist, and the design's map of
"where things live" is xcompile/'s own."""

from __future__ import annotations

import re
from dataclasses import fields

from conftest import REPO

from xcompile.settings.config import Config

DOCS = REPO / "docs"


def test_the_readme_is_a_front_door() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200
    for page in re.findall(r"\]\((docs/[\w.]+)\)", text):
        assert (REPO / page).is_file(), page


def test_the_configuration_reference_lists_exactly_the_config_keys() -> None:
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    section = text.split("## Keys", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^\| `(\w+)` \|", section, re.MULTILINE)
    assert len(listed) == len(set(listed)), "a key is listed twice"
    assert set(listed) == {field.name for field in fields(Config)}


def test_every_refusal_names_tests_that_exist() -> None:
    text = (DOCS / "refusals.md").read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| what ")]
    assert len(rows) >= 50, f"{len(rows)} rows"
    for row in rows:
        cited = re.findall(r"`([^`]*)::([^`]*)`", row)
        # A file is named from tests/ by its tier and wing (`unit/registry/test_reference.py`);
        # `::name` means the file named before it in the row.
        refs = re.findall(r"`((?:(?:unit|integration)/(?:\w+/)*test_\w+\.py)?)::(test_\w+)`", row)
        assert refs, f"no test named in: {row}"
        assert len(refs) == len(cited), f"a test not named as tier/wing/test_x.py::test_name: {row}"
        assert refs[0][0], f"the first test of a row names its file: {row}"
        module = ""
        for file, name in refs:
            module = file or module
            source = (REPO / "tests" / module).read_text(encoding="utf-8")
            assert re.search(rf"^def {name}\(", source, re.M), f"{module}::{name} does not exist ({row})"


def test_the_map_of_where_things_live_is_xcompiles_own() -> None:
    text = (DOCS / "design.md").read_text(encoding="utf-8")
    section = text.split("## Where things live", 1)[1].split("\n## ", 1)[0]
    mapped = [
        name
        for line in re.findall(r"^- (.+?): ", section, re.MULTILINE)
        for name in re.findall(r"`([\w/.]+\.py)`", line)
    ]
    modules = sorted(str(path.relative_to(REPO / "xcompile")) for path in (REPO / "xcompile").rglob("*.py"))
    assert len(mapped) == len(set(mapped)), "a module is listed twice"
    assert sorted(mapped) == modules


def test_the_docs_show_real_output_not_placeholders() -> None:
    for page in sorted(DOCS.glob("*.md")):
        left = re.findall(r"\b(?!GITHUB_)[A-Z][A-Z_]+_(?:OUTPUT|TABLE|COST)\b", page.read_text(encoding="utf-8"))
        assert not left, f"{page.name}: {left}"
