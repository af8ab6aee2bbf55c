"""Target architectures, one table row each.

Adding an architecture means adding one row: nothing else in xcompile
branches on the architecture's name.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from xcompile.errors import ConfigError


@dataclass(frozen=True)
class Arch:
    name: str
    """What users type, and the Docker Hub namespace of the official images."""
    platform: str
    """What ``docker build --platform`` takes."""
    qemu_binary: str
    """The static emulator, by its name in Debian's qemu-user-static."""
    debian_arch: str
    uname_m: str
    """What ``uname -m`` prints inside the image under qemu."""
    binfmt_name: str
    """The entry under /proc/sys/fs/binfmt_misc that runs this arch's ELF files."""
    binfmt_magic: str
    binfmt_mask: str

    @property
    def qemu_path_in_image(self) -> str:
        # Hosts that register qemu without the F flag make the kernel look
        # the interpreter up inside the container at this exact path.
        return f"/usr/bin/{self.qemu_binary}"


ARCHES: tuple[Arch, ...] = (
    # Magic and mask as in Debian's /usr/lib/binfmt.d/qemu-arm.conf.
    Arch(
        name="arm32v7",
        platform="linux/arm/v7",
        qemu_binary="qemu-arm-static",
        debian_arch="armhf",
        uname_m="armv7l",
        binfmt_name="qemu-arm",
        binfmt_magic=r"\x7fELF\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x28\x00",
        binfmt_mask=r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff",
    ),
)

_BY_NAME = {arch.name: arch for arch in ARCHES}


def get(name: str) -> Arch:
    try:
        return _BY_NAME[name]
    except KeyError:
        near = difflib.get_close_matches(name, _BY_NAME, n=1)
        hint = f"did you mean '{near[0]}'? " if near else ""
        raise ConfigError(
            f"unknown architecture '{name}'",
            hint=f"{hint}known: {', '.join(_BY_NAME)}",
        ) from None
