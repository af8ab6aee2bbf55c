"""`xcompile join` where there is nothing to join: no docker, no registry."""

from __future__ import annotations

from pathlib import Path

from conftest import run_in_process


def test_join_with_one_arch_has_nothing_to_do(tmp_path: Path, user_env: dict[str, str]) -> None:
    result = run_in_process("join", "--arch", "arm32v7", "--repo", "127.0.0.1:5000/x/y", cwd=tmp_path, env=user_env)
    assert (result.returncode, result.stdout) == (0, "")
    assert result.stderr == (
        "xcompile: nothing to join: with one architecture (arm32v7) each tag is pushed as the image itself\n"
    )
