"""Before any build of a run that pushes: can each registry take the push?

A registry that is down, or that wants a login nobody gave, is otherwise found
only at `docker push`, after every build and proof. So, for each registry
host, all at once and with a short timeout:

- ``GET /v2/`` answers (the registry API's version check);
- if it answers 401 to an anonymous request, the engine's auth config has
  credentials for the host (``auths``, ``credHelpers`` or ``credsStore``).

Only the registry's answer decides; no registry hostname is written here.
Docker Hub's address comes from the daemon. `xcompile doctor` shows the same
findings.
"""

from __future__ import annotations

import importlib
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias
from urllib.parse import urlsplit

from xcompile import dockerconfig, engine, reference
from xcompile.config import Config
from xcompile.errors import CommandFailed, EnvironmentProblem, XcompileError
from xcompile.runner import Runner

# requests loads in the thread that asks the registries, beside the run's other
# start-up work (issue 8: its import is a good part of the fixed cost).
if TYPE_CHECKING:
    import requests

    _Answer: TypeAlias = requests.Response | requests.RequestException

Status = Literal["pass", "warn", "fail"]
TIMEOUT = (2.0, 3.0)
"""Seconds to connect, and to wait for the answer: a registry that is up answers at once."""


@dataclass(frozen=True)
class Registry:
    name: str
    """What the user reads: the host, or "Docker Hub"."""
    host: str
    """host[:port], as credentials are keyed."""
    url: str
    """scheme://host[:port]"""
    login: str
    """The command that gives credentials, e.g. `docker login HOST`."""


@dataclass(frozen=True)
class Finding:
    name: str
    status: Status
    detail: str
    fix: str = ""


def load_http() -> None:
    """Start importing requests in the background, where a run will ask the
    registries: its import (about 0.1 s of CPU) then overlaps the engine's first answer."""
    threading.Thread(target=importlib.import_module, args=("requests",), name="import-requests", daemon=True).start()


def for_config(config: Config, runner: Runner, chosen: engine.Engine = engine.DOCKER) -> list[Registry]:
    """The registries a run of ``config`` pushes to, with ``chosen``'s login command."""
    return registries(
        [config.repo], insecure=config.insecure, index_address=lambda: chosen.hub_address(runner),
        program=chosen.program,
    )  # fmt: skip


def registries(
    repos: Iterable[str],
    *,
    insecure: bool | None,
    index_address: Callable[[], str],
    program: str = "docker",
) -> list[Registry]:
    """The registries ``repos`` push to, once each. ``index_address`` asks the
    daemon for Docker Hub's address (only called when a repo has no host)."""
    found: dict[str, Registry] = {}
    for repo in repos:
        host = reference.registry_host(repo)
        if host is None:
            address = index_address()
            hub = urlsplit(address).netloc or address
            found.setdefault(hub, Registry("Docker Hub", hub, f"https://{hub}", f"`{program} login`"))
            continue
        scheme = "http" if reference.plain_http(repo, insecure) else "https"
        found.setdefault(host, Registry(host, host, f"{scheme}://{host}", f"`{program} login {host}`"))
    return list(found.values())


def check(found: list[Registry], auth_files: tuple[Path, ...]) -> list[Finding]:
    """Ask every registry at once; two findings each (reachable, login)."""
    if not found:
        return []
    with ThreadPoolExecutor(max_workers=len(found), thread_name_prefix="preflight") as pool:
        answers = list(pool.map(_ask, found))
    findings: list[Finding] = []
    for registry, answer in zip(found, answers, strict=True):
        findings += _judge(registry, answer, auth_files)
    return findings


def ensure(found: list[Registry], auth_files: tuple[Path, ...]) -> str:
    """Raise EnvironmentProblem (exit 3) for the first registry that cannot
    take a push; else return one line for the user."""
    started = time.monotonic()
    findings = check(found, auth_files)
    for finding in findings:
        if finding.status == "fail":
            raise EnvironmentProblem(finding.detail, hint=finding.fix or None)
    names = ", ".join(registry.name for registry in found)
    return f"preflight: {names} ready for the push ({time.monotonic() - started:.2f} s)"


# Docker's words when the registry is not there (any more): a dead port, a
# dropped connection, a name that no longer resolves.
_GONE = re.compile(r"connection refused|connection reset|no such host|i/o timeout|unexpected EOF|server misbehaving")


def gone(err: CommandFailed, repo: str) -> XcompileError | None:
    """A push's failure, in one line, when it failed because the registry went away."""
    text = f"{err.stderr}\n{err.stdout}"
    found = _GONE.search(text)
    if found is None:
        return None
    host = reference.registry_host(repo) or "Docker Hub"
    return XcompileError(
        f"push failed: registry {host} is not answering ({found.group(0)})",
        hint="run the same command again once it is back",
    )


# --- one registry -------------------------------------------------------------


def _ask(registry: Registry) -> _Answer:
    import requests

    try:
        with requests.Session() as session:
            session.trust_env = False  # a proxy from the environment is not what the engine uses for loopback
            return session.get(f"{registry.url}/v2/", timeout=TIMEOUT, allow_redirects=True)
    except requests.RequestException as err:
        return err


def _judge(registry: Registry, answer: _Answer, auth_files: tuple[Path, ...]) -> list[Finding]:
    import requests

    label = f"registry {registry.name}"
    if isinstance(answer, requests.RequestException):
        why = f"registry {registry.name} is not reachable at {registry.url} ({_why(answer)}): the push would fail"
        return [Finding(label, "fail", why, "start it or check the network, or build with --no-push")]
    if answer.status_code not in (200, 401):
        why = f"registry {registry.name} answered HTTP {answer.status_code} at {registry.url}/v2/, not as a registry"
        return [Finding(label, "fail", why, "check the repository's host, or build with --no-push")]
    reach = Finding(label, "pass", f"{registry.url} answers")
    if answer.status_code == 200:
        return [reach, Finding("registry login", "pass", f"{registry.name} needs no login")]
    return [reach, _login(registry, auth_files)]


def _login(registry: Registry, auth_files: tuple[Path, ...]) -> Finding:
    for auth_file in auth_files:
        try:
            data = dockerconfig.read(auth_file) or {}
        except XcompileError as err:
            return Finding("registry login", "fail", err.message, err.hint or "")
        where = _credentials(data, registry.host)
        if where:
            return Finding("registry login", "pass", f"credentials for {registry.name} in {where} of {auth_file}")
    return Finding(
        "registry login",
        "fail",
        f"registry {registry.name} wants a login, and {_none_of(auth_files)} for it",
        registry.login,
    )


def _none_of(auth_files: tuple[Path, ...]) -> str:
    if len(auth_files) == 1:
        return f"{auth_files[0]} has no credentials"
    return f"neither {' nor '.join(map(str, auth_files))} has credentials"


def _credentials(data: Mapping[str, Any], host: str) -> str | None:
    """Which part of an auth config holds credentials for ``host``, if any.
    Keys are compared as docker does: without scheme and path."""
    auths = data.get("auths") if isinstance(data.get("auths"), dict) else {}
    if any(dockerconfig.key_host(key) == host for key in auths or {}):
        return "auths"
    helpers = data.get("credHelpers") if isinstance(data.get("credHelpers"), dict) else {}
    if any(dockerconfig.key_host(key) == host for key in helpers or {}):
        return "credHelpers"
    if data.get("credsStore"):
        return "credsStore"
    return None


def _why(err: requests.RequestException) -> str:
    import requests

    if isinstance(err, requests.Timeout):
        return f"no answer within {TIMEOUT[1]:g} s"
    if isinstance(err, requests.exceptions.SSLError):
        return "its TLS certificate is not trusted here"
    if isinstance(err, requests.ConnectionError):
        return "connection refused or host unknown"
    return type(err).__name__
