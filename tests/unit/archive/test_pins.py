"""One rule for a qemu pin (xcompile/archive/pins.py), read from the table in docs/qemu.md, so the docs and the
code cannot drift: every pin the docs show is a row, and each row's versions are taken, or not, by the
rule and by the download's pick alike (unit: no archive, no network; PATH and apt are run for real in
integration/archive/test_pins.py::test_a_pin_with_a_plus_takes_the_same_qemu_from_path_apt_and_the_download)."""

from __future__ import annotations

import re

import pytest
from conftest import REPO

from xcompile.archive import fetcher, pins
from xcompile.errors import PackageMissing
from xcompile.settings.keys import KEYS

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def table() -> dict[str, tuple[list[str], list[str]]]:
    """docs/qemu.md's table of pins: pin -> (what it takes, what it does not take)."""
    text = (REPO / "docs" / "qemu.md").read_text(encoding="utf-8")
    section = text.split("| pin | takes | does not take |", 1)[1].split("\n\n", 1)[0]
    rows: dict[str, tuple[list[str], list[str]]] = {}
    for line in section.strip().splitlines()[1:]:
        pin, takes, refuses = (re.findall(r"`([^`]+)`", cell) for cell in line.strip("|").split(" | "))
        assert len(pin) == 1 and takes and refuses, line
        rows[pin[0]] = (takes, refuses)
    return rows


ROWS = table()
CASES = [(pin, version, True) for pin, (takes, _) in ROWS.items() for version in takes] + [
    (pin, version, False) for pin, (_, refuses) in ROWS.items() for version in refuses
]


def shown_pins() -> set[str]:
    """Every pin the docs show: switches, config lines, `xcompile trial` arguments, and the examples
    in the sentences that say what a pin is."""
    found: set[str] = set()
    for page in DOCS:
        text = page.read_text(encoding="utf-8")
        found.update(re.findall(r"--qemu-version (\d[^\s`]*)", text))
        found.update(re.findall(r"qemu_version = (\d\S*?)`", text))
        for args in re.findall(r"xcompile trial ((?:\d[^\s`]* ?)+)", text):
            found.update(args.split())
        for examples in re.findall(r"exact Debian version\s+\(([^)]*)\)\s+or an upstream prefix\s+\(([^)]*)\)", text):
            found.update(re.findall(r"`(\d[^`]*)`", " ".join(examples)))
    return found


def test_every_pin_the_docs_show_is_a_row_of_the_table() -> None:
    shown = shown_pins()
    assert {"1:7.2+dfsg-7+deb12u18+b3", "7.2", "10.0", "11.1"} <= shown  # the reading above finds them
    assert shown - set(ROWS) == set()
    for pin in ROWS:
        KEYS["qemu_version"](pin, "qemu_version")  # each one a pin the settings take


@pytest.mark.parametrize(("pin", "version", "taken"), CASES)
def test_the_rule_takes_what_the_table_says(pin: str, version: str, taken: bool) -> None:
    assert pins.satisfies(version, pin) is taken


@pytest.mark.parametrize(("pin", "version", "taken"), [case for case in CASES if " " not in case[1]])
def test_the_download_picks_what_the_table_says(pin: str, version: str, taken: bool) -> None:
    offer = fetcher.Offer("bookworm", "qemu-user-static", version, "")
    if taken:
        assert fetcher.pick([offer], pin, "mirror") == offer
    else:
        with pytest.raises(PackageMissing):
            fetcher.pick([offer], pin, "mirror")
