"""Save, change and restore binfmt_misc registrations (kernel state shared by
the whole machine, so every change is undone)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

BINFMT = Path("/proc/sys/fs/binfmt_misc")


@dataclass(frozen=True)
class Entry:
    name: str
    enabled: bool
    interpreter: str
    flags: str
    offset: int
    magic: str
    mask: str

    def register_line(self) -> str:
        return (
            f":{self.name}:M:{self.offset}:{_escape(self.magic)}:{_escape(self.mask)}:{self.interpreter}:{self.flags}"
        )


def read(name: str) -> Entry | None:
    path = BINFMT / name
    if not path.exists():
        return None
    fields: dict[str, str] = {}
    enabled = False
    for line in path.read_text().splitlines():
        if line in ("enabled", "disabled"):
            enabled = line == "enabled"
            continue
        key, _, value = line.partition(" ")
        fields[key.rstrip(":")] = value.strip()
    return Entry(
        name=name,
        enabled=enabled,
        interpreter=fields["interpreter"],
        flags=fields.get("flags", ""),
        offset=int(fields.get("offset", "0")),
        magic=fields["magic"],
        mask=fields.get("mask", "ff" * (len(fields["magic"]) // 2)),
    )


def remove(name: str) -> None:
    if (BINFMT / name).exists():
        (BINFMT / name).write_text("-1")


def register(entry: Entry) -> None:
    with (BINFMT / "register").open("w") as out:
        out.write(entry.register_line())
    if not entry.enabled:
        (BINFMT / entry.name).write_text("0")


@contextlib.contextmanager
def replaced(entry: Entry) -> Iterator[Entry]:
    """Register ``entry`` in place of whatever has its name; restore afterwards."""
    saved = read(entry.name)
    remove(entry.name)
    try:
        register(entry)
        yield entry
    finally:
        remove(entry.name)
        if saved is not None:
            register(saved)


def _escape(hex_bytes: str) -> str:
    return "".join(f"\\x{hex_bytes[i : i + 2]}" for i in range(0, len(hex_bytes), 2))
