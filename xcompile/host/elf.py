"""The host's architecture, and the check that a qemu is a static ELF for it.

A dynamic qemu would need the host's libraries inside every foreign
container, so every emulator xcompile hands out or inspects is checked here.
"""

from __future__ import annotations

import struct
from pathlib import Path

from xcompile.errors import VerificationError
from xcompile.host.platforms import ARCHES, BY_DEBIAN, Arch, host

__all__ = ["BY_DEBIAN", "built_for", "check_static", "host_debian_arch", "made_for"]


def host_debian_arch(machine: str | None = None) -> str:
    """The Debian name of this machine's architecture (``machine`` defaults to ``platform.machine()``)."""
    return host(machine).debian_arch


_PT_INTERP = 3


def made_for(head: bytes) -> Arch | None:
    """The arch-table row whose CPU an ELF header (its first 20 bytes) is built for: its class, byte
    order and machine (a qemu host's row first, arm32v7 for 32-bit ARM); None for what is no ELF
    file, or where no row has its machine."""
    if len(head) < 20 or head[:4] != b"\x7fELF" or head[5] not in (1, 2):
        return None
    (e_machine,) = struct.unpack_from("<H" if head[5] == 1 else ">H", head, 18)
    rows = sorted(ARCHES, key=lambda arch: not arch.host_machines)
    return next(
        (a for a in rows if (a.elf_machine, a.elf_class, a.elf_data) == (e_machine, head[4], head[5])),
        None,
    )


def built_for(path: Path) -> Arch | None:
    """``made_for`` the ELF file at ``path``."""
    with open(path, "rb") as f:
        return made_for(f.read(20))


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
                f" not for {arch.name} ({arch.debian_arch})"
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
