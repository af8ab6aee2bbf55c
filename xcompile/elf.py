"""The host's architecture, and the check that a qemu is a static ELF for it.

A dynamic qemu would need the host's libraries inside every foreign
container, so every emulator xcompile hands out or inspects is checked here.
"""

from __future__ import annotations

import platform
import struct
from dataclasses import dataclass
from pathlib import Path

from xcompile.errors import QemuUnavailable, VerificationError


@dataclass(frozen=True)
class HostArch:
    """How a Debian architecture looks to ``uname -m`` and in an ELF header."""

    debian: str
    machines: tuple[str, ...]
    elf_machine: int
    elf_class: int  # 1: 32-bit, 2: 64-bit
    elf_data: int  # 1: little-endian, 2: big-endian


HOST_ARCHES = (
    HostArch("amd64", ("x86_64", "amd64"), 62, 2, 1),
    HostArch("arm64", ("aarch64", "arm64"), 183, 2, 1),
    HostArch("armhf", ("armv7l", "armv8l"), 40, 1, 1),
    HostArch("i386", ("i686", "i586", "i386"), 3, 1, 1),
    HostArch("ppc64el", ("ppc64le",), 21, 2, 1),
    HostArch("s390x", ("s390x",), 22, 2, 2),
    HostArch("riscv64", ("riscv64",), 243, 2, 1),
)
BY_MACHINE = {m: a for a in HOST_ARCHES for m in a.machines}
BY_DEBIAN = {a.debian: a for a in HOST_ARCHES}


def host_debian_arch(machine: str | None = None) -> str:
    """The Debian name of this machine's architecture (``machine`` defaults to ``platform.machine()``)."""
    machine = platform.machine() if machine is None else machine
    try:
        return BY_MACHINE[machine].debian
    except KeyError:
        known = ", ".join(sorted(BY_MACHINE))
        raise QemuUnavailable(
            f"no static qemu for this host: machine type {machine!r} has no Debian architecture "
            f"xcompile knows ({known})",
            hint="install qemu-user-static with the host's package manager and put it on PATH",
        ) from None


_PT_INTERP = 3


def check_static(path: Path, arch: HostArch, label: str) -> None:
    """Refuse anything but a static (or static-pie) ELF executable for ``arch``.

    A dynamic qemu would need the host's libraries inside every foreign
    container; that is the whole reason for the -static package.
    """
    with open(path, "rb") as f:
        head = f.read(64)
        if len(head) < 52 or head[:4] != b"\x7fELF" or head[4] not in (1, 2) or head[5] not in (1, 2):
            raise VerificationError(f"{label} is not an ELF executable")
        order = "<" if head[5] == 1 else ">"
        e_type, e_machine = struct.unpack_from(order + "HH", head, 16)
        if (e_machine, head[4], head[5]) != (arch.elf_machine, arch.elf_class, arch.elf_data):
            raise VerificationError(
                f"{label} is built for ELF machine {e_machine} ({32 * head[4]}-bit), not for this host ({arch.debian})"
            )
        if head[4] == 2:
            (phoff,) = struct.unpack_from(order + "Q", head, 32)
            phentsize, phnum = struct.unpack_from(order + "HH", head, 54)
        else:
            (phoff,) = struct.unpack_from(order + "I", head, 28)
            phentsize, phnum = struct.unpack_from(order + "HH", head, 42)
        if e_type not in (2, 3) or phnum == 0 or phentsize < 4:
            raise VerificationError(f"{label} is not an ELF executable")
        f.seek(phoff)
        table = f.read(phentsize * phnum)
        if len(table) < phentsize * phnum:
            raise VerificationError(f"{label} is a truncated ELF file")
    for i in range(phnum):
        (p_type,) = struct.unpack_from(order + "I", table, i * phentsize)
        if p_type == _PT_INTERP:
            raise VerificationError(
                f"{label} is dynamically linked, not static",
                hint="a static qemu is needed: it runs inside foreign containers that lack the host's libraries",
            )
