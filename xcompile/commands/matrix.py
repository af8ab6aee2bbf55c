"""`xcompile matrix`: the configured cells, for a CI system to fan out.

Each cell is one tag on one architecture, and ``only`` is the value a matrix
job passes to `xcompile build --only`. GitHub Actions reads
``{"include": [...]}`` from a job output through ``fromJSON``. Each cell carries the qemu
host, for the job's ``--qemu-host`` (issue 26).
"""

from __future__ import annotations

import json

from xcompile.settings.config import Config

FORMATS = ("json", "github", "lines")


def cells(config: Config) -> list[dict[str, str]]:
    return [
        {"tag": tag, "arch": arch, "only": cell, "qemu_host": config.qemu_host}
        for cell in config.cells
        if not config.only or cell in config.only
        for tag, arch in [cell.split("/", 1)]
    ]


def render(config: Config, fmt: str) -> str:
    found = cells(config)
    if fmt == "github":
        # One line, ready for `echo "cells=$(xcompile matrix --format github)" >> "$GITHUB_OUTPUT"`.
        return json.dumps({"include": found}, separators=(",", ":"))
    if fmt == "lines":
        return "\n".join(cell["only"] for cell in found)
    return json.dumps(found, indent=2)
