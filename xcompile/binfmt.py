"""The kernel's binfmt_misc registrations: read them, and the writes that change them.

Whether an image needs qemu inside depends on these: without the F flag the
kernel opens the interpreter path at exec time, inside the container.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from xcompile.platforms import Arch

ROOT = Path("/proc/sys/fs/binfmt_misc")


@dataclass(frozen=True)
class Entry:
    name: str
    enabled: bool
    interpreter: str
    flags: str
    offset: int
    magic: str
    """Hex, as /proc shows it."""
    mask: str

    @property
    def fix_binary(self) -> bool:
        return "F" in self.flags

    def register_line(self) -> str:
        return (
            f":{self.name}:M:{self.offset}:{_escape(self.magic)}:{_escape(self.mask)}:{self.interpreter}:{self.flags}"
        )


@dataclass(frozen=True)
class Write:
    """One write to /proc, shown to the user before it is made."""

    path: Path
    text: str

    def __str__(self) -> str:
        return f"echo '{self.text}' > {self.path}"

    def apply(self) -> None:
        with self.path.open("w") as out:
            out.write(self.text)


def mounted(root: Path = ROOT) -> bool:
    return (root / "register").exists()


def read(name: str, root: Path = ROOT) -> Entry | None:
    try:
        text = (root / name).read_text()
    except (FileNotFoundError, NotADirectoryError):
        return None
    fields: dict[str, str] = {}
    enabled = False
    for line in text.splitlines():
        if line in ("enabled", "disabled"):
            enabled = line == "enabled"
            continue
        key, _, value = line.partition(" ")
        fields[key.rstrip(":")] = value.strip()
    magic = fields.get("magic", "")
    return Entry(
        name=name,
        enabled=enabled,
        interpreter=fields.get("interpreter", ""),
        flags=fields.get("flags", ""),
        offset=int(fields.get("offset", "0")),
        magic=magic,
        mask=fields.get("mask", "ff" * (len(magic) // 2)),
    )


def entry_for(arch: Arch, interpreter: str, *, fix_binary: bool) -> Entry:
    """The registration for ``arch``'s emulator at ``interpreter``."""
    return Entry(
        name=arch.binfmt_name,
        enabled=True,
        interpreter=interpreter,
        flags="F" if fix_binary else "",
        offset=0,
        magic=arch.magic_bytes.hex(),
        mask=arch.mask_bytes.hex(),
    )


def register_writes(entry: Entry, root: Path = ROOT) -> list[Write]:
    writes = [Write(root / "register", entry.register_line())]
    if not entry.enabled:
        writes.append(Write(root / entry.name, "0"))
    return writes


def remove_write(name: str, root: Path = ROOT) -> Write:
    return Write(root / name, "-1")


def enable_write(name: str, root: Path = ROOT) -> Write:
    return Write(root / name, "1")


def _escape(hex_bytes: str) -> str:
    return "".join(f"\\x{hex_bytes[i : i + 2]}" for i in range(0, len(hex_bytes), 2))
