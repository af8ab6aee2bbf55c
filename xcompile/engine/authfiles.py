"""Podman's credential files, as podman 4 takes them: which file is its --authfile,
and which of the user's docker credentials it reads once DOCKER_CONFIG is gone.

containers-auth.json(5): REGISTRY_AUTH_FILE names the one file podman reads;
else podman 4 takes $DOCKER_CONFIG/config.json as that file (and stops when it
is missing); without either, it reads its own auth.json, then
~/.docker/config.json and the legacy ~/.dockercfg.
"""

from __future__ import annotations

import json
from pathlib import Path

from xcompile.errors import EnvironmentProblem
from xcompile.system.runner import Runner

NamedFiles = tuple[tuple[str, Path], ...]
"""The credential files an environment variable names (config.named_auth_files)."""


def check(named_auth_files: NamedFiles) -> None:
    """Refuse a missing --authfile. Seen with podman 4.3: run, pull, push and
    manifest add/push (not build) stop with "stat …: no such file or directory"
    when it is missing. The other variable is then not read at all."""
    named = podman_takes(named_auth_files)
    if named is not None and not named[1].exists():
        variable, path = named
        msg = f"podman cannot run containers while {variable} names a file that does not exist ({path})"
        raise EnvironmentProblem(
            msg,
            hint=f"create it (`echo {{}} > {path}`), or unset {variable}",
        )


def prepare(runner: Runner, program: str, named_auth_files: NamedFiles, home: Path) -> str | None:
    """A DOCKER_CONFIG folder without config.json (CI's fresh folder that keeps
    credentials apart) holds no credentials, so every podman command runs
    without the variable instead of stopping on the missing file: the line
    that says so. Podman then falls back to ``home``'s docker credentials,
    which that folder was set to keep apart: where some are there, it is
    refused, as a missing REGISTRY_AUTH_FILE is."""
    named = podman_takes(named_auth_files)
    if named is None or named[0] != "DOCKER_CONFIG" or named[1].exists():
        check(named_auth_files)
        return None
    folder, held = named[1].parent, credentials_at_home(home)
    if held is not None:
        msg = (
            f"podman cannot run while DOCKER_CONFIG names a folder without config.json ({folder}), and without"
            f" DOCKER_CONFIG it would read the credentials in {held}, which DOCKER_CONFIG keeps apart"
        )
        raise EnvironmentProblem(
            msg,
            hint=f"create it (`echo {{}} > {named[1]}`), or set REGISTRY_AUTH_FILE",
        )
    runner.run_without(program, "DOCKER_CONFIG")
    return (
        f"podman: {folder} has no config.json, so podman runs without DOCKER_CONFIG"
        " (podman 4 stops on the missing file; the folder holds no credentials to lose)"
    )


def podman_takes(named_auth_files: NamedFiles) -> tuple[str, Path] | None:
    """The credential file podman 4 takes as its --authfile, with the variable
    that names it: REGISTRY_AUTH_FILE's, else DOCKER_CONFIG's config.json."""
    named = dict(named_auth_files)
    for variable in ("REGISTRY_AUTH_FILE", "DOCKER_CONFIG"):
        if variable in named:
            return variable, named[variable]
    return None


def credentials_at_home(home: Path) -> Path | None:
    """The first of ``home``'s docker auth files that holds or names credentials,
    which podman reads where DOCKER_CONFIG is not set."""
    return next((path for path in (home / ".docker" / "config.json", home / ".dockercfg") if holds(path)), None)


def holds(path: Path) -> bool:
    """Does this docker auth file (config.json, or the legacy .dockercfg) hold or
    name any credentials? One that cannot be read counts as holding some."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return False
    except (OSError, ValueError):
        return True
    if not isinstance(data, dict):
        return True
    if path.name == ".dockercfg":  # the legacy format: hosts at the top
        return bool(data)
    return any(data.get(key) for key in ("auths", "credHelpers", "credsStore"))
