"""Before any build of a run that pushes: can each registry take the push?

A registry that is down, or that wants a login nobody gave, is otherwise found
only at `docker push`, after every build and proof. So, for each registry
host, all at once and with a short timeout:

- ``GET /v2/`` answers (the registry API's version check);
- if it answers 401 to an anonymous request, the engine's auth files have
  credentials for the host (``auths``, ``credHelpers`` or ``credsStore``),
  and the credential helper they name is installed.

Only the registry's answer decides. `xcompile doctor` shows the same findings.
"""

from __future__ import annotations

import importlib
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from xcompile import registry
from xcompile.engine import DOCKER, Engine, classify
from xcompile.errors import CommandFailed, EnvironmentProblem, RegistryUnreadable, XcompileError
from xcompile.registry import Registry, credentials, reference
from xcompile.system.runner import Runner
from xcompile.system.terminal import Status


@dataclass(frozen=True)
class Finding:
    """One line of what a check found (the build's registry check, `xcompile doctor`): what was
    checked ("registry HOST", "registry login"), pass, warn or fail, what was found in words, and
    what to do about it where it is not a pass."""

    name: str
    status: Status
    detail: str
    fix: str = ""


def load_http() -> None:
    """Start importing requests in the background, where a run will ask the
    registries: its import (about 0.1 s of CPU) then overlaps the engine's first answer."""
    threading.Thread(target=importlib.import_module, args=("requests",), name="import-requests", daemon=True).start()


def for_repo(repo: str, insecure: bool | None, runner: Runner, chosen: Engine = DOCKER) -> list[Registry]:
    """The registries a run that pushes to ``repo`` reaches, with ``chosen``'s login command."""
    return registry.for_repos(
        [repo], insecure=insecure, hub_address=lambda: chosen.hub_address(runner), program=chosen.program
    )


def check(found: list[Registry], auth_files: tuple[credentials.AuthFile, ...]) -> list[Finding]:
    """Ask every registry at once; two findings each (reachable, login)."""
    if not found:
        return []
    with ThreadPoolExecutor(max_workers=len(found), thread_name_prefix="xcompile-registry-check") as pool:
        answers = list(pool.map(_ask, found))
    findings: list[Finding] = []
    for where, answer in zip(found, answers, strict=True):
        findings += _judge(where, answer, auth_files)
    return findings


def ensure(found: list[Registry], auth_files: tuple[credentials.AuthFile, ...]) -> str:
    """Raise EnvironmentProblem (exit 3) for the first registry that cannot
    take a push; else return one line for the user."""
    started = time.monotonic()
    for finding in check(found, auth_files):
        if finding.status == "fail":
            raise EnvironmentProblem(finding.detail, hint=finding.fix or None)
    names = ", ".join(where.name for where in found)
    return f"registry check: {names} ready for the push ({time.monotonic() - started:.2f} s)"


def gone(err: CommandFailed, repo: str) -> XcompileError | None:
    """A push's failure, in one line, when it failed because the registry went away."""
    failure = classify(err)
    if failure.kind != "unreachable":
        return None
    host = reference.registry_host(repo) or "Docker Hub"
    return XcompileError(
        f"push failed: registry {host} is not answering ({failure.words})",
        hint="run the same command again once it is back",
    )


# --- one registry -------------------------------------------------------------


Answer = tuple[int, str] | RegistryUnreadable
"""What ``GET /v2/`` answered: its status and its challenge (WWW-Authenticate), or why there was no answer."""


def _ask(where: Registry) -> Answer:
    from xcompile.registry import http

    try:
        with http.session(where.host) as made:
            status, _, headers = http.get(made, f"{where.url}/v2/", {}, limit=1 << 20)
            return status, str(headers.get("WWW-Authenticate", ""))
    except RegistryUnreadable as err:
        return err


def _judge(where: Registry, asked: Answer, auth_files: tuple[credentials.AuthFile, ...]) -> list[Finding]:
    label = f"registry {where.name}"
    if isinstance(asked, RegistryUnreadable):
        why = asked.why or asked.message
        detail = f"registry {where.name} is not reachable at {where.url} ({why}): the push would fail"
        return [Finding(label, "fail", detail, _fix_for(where, asked.why))]
    answer, challenge = asked
    if answer not in (200, 401):
        detail = f"registry {where.name} answered HTTP {answer} at {where.url}/v2/, not as a registry"
        fix = "check the repository's host, or build with --no-push"
        if answer == 400 and where.plain_http:  # a TLS server's answer to plain HTTP (loopback is plain by default)
            fix = "if it serves https, set insecure = false (XCOMPILE_INSECURE=false); or build with --no-push"
        return [Finding(label, "fail", detail, fix)]
    reach = Finding(label, "pass", f"{where.url} answers")
    if answer == 200:
        return [reach, Finding("registry login", "pass", f"{where.name} needs no login")]
    return [reach, _login(where, auth_files, challenge)]


def _fix_for(where: Registry, why: str | None) -> str:
    from xcompile.registry import http

    if why == http.UNTRUSTED:
        # Where docker's daemon reads a registry's CA too (for a host it verifies; loopback it does not).
        return (
            f"trust its CA: put it in {http.DOCKER_CERTS}/{where.host}/ca.crt, or name it in REQUESTS_CA_BUNDLE;"
            " or build with --no-push"
        )
    if why == http.NOT_TLS:
        return "if it serves plain HTTP, set insecure = true (XCOMPILE_INSECURE=true); or build with --no-push"
    return "start it or check the network, or build with --no-push"


def _login(where: Registry, auth_files: tuple[credentials.AuthFile, ...], challenge: str) -> Finding:
    try:
        found = credentials.where(where.host, auth_files, server=where.server)
    except XcompileError as err:
        return Finding("registry login", "fail", err.message, err.hint or "")
    if found and found.helper and not shutil.which(found.helper):
        # `docker push` then has no credentials for a registry that wants them: it would fail after every build.
        detail = (
            f"{found.auth_file} names {found.helper} for {where.name} (in {found.part}), and no such program is on PATH"
        )
        return Finding("registry login", "fail", detail, f"install {found.helper}, or {where.login}")
    # A login in auths is tried, as `docker login` tries it: a wrong or empty one would fail every push.
    login = None
    if found and found.part == "auths":
        login = credentials.in_auths(where.host, found.auth_file, server=where.server)
    if found and login is False:
        detail = f"registry {where.name} wants a login, and the entry for it in {found.auth_file} holds none"
        return Finding("registry login", "fail", detail, where.login)
    if found and isinstance(login, credentials.Login) and _refused(where, challenge, login):
        detail = f"registry {where.name} refused the login of {login.username!r} in auths of {found.auth_file}"
        return Finding("registry login", "fail", detail, f"log in again: {where.login}")
    if found:
        return Finding("registry login", "pass", f"credentials for {where.name} in {found.part} of {found.auth_file}")
    none = (
        f"{auth_files[0]} has no credentials"
        if len(auth_files) == 1
        else f"neither {' nor '.join(map(str, auth_files))} has credentials"
    )
    return Finding("registry login", "fail", f"registry {where.name} wants a login, and {none} for it", where.login)


def _refused(where: Registry, challenge: str, login: credentials.Login) -> bool:
    """Whether the registry refuses ``login`` (not where it cannot be told, or does not answer)."""
    from xcompile.registry import http

    try:
        with http.session(where.host) as made:
            return http.login_accepted(made, where, challenge, login) is False
    except RegistryUnreadable:
        return False  # the push will say; the check has found the registry answering
