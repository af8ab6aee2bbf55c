"""Where an engine's logins are (its auth files, and DOCKER_AUTH_CONFIG), and podman's
credential files as podman 4 takes them: which file is its --authfile, and which of
the user's docker credentials it reads once DOCKER_CONFIG is gone.

containers-auth.json(5): REGISTRY_AUTH_FILE names the one file podman reads;
else podman 4 takes $DOCKER_CONFIG/config.json as that file (and stops when it
is missing); without either, it reads its own auth.json, then
~/.docker/config.json and the legacy ~/.dockercfg.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xcompile.engine import jsonfiles
from xcompile.errors import EnvironmentProblem
from xcompile.system.runner import Runner
from xcompile.system.terminal import Say

NamedFiles = tuple[tuple[str, Path], ...]
"""The credential files an environment variable names (config.named_auth_files)."""


@dataclass(frozen=True)
class Places:
    """Where logins may be, as the settings found them (config.load): docker's
    config.json, podman's auth file, DOCKER_AUTH_CONFIG's logins, and which
    files an environment variable named."""

    docker_config: Path
    podman_auth_file: Path
    docker_auth_config: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    named: NamedFiles = ()


@dataclass(frozen=True)
class AuthFile:
    """One of an engine's auth files, and how a fault in it is met (jsonfiles.read):
    ``warn`` None where the user named it, so that a fault is an error to fix; else a
    fault is said there once, and the file read as holding no login."""

    path: Path
    warn: Say | None = field(default=None, compare=False, repr=False)

    def __str__(self) -> str:
        return str(self.path)

    def data(self) -> dict[str, Any]:
        return jsonfiles.read(self.path, warn=self.warn) or {}

    def read(self, host: str, server: str) -> dict[str, Any]:
        del host, server  # the whole file
        return self.data()


@dataclass(frozen=True)
class EnvAuths:
    """DOCKER_AUTH_CONFIG's logins (config.load checked them as docker does), read before the
    engine's files, as the docker CLI (28.3+) reads them. Its keys are compared as docker
    compares them: exactly, with the host, or with Docker Hub's address as the engine gives it."""

    auths: tuple[tuple[str, str], ...] = field(repr=False)

    def __str__(self) -> str:
        return "DOCKER_AUTH_CONFIG"

    def read(self, host: str, server: str) -> dict[str, Any]:
        """As an auth file of ``auths`` alone, holding only the entry docker would take for ``host``."""
        return {"auths": {key: {"auth": auth} for key, auth in self.auths if key == (server or host)}}


Source = AuthFile | EnvAuths
"""Where a login may be: an engine's auth file, or DOCKER_AUTH_CONFIG."""


class SayOnce:
    """Says each line once, however many threads and lookups come to it: an auth file
    that cannot be read is warned about once a run, not once per registry question."""

    def __init__(self, say: Say) -> None:
        self._say, self._said, self._lock = say, set[str](), threading.Lock()

    def __call__(self, line: str, label: str | None = None) -> None:
        with self._lock:
            if line in self._said:
                return
            self._said.add(line)
        self._say(line, label)


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


def prepare(runner: Runner, program: str, named_auth_files: NamedFiles, home: Path, warn: Say) -> str | None:
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
    folder, held = named[1].parent, credentials_at_home(home, warn)
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


def credentials_at_home(home: Path, warn: Say) -> Path | None:
    """The first of ``home``'s docker auth files that holds or names credentials,
    which podman reads where DOCKER_CONFIG is not set."""
    files = (home / ".docker" / "config.json", home / ".dockercfg")
    return next((path for path in files if holds(path, warn)), None)


def holds(path: Path, warn: Say) -> bool:
    """Does this docker auth file (config.json, or the legacy .dockercfg) hold or
    name any credentials? One that cannot be read holds none (``warn`` says so)."""
    data = jsonfiles.read(path, warn=warn) or {}
    if path.name == ".dockercfg":  # the legacy format: hosts at the top
        return bool(data)
    return any(data.get(key) for key in ("auths", "credHelpers", "credsStore"))
