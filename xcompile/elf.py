"""The host's architecture, and the check that a qemu is a static ELF for it.

A dynamic qemu would need the host's libraries inside every foreign
container, so every emulator xcompile hands out or inspects is checked here.
"""

from __future__ import annotations

import struct
from pathlib import Path

from xcompile.errors import VerificationError
from xcompile.platforms import BY_DEBIAN, Arch, host

__all__ = ["BY_DEBIAN", "check_static", "host_debian_arch", "made_for"]


def host_debian_arch(machine: str | None = None) -> str:
    """The Debian name of this machine's architecture (``machine`` defaults to ``platform.machine()``)."""
    return host(machine).debian_arch


_PT_INTERP = 3


def made_for(head: bytes) -> Arch | None:
    """The host row (of those xcompile runs on) whose CPU an ELF header's class, byte order
    and machine name; None for another CPU, or for what is no ELF file."""
    if len(head) < 20 or head[:4] != b"\x7fELF" or head[5] not in (1, 2):
        return None
    machine = int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")
    rows = BY_DEBIAN.values()
    return next((a for a in rows if (a.elf_machine, a.elf_class, a.elf_data) == (machine, head[4], head[5])), None)


def check_static(path: Path, arch: Arch, label: str) -> None:
    """Refuse anything but a static (or static-pie) ELF executable for ``arch``.

    A dynamic qemu would need the host's libraries inside every foreign
    container; that is the whole reason for the -static package.
    """
    with open(path, "rb") as f:
        head = f.read(64)
        if len(head) < 52 or head[:4] != b"\x7fELF" or head[4] not in (1, 2) or head[5] not in (1, 2):
            msg = f"{label} is not an ELF executable"
            raise VerificationError(msg)
        order = "<" if head[5] == 1 else ">"
        e_type, e_machine = struct.unpack_from(order + "HH", head, 16)
        if (e_machine, head[4], head[5]) != (arch.elf_machine, arch.elf_class, arch.elf_data):
            msg = (
                f"{label} is built for ELF machine {e_machine} ({32 * head[4]}-bit),"
                f" not for this host ({arch.debian_arch})"
            )
            raise VerificationError(msg)
        if head[4] == 2:
            (phoff,) = struct.unpack_from(order + "Q", head, 32)
            phentsize, phnum = struct.unpack_from(order + "HH", head, 54)
        else:
            (phoff,) = struct.unpack_from(order + "I", head, 28)
            phentsize, phnum = struct.unpack_from(order + "HH", head, 42)
        if e_type not in (2, 3) or phnum == 0 or phentsize < 4:
            msg = f"{label} is not an ELF executable"
            raise VerificationError(msg)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
        if len(table) < phentsize * phnum:
            msg = f"{label} is a truncated ELF file"
            raise VerificationError(msg)
    for i in range(phnum):
        (p_type,) = struct.unpack_from(order + "I", table, i * phentsize)
        if p_type == _PT_INTERP:
            msg = f"{label} is dynamically linked, not static"
            raise VerificationError(
                msg,
                hint="a static qemu is needed: it runs inside foreign containers that lack the host's libraries",
            )
