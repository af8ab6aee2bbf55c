"""The kernel's binfmt_misc registrations: read them, and the writes that change them.

Whether an image needs qemu inside depends on these: without the F flag the
kernel opens the interpreter path at exec time, inside the container.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from xcompile.errors import EnvironmentProblem
from xcompile.host.platforms import Arch
from xcompile.system.runner import Runner

ROOT = Path("/proc/sys/fs/binfmt_misc")


@dataclass(frozen=True)
class Entry:
    """One registration, exactly as /proc shows it, so that writing back
    ``register_line()`` gives the same bytes there again.

    Two kinds: a magic (M) entry matches bytes at ``offset``; an extension (E)
    entry matches the file name's extension, and has no offset, magic or mask.
    """

    name: str
    enabled: bool
    interpreter: str
    flags: str
    offset: int
    magic: str
    """Hex, as /proc shows it; empty for an extension entry."""
    mask: str
    """Hex, as /proc shows it; empty where /proc shows no mask line. binfmt-support
    registers Debian's other formats (jar, python3.11, ...) so: a mask of all ff
    written back would match the same files, but /proc would show a line more."""
    extension: str = ""
    """For an extension entry, the extension as registered (without the dot /proc shows)."""

    @property
    def fix_binary(self) -> bool:
        return "F" in self.flags

    def register_line(self) -> str:
        if self.extension:
            kind, offset, magic, mask = "E", "", self.extension, ""
        else:
            kind, offset, magic, mask = "M", str(self.offset), _escape(self.magic), _escape(self.mask)
        fields = [self.name, kind, offset, magic, mask, self.interpreter, self.flags]
        # The first character is the field separator; ':' unless a field holds one
        # (the kernel allows ':' in a name or path, and then another separator).
        separator = next(c for c in _SEPARATORS if not any(c in field for field in fields))
        return separator + separator.join(fields)


_SEPARATORS = ":|,;#!%@^~"


@dataclass(frozen=True)
class Write:
    """One write to /proc, shown to the user before it is made (by Runner.write_proc)."""

    path: Path
    text: str

    def __str__(self) -> str:
        return f"echo '{self.text}' > {self.path}"

    def what(self) -> str:
        if self.path.name == "register":
            return f"register {self.text.split(self.text[0])[1]} at {self.path}"
        return f"write '{self.text}' to {self.path}"


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
        fields[key.rstrip(":")] = value
    return Entry(
        name=name,
        enabled=enabled,
        interpreter=fields.get("interpreter", ""),
        flags=fields.get("flags", ""),
        offset=int(fields.get("offset", "0")),
        magic=fields.get("magic", ""),
        mask=fields.get("mask", ""),  # none shown: none registered, and none written back
        extension=fields["extension"].removeprefix(".") if "extension" in fields else "",
    )


FLAG_ORDER = "POCF"
"""The order /proc shows the flags in."""
PROBE_SUFFIX = "-xcompile-probe"


def takes_preserve_argv0(interpreter: str) -> bool:
    """Can ``interpreter`` be registered with P (the kernel passes argv[0] too)?

    Debian's qemu takes that mode when it runs under a name ending in
    "-binfmt-P" (/usr/libexec/qemu-binfmt/<arch>-binfmt-P links to it); under
    any other name it would read argv[0] as the first argument.
    """
    return interpreter.endswith("-binfmt-P")


def entry_for(arch: Arch, interpreter: str, *, fix_binary: bool, like: Entry | None = None) -> Entry:
    """The registration for ``arch``'s emulator at ``interpreter``.

    ``like`` is the host's registration it replaces: its O and C flags are
    kept, and P where ``interpreter`` takes it; F is added or left out.
    """
    kept = set((like.flags if like else "").upper()) - {"F"}
    if not takes_preserve_argv0(interpreter):
        kept.discard("P")
    if fix_binary:
        kept.add("F")
    return Entry(
        name=arch.binfmt_name,
        enabled=True,
        interpreter=interpreter,
        flags="".join(flag for flag in FLAG_ORDER if flag in kept),
        offset=0,
        magic=arch.magic_bytes.hex(),
        mask=arch.mask_bytes.hex(),
    )


def register_writes(entry: Entry, root: Path = ROOT) -> list[Write]:
    writes = [Write(root / "register", entry.register_line())]
    if not entry.enabled:
        writes.append(Write(root / entry.name, "0"))
    return writes


def install(new: Entry, old: Entry | None, runner: Runner, *, root: Path = ROOT) -> None:
    """Register ``new`` in place of ``old`` without ever leaving the host worse.

    The same line is registered first under a probe name: the kernel checks
    the line then (and with F opens the interpreter), so a write that would
    fail, fails while the old entry still stands. Only then is the old entry
    removed and the new one registered; on any failure the old line is
    registered again. The probe, which runs the new interpreter, bridges the
    gap between the two and is removed at the end.
    """

    def do(writes: list[Write]) -> None:
        for write in writes:
            runner.write_proc(write.path, write.text, what=write.what())

    if old is None:
        do(register_writes(new, root))
        return
    probe = dataclasses.replace(new, name=new.name + PROBE_SUFFIX)
    do(register_writes(probe, root))
    try:
        do([remove_write(old.name, root)])
        do(register_writes(new, root))
    except EnvironmentProblem as err:
        try:
            if read(old.name, root) is None:
                do(register_writes(old, root))
        except EnvironmentProblem as again:
            # Keep the probe: a working entry under another name beats none.
            msg = f"{err.message}; restoring {old.name} failed too ({again.message})"
            raise EnvironmentProblem(
                msg,
                hint=f"{probe.name} stays registered so that {new.name}'s binaries still run",
            ) from None
        do([remove_write(probe.name, root)])
        msg = f"{err.message}; {old.name} was restored as it was"
        raise EnvironmentProblem(msg) from None
    do([remove_write(probe.name, root)])


def remove_write(name: str, root: Path = ROOT) -> Write:
    return Write(root / name, "-1")


def enable_write(name: str, root: Path = ROOT) -> Write:
    return Write(root / name, "1")


def _escape(hex_bytes: str) -> str:
    return "".join(f"\\x{hex_bytes[i : i + 2]}" for i in range(0, len(hex_bytes), 2))
