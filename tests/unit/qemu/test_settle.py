"""Step 1, with the host's real PATH and real apt."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import run_xcompile

from xcompile.host import platforms
from xcompile.qemu import settle
from xcompile.settings.config import Config
from xcompile.system.runner import Runner

ARM = platforms.get("arm32v7")


def test_found_on_path_skips_apt(tmp_path: Path, user_env: dict[str, str]) -> None:
    result = run_xcompile("qemu", cwd=tmp_path, env=user_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{shutil.which('qemu-arm-static')}\n"
    assert "apt-get" not in result.stderr
    found = shutil.which("qemu-arm-static")
    first_line = subprocess.run([str(found), "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    assert result.stderr == f"+ {found} --version\nxcompile: qemu: {found} (found on PATH, {first_line})\n"


def test_no_binary_and_no_apt(tmp_path: Path, user_env: dict[str, str]) -> None:
    result = run_xcompile("qemu", cwd=tmp_path, env={**user_env, "PATH": str(tmp_path)})
    assert result.returncode == 3
    assert result.stderr == (
        "xcompile: error: qemu-arm-static is not on PATH, this host has no usable apt-get, and no Debian mirror"
        " is configured — give a mirror with --mirror URL (or XCOMPILE_MIRROR, or `mirror =` in the config file),"
        " or put a static qemu on PATH\n"
    )


@pytest.mark.integration
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
