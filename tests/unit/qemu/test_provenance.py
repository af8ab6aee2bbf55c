"""What an image's labels say of its qemu (xcompile/provenance.claim), and which CPU an emulator's
ELF header names (xcompile/elf.made_for): the two facts `xcompile verify` starts the archive check from."""

from __future__ import annotations

import pytest
from debian_archive import tiny_elf

from xcompile.host import elf
from xcompile.host.platforms import BY_DEBIAN
from xcompile.qemu import provenance
from xcompile.registry import recipe

BOOKWORM = "1:7.2+dfsg-7+deb12u18+b3"


@pytest.mark.parametrize(
    ("source", "version", "claim"),
    [
        (
            "debian trixie qemu-user 1:10.0.13+ds-0+deb13u1",
            "1:10.0.13+ds-0+deb13u1",
            provenance.Claim("1:10.0.13+ds-0+deb13u1", "download"),
        ),
        (f"apt qemu-user-static {BOOKWORM}", BOOKWORM, provenance.Claim(BOOKWORM, "apt")),
        (
            "path /usr/bin/qemu-arm-static",
            f"qemu-arm version 7.2.13 (Debian {BOOKWORM})",
            provenance.Claim(BOOKWORM, "path"),
        ),
        ("path /opt/qemu-arm-static", "qemu-arm version 9.0.0", provenance.Claim(None, "path")),
        ("https://example.invalid/qemu-arm-static", "qemu-arm version 9.0.0", provenance.Claim(None, "url")),
        ("unknown", "unknown", provenance.Claim(None, "unknown")),
        ("debian trixie qemu-user", "", provenance.Claim(None, "unknown")),
    ],
)
def test_the_labels_name_a_debian_version_where_the_qemu_came_from_debian(
    source: str, version: str, claim: provenance.Claim
) -> None:
    assert provenance.claim({recipe.QEMU_SOURCE: source, recipe.QEMU_VERSION: version}) == claim
    assert provenance.claim({}) == provenance.Claim(None, "unknown")


@pytest.mark.parametrize("debian_arch", sorted(BY_DEBIAN))
def test_an_elf_header_names_the_host_row_it_was_built_for(debian_arch: str) -> None:
    assert elf.made_for(tiny_elf(debian_arch)[:64]) == BY_DEBIAN[debian_arch]


def test_what_is_no_elf_or_another_cpu_names_no_row() -> None:
    assert elf.made_for(b"#!/bin/sh\n") is None
    assert elf.made_for(tiny_elf("amd64", machine=0x28)[:64]) is None  # 64-bit, but ARM's 32-bit machine
    assert elf.made_for(b"\x7fELF") is None
