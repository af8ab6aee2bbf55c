"""Change binfmt_misc registrations for a test and restore them afterwards
(kernel state shared by the whole machine)."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator

from xcompile import binfmt
from xcompile.binfmt import Entry, read


@contextlib.contextmanager
def replaced(entry: Entry) -> Iterator[Entry]:
    """Register ``entry`` in place of whatever has its name; restore afterwards."""
    with removed(entry.name):
        for write in binfmt.register_writes(entry):
            write.apply()
        yield entry


@contextlib.contextmanager
def removed(name: str) -> Iterator[None]:
    saved = read(name)
    if saved is not None:
        binfmt.remove_write(name).apply()
    try:
        yield
    finally:
        if read(name) is not None:
            binfmt.remove_write(name).apply()
        if saved is not None:
            for write in binfmt.register_writes(saved):
                write.apply()


@contextlib.contextmanager
def all_restored() -> Iterator[None]:
    """For tests that unmount binfmt_misc, which drops every registration on this kernel."""
    root = binfmt.ROOT
    saved = [read(p.name) for p in root.iterdir() if p.name not in ("register", "status")] if binfmt.mounted() else []
    try:
        yield
    finally:
        if not binfmt.mounted():
            subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(root)], check=True)
        for entry in saved:
            if entry is None:
                continue
            if read(entry.name) is not None:
                binfmt.remove_write(entry.name).apply()
            for write in binfmt.register_writes(entry):
                write.apply()


__all__ = ["Entry", "all_restored", "read", "removed", "replaced"]
