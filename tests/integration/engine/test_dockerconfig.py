"""The docker config edit where it needs more than files: a read-only bind mount (root), and a
broken config docker reads by default under a real build."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Registry, run_xcompile

from xcompile.engine import dockerconfig
from xcompile.engine.dockerconfig import Edit
from xcompile.errors import EnvironmentProblem
from xcompile.system.runner import Runner


def enable_experimental(path: Path, *, dry_run: bool = False) -> Edit:
    edit, written = dockerconfig.enable_experimental(path, Runner(lambda line, label: None, dry_run=dry_run))
    assert written is (not dry_run and edit.action != "unchanged")
    return edit


AUTHS = {"auths": {"registry.invalid": {"auth": "c2VjcmV0"}}, "credsStore": "pass"}


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    # Root ignores permission bits, so make the folder truly read-only.
    subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True)


# root: a read-only bind mount
def test_read_only_folder(tmp_path: Path) -> None:
    folder = tmp_path / ".docker"
    folder.mkdir()
    path = folder / "config.json"
    path.write_text(json.dumps(AUTHS))
    original = path.read_bytes()
    with read_only(folder), pytest.raises(EnvironmentProblem) as err:
        enable_experimental(path)
    assert str(err.value) == (
        f"cannot write {path}: Read-only file system; left unchanged"
        " — make its folder writable, or point DOCKER_CONFIG at another folder"
    )
    assert err.value.exit_code == 3
    assert path.read_bytes() == original
    assert os.listdir(folder) == ["config.json"]


def test_a_broken_config_docker_reads_by_default_does_not_stop_the_build(
    armhf_base: str, registry: Registry, tmp_path: Path, user_env: dict[str, str]
) -> None:
    """~/.docker/config.json that no DOCKER_CONFIG names, and that docker itself could not read:
    docker warns and goes on, and so does the build (its docker needs no experimental edit);
    the file is never rewritten."""
    env = {key: value for key, value in user_env.items() if key != "DOCKER_CONFIG"}
    env["HOME"] = str(tmp_path / "home")
    path = tmp_path / "home" / ".docker" / "config.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"{oops")
    repo = f"{registry.host}/team/brokenconfig"
    try:
        result = run_xcompile("--base", armhf_base, "--repo", repo, "--tag", "a", cwd=tmp_path, env=env)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "Traceback" not in result.stderr and "is not valid JSON" not in result.stdout
        assert registry.tags("team/brokenconfig") == ["a"]
        seen = run_xcompile("inspect", f"{repo}:a", "--format", "json", cwd=tmp_path, env=env)
        assert seen.returncode == 0, seen.stderr
        assert json.loads(seen.stdout)[0]["platform"] == "linux/arm/v7"
    finally:
        subprocess.run(["docker", "rmi", f"{repo}:a"], capture_output=True, check=False)
    assert path.read_bytes() == b"{oops"
