"""Step 1 with the host's real apt."""

from __future__ import annotations

from pathlib import Path

from xcompile.host import platforms
from xcompile.qemu import settle
from xcompile.settings.config import Config
from xcompile.system.runner import Runner

ARM = platforms.get("arm32v7")


def test_apt_installs_only_packages_this_release_has() -> None:
    """The real apt-get: update, ask which packages exist, install those."""
    lines: list[str] = []
    found = settle.ensure(ARM, Runner(lambda line, label: lines.append(line)), Config(qemu_source="apt"))
    commands = [line for line in lines if line.startswith("+ ")]
    assert commands[0] == "+ apt-get update"
    assert commands[1:3] == ["+ apt-cache policy qemu-user-static", "+ apt-cache policy binfmt-support"]
    assert commands[3] == "+ apt-get install -y qemu-user-static binfmt-support"
    assert found.path == Path("/usr/bin/qemu-arm-static") and found.path.is_file()
    assert found.how == "installed with apt"
