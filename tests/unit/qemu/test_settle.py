"""Step 1 with a PATH the test makes: a qemu found there, and none with no apt."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from conftest import run_in_process


def test_found_on_path_skips_apt(tmp_path: Path, user_env: dict[str, str]) -> None:
    result = run_in_process("qemu", cwd=tmp_path, env=user_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{shutil.which('qemu-arm-static')}\n"
    assert "apt-get" not in result.stderr
    found = shutil.which("qemu-arm-static")
    first_line = subprocess.run([str(found), "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    assert result.stderr == f"+ {found} --version\nxcompile: qemu: {found} (found on PATH, {first_line})\n"


def test_no_binary_and_no_apt(tmp_path: Path, user_env: dict[str, str]) -> None:
    result = run_in_process("qemu", cwd=tmp_path, env={**user_env, "PATH": str(tmp_path)})
    assert result.returncode == 3
    assert result.stderr == (
        "xcompile: error: qemu-arm-static is not on PATH, this host has no usable apt-get, and no Debian mirror"
        " is configured — give a mirror with --mirror URL (or XCOMPILE_MIRROR, or `mirror =` in the config file),"
        " or put a static qemu on PATH\n"
    )
