"""Step 1: settle on a static qemu for the target, from PATH or apt."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from xcompile.errors import CommandFailed, QemuUnavailable
from xcompile.platforms import Arch
from xcompile.runner import Runner

# Debian 12 has no package named "qemu" (the original script asked for it and
# died there), so only packages that exist are asked for, and only the first
# is required: binfmt-support just registers the emulators with the kernel.
APT_PACKAGES = ("qemu-user-static", "binfmt-support")
APT_BIN_DIR = Path("/usr/bin")


@dataclass(frozen=True)
class Qemu:
    binary: str
    """Its name, e.g. qemu-arm-static."""
    path: Path
    how: str
    """How it was found, for the user: "found on PATH", "installed with apt"."""
    notes: tuple[str, ...] = ()
    """Warnings on the way, for the user."""


def ensure(arch: Arch, runner: Runner) -> Qemu:
    found = runner.which(arch.qemu_binary)
    if found is not None:
        return Qemu(arch.qemu_binary, found, "found on PATH")
    if runner.which("apt-get") is None:
        raise QemuUnavailable(
            f"{arch.qemu_binary} is not on PATH and this host has no apt-get",
            hint="install a static qemu (e.g. your distribution's qemu-user-static) and put it on PATH",
        )
    return _apt_install(arch, runner)


def _apt_install(arch: Arch, runner: Runner) -> Qemu:
    notes: list[str] = []
    sudo: tuple[str, ...] = ()
    if os.geteuid() != 0:
        if runner.which("sudo") is None:
            raise QemuUnavailable(
                f"{arch.qemu_binary} is not on PATH, and installing it with apt needs root",
                hint="run as root, install sudo, or put a static qemu on PATH",
            )
        sudo = ("sudo",)
    try:
        runner.run(*sudo, "apt-get", "update", label="qemu", stream=True, terminal=bool(sudo))
    except CommandFailed as err:
        # One unreachable or mid-sync index fails the whole update, while
        # the lists apt already has usually still hold qemu-user-static.
        notes.append(f"apt-get update failed ({err}); trying with the package lists apt already has")
    if runner.dry_run:
        wanted = list(APT_PACKAGES)
    else:
        wanted = [pkg for pkg in APT_PACKAGES if _has_candidate(runner, pkg)]
        if APT_PACKAGES[0] not in wanted:
            raise QemuUnavailable(
                f"apt has no {APT_PACKAGES[0]} package on this release",
                hint="check the apt sources, or put a static qemu on PATH",
            )
    runner.run(*sudo, "apt-get", "install", "-y", *wanted, label="qemu", stream=True, terminal=bool(sudo))
    if runner.dry_run:
        return Qemu(arch.qemu_binary, APT_BIN_DIR / arch.qemu_binary, "to be installed with apt", tuple(notes))
    path = runner.which(arch.qemu_binary) or APT_BIN_DIR / arch.qemu_binary
    if not path.is_file():
        raise QemuUnavailable(f"apt installed {APT_PACKAGES[0]}, but {arch.qemu_binary} is still missing")
    return Qemu(arch.qemu_binary, path, "installed with apt", tuple(notes))


def _has_candidate(runner: Runner, package: str) -> bool:
    policy = runner.run("apt-cache", "policy", package, label="qemu")
    match = re.search(r"^\s*Candidate:\s*(\S+)", policy, re.MULTILINE)
    return match is not None and match.group(1) != "(none)"
