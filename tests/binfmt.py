"""Change binfmt_misc registrations for a test and restore them afterwards
(kernel state shared by the whole machine)."""

from __future__ import annotations

import contextlib
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


__all__ = ["Entry", "read", "removed", "replaced"]
