"""Target architectures, one table row each.

Adding an architecture means adding one row: nothing else in xcompile
branches on the architecture's name.
"""

from __future__ import annotations

import difflib
import platform as _platform
from dataclasses import dataclass

from xcompile.errors import ConfigError, QemuUnavailable

# binfmt magic/mask as Debian's qemu-user-static ships them in
# /usr/lib/binfmt.d/qemu-*.conf (i386's and x86_64's, which a Debian amd64
# host does not ship, as qemu's qemu-binfmt-conf.sh and a non-amd64 host's
# qemu-user-static give them). The magic is the start of an ELF header, so the
# ELF class, byte order and machine of each row are read from it.
_ELF32_LE = r"\x7fELF\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00"
_ELF64_LE = r"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00"
_MASK_LE = r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff"
_MASK_X86 = r"\xff\xff\xff\xff\xff\xfe\xfe\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff"


@dataclass(frozen=True)
class Arch:
    name: str
    """What users type, and the Docker Hub namespace of the official images."""
    platform: str
    """What ``docker build --platform`` takes: os/architecture[/variant]."""
    qemu_binary: str
    """The static emulator, by its name in Debian's qemu-user-static."""
    debian_arch: str
    uname_m: str | None
    """What ``uname -m`` prints in the image under qemu; None where it depends
    on the host (i386 on an x86_64 kernel prints x86_64)."""
    binfmt_name: str
    """The entry under /proc/sys/fs/binfmt_misc that runs this arch's ELF files."""
    binfmt_magic: str
    binfmt_mask: str
    native_on: tuple[str, ...] = ()
    """Host ``uname -m`` values that run this arch without emulation."""
    maybe_native_on: tuple[str, ...] = ()
    """Host ``uname -m`` values where some machines run this arch natively and others cannot:
    32-bit ARM on aarch64 (GitHub's arm runners, Graviton2/3 and Ampere Altra do; Graviton4,
    Grace and Apple M1-M4 do not), which ``uname -m`` cannot tell apart."""
    aliases: tuple[str, ...] = ()
    host_machines: tuple[str, ...] = ()
    """Host ``uname -m`` values of a machine *of* this arch (whose qemu
    binaries xcompile hands out); empty where xcompile does not run on it."""
    variant_optional: bool = False
    """Docker leaves this arch's variant empty in image configs as often as
    it writes it (arm64: "" or "v8"), so an empty one matches too."""

    @property
    def magic_bytes(self) -> bytes:
        return _unescape(self.binfmt_magic)

    @property
    def mask_bytes(self) -> bytes:
        return _unescape(self.binfmt_mask)

    @property
    def elf_class(self) -> int:
        """1: 32-bit, 2: 64-bit."""
        return self.magic_bytes[4]

    @property
    def elf_data(self) -> int:
        """1: little-endian, 2: big-endian."""
        return self.magic_bytes[5]

    @property
    def elf_machine(self) -> int:
        return int.from_bytes(self.magic_bytes[18:20], "little" if self.elf_data == 1 else "big")

    def matches(self, os: str, architecture: str, variant: str | None) -> bool:
        """Does an image config's os/architecture/variant say this arch?"""
        variant = variant or ""
        wanted = self.variant or ""
        if self.variant_optional and variant in ("", wanted):
            variant = wanted
        return (os, architecture, variant) == (self.os, self.architecture, wanted)

    def native_here(self, machine: str) -> bool:
        """Does a host whose ``uname -m`` is ``machine`` run this arch without qemu?"""
        return machine in self.native_on

    @property
    def namespace(self) -> str:
        return self.name

    @property
    def os(self) -> str:
        return self.platform.split("/")[0]

    @property
    def architecture(self) -> str:
        return self.platform.split("/")[1]

    @property
    def variant(self) -> str | None:
        parts = self.platform.split("/")
        return parts[2] if len(parts) > 2 else None

    @property
    def qemu_path_in_image(self) -> str:
        # Hosts that register qemu without the F flag make the kernel look
        # the interpreter up inside the container at this exact path.
        return f"/usr/bin/{self.qemu_binary}"


ARCHES: tuple[Arch, ...] = (
    Arch(name="arm32v6", platform="linux/arm/v6", qemu_binary="qemu-arm-static", debian_arch="armel",
         uname_m="armv7l", binfmt_name="qemu-arm", binfmt_magic=_ELF32_LE + r"\x28\x00", binfmt_mask=_MASK_LE,
         native_on=("armv6l", "armv7l"), maybe_native_on=("aarch64",), aliases=("armel", "linux/arm/v6", "armv6")),
    Arch(name="arm32v7", platform="linux/arm/v7", qemu_binary="qemu-arm-static", debian_arch="armhf",
         uname_m="armv7l", binfmt_name="qemu-arm", binfmt_magic=_ELF32_LE + r"\x28\x00", binfmt_mask=_MASK_LE,
         native_on=("armv7l",), maybe_native_on=("aarch64",), aliases=("armhf", "linux/arm", "linux/arm/v7", "armv7"),
         host_machines=("armv7l", "armv8l")),
    Arch(name="arm64v8", platform="linux/arm64/v8", qemu_binary="qemu-aarch64-static", debian_arch="arm64",
         uname_m="aarch64", binfmt_name="qemu-aarch64", binfmt_magic=_ELF64_LE + r"\xb7\x00", binfmt_mask=_MASK_LE,
         native_on=("aarch64",), aliases=("aarch64", "arm64", "linux/arm64", "linux/arm64/v8"),
         host_machines=("aarch64", "arm64"), variant_optional=True),
    Arch(name="i386", platform="linux/386", qemu_binary="qemu-i386-static", debian_arch="i386",
         uname_m=None, binfmt_name="qemu-i386", binfmt_magic=_ELF32_LE + r"\x03\x00", binfmt_mask=_MASK_X86,
         native_on=("x86_64", "i686"), aliases=("386", "linux/386", "x86"), host_machines=("i686", "i586", "i386")),
    Arch(name="ppc64le", platform="linux/ppc64le", qemu_binary="qemu-ppc64le-static", debian_arch="ppc64el",
         uname_m="ppc64le", binfmt_name="qemu-ppc64le", binfmt_magic=_ELF64_LE + r"\x15\x00",
         binfmt_mask=r"\xff\xff\xff\xff\xff\xff\xff\xfc\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\x00",
         native_on=("ppc64le",), aliases=("ppc64el", "linux/ppc64le"), host_machines=("ppc64le",)),
    Arch(name="s390x", platform="linux/s390x", qemu_binary="qemu-s390x-static", debian_arch="s390x",
         uname_m="s390x", binfmt_name="qemu-s390x",
         binfmt_magic=r"\x7fELF\x02\x02\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x16",
         binfmt_mask=r"\xff\xff\xff\xff\xff\xff\xff\xfc\xff\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff",
         native_on=("s390x",), aliases=("linux/s390x",), host_machines=("s390x",)),
    Arch(name="riscv64", platform="linux/riscv64", qemu_binary="qemu-riscv64-static", debian_arch="riscv64",
         uname_m="riscv64", binfmt_name="qemu-riscv64", binfmt_magic=_ELF64_LE + r"\xf3\x00", binfmt_mask=_MASK_LE,
         native_on=("riscv64",), aliases=("linux/riscv64",), host_machines=("riscv64",)),
    Arch(name="mips64le", platform="linux/mips64le", qemu_binary="qemu-mips64el-static", debian_arch="mips64el",
         uname_m="mips64", binfmt_name="qemu-mips64el", binfmt_magic=_ELF64_LE + r"\x08\x00",
         binfmt_mask=r"\xff\xff\xff\xff\xff\xff\xff\x00\xfe\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff",
         native_on=("mips64",), aliases=("mips64el", "linux/mips64le")),
    Arch(name="amd64", platform="linux/amd64", qemu_binary="qemu-x86_64-static", debian_arch="amd64",
         uname_m="x86_64", binfmt_name="qemu-x86_64", binfmt_magic=_ELF64_LE + r"\x3e\x00", binfmt_mask=_MASK_X86,
         native_on=("x86_64",), aliases=("x86_64", "linux/amd64", "x86-64"), host_machines=("x86_64", "amd64")),
)  # fmt: skip

_BY_NAME = {arch.name: arch for arch in ARCHES}
_BY_ALIAS = {alias: arch for arch in ARCHES for alias in (arch.name, *arch.aliases)}
BY_DEBIAN = {arch.debian_arch: arch for arch in ARCHES if arch.host_machines}
"""The rows xcompile can run on, by Debian architecture (whose qemu-user-static it fetches)."""
_BY_MACHINE = {machine: arch for arch in ARCHES for machine in arch.host_machines}


def host(machine: str | None = None) -> Arch:
    """This machine's own row (``machine`` defaults to ``platform.machine()``)."""
    machine = _platform.machine() if machine is None else machine
    try:
        return _BY_MACHINE[machine]
    except KeyError:
        known = ", ".join(sorted(_BY_MACHINE))
        msg = (
            f"no static qemu for this host: machine type {machine!r} has no Debian architecture "
            f"xcompile knows ({known})"
        )
        raise QemuUnavailable(
            msg,
            hint="install qemu-user-static with the host's package manager and put it on PATH",
        ) from None


def one_per_emulator(arches: tuple[Arch, ...]) -> list[Arch]:
    """The first arch for each qemu binary: arm32v6 and arm32v7 share one."""
    return list({arch.qemu_binary: arch for arch in arches}.values())


def get(name: str) -> Arch:
    """The row for a name or one of its usual aliases (armhf, aarch64, linux/arm, ...)."""
    try:
        return _BY_ALIAS[name.strip().lower()]
    except KeyError:
        near = difflib.get_close_matches(name, _BY_ALIAS, n=1)
        hint = f"did you mean '{_BY_ALIAS[near[0]].name}'? " if near else ""
        msg = f"unknown architecture '{name}'"
        raise ConfigError(
            msg,
            hint=f"{hint}known: {', '.join(_BY_NAME)}",
        ) from None


def _unescape(text: str) -> bytes:
    return text.encode("latin-1").decode("unicode_escape").encode("latin-1")
