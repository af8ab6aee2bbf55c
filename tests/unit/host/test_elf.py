"""The host's Debian architecture, from its machine name (xcompile/host/elf.py)."""

from __future__ import annotations

import subprocess

import pytest

from xcompile.errors import (
    QemuUnavailable,
)
from xcompile.host.elf import host_debian_arch

# --- host_debian_arch ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("machine", "arch"),
    [
        ("x86_64", "amd64"),
        ("aarch64", "arm64"),
        ("armv7l", "armhf"),
        ("i686", "i386"),
        ("ppc64le", "ppc64el"),
        ("s390x", "s390x"),
        ("riscv64", "riscv64"),
    ],
)
def test_host_debian_arch_maps_machine_names(machine: str, arch: str) -> None:
    assert host_debian_arch(machine) == arch


def test_host_debian_arch_agrees_with_dpkg() -> None:
    dpkg = subprocess.run(["dpkg", "--print-architecture"], check=True, capture_output=True, text=True).stdout.strip()
    assert host_debian_arch() == dpkg


def test_host_debian_arch_unknown_machine() -> None:
    with pytest.raises(QemuUnavailable, match="'sparc64'") as err:
        host_debian_arch("sparc64")
    assert err.value.exit_code == 3
