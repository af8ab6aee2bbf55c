"""A registry host's login, from the engine's auth files, as docker and podman read them.

An auth file (docker's ``config.json``, podman's ``auth.json``) may hold, for
a host: ``credHelpers`` (a helper per host), ``credsStore`` (one helper for all)
or ``auths`` (base64 ``user:password``), asked in that order, as docker asks
them: where a helper is named, the login is the helper's (``docker login``
leaves an empty ``auths`` entry beside it). Keys are compared as docker
compares them: without scheme and path; Docker Hub's names are one host. A
helper is asked for what docker asks it for: Docker Hub's address as the engine
gives it, else the host. Whatever the file holds, odd shapes included, the
answer is a login or none: never an error that ends the run. A file that
cannot be read at all is the one reader's (engine/jsonfiles.py): a warning
and no login, unless the user named it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xcompile.engine import authfiles
from xcompile.errors import OutputTooLarge, XcompileError
from xcompile.registry import reference
from xcompile.system.runner import Runner

HELPER_TIMEOUT = 30.0
HELPER_OUTPUT = 1 << 20
"""The most of a credential helper's answer read (a login is a few hundred bytes):
one that printed 800 MB took the process to 2.3 GB."""
_HELPER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class Login:
    username: str
    secret: str = field(repr=False)
    identity_token: str = field(default="", repr=False)
    """An OAuth2 refresh token (``identitytoken`` in auths, a helper's ``<token>`` user:
    `az acr login`'s and other OAuth2 logins): a realm is asked with it, never Basic."""

    def basic(self) -> str:
        """The value of an Authorization header."""
        return "Basic " + base64.b64encode(f"{self.username}:{self.secret}".encode()).decode()


def key_host(key: str) -> str:
    """The host of an ``auths`` or ``credHelpers`` key: without scheme and path."""
    for scheme in ("https://", "http://"):
        key = key.removeprefix(scheme)
    return key.split("/", 1)[0]


def _keys(key: object, host: str) -> bool:
    """Whether an auth file's ``key`` is for ``host`` (Docker Hub's names count as one)."""
    found = key_host(str(key))
    return found == host or (found in reference.HUB_NAMES and host in reference.HUB_NAMES)


AuthFile = authfiles.Source | Path
"""Where a login may be: an engine's auth file, or DOCKER_AUTH_CONFIG, as the engine's choice
found them (engine/choice.py); a bare path is read as a file the user named."""


def _read(auth_file: AuthFile, host: str, server: str) -> Mapping[str, Any]:
    """An auth file's data, read by the one reader (engine/jsonfiles.py): a file the engine looks
    for by default that cannot be read is said once and holds nothing; a named one raises."""
    return (authfiles.AuthFile(auth_file) if isinstance(auth_file, Path) else auth_file).read(host, server)


@dataclass(frozen=True)
class Source:
    """Where a host's credentials are: a part of an auth file, and the helper it names, if any."""

    part: str
    """"auths", "credHelpers" or "credsStore"."""
    auth_file: AuthFile
    helper: str | None = None
    """The program that holds them (``docker-credential-NAME``), for credHelpers and credsStore."""


def where(host: str, auth_files: tuple[AuthFile, ...], *, server: str = "") -> Source | None:
    """Which part of which auth file holds credentials for ``host``, without
    running any helper. Raises for a file the user named that cannot be read."""
    for auth_file in auth_files:
        data = _read(auth_file, host, server)
        found = part_for(data, host)
        if found is not None:
            helper = _helper_for(data, host, stores=found == "credsStore") if found != "auths" else None
            return Source(found, auth_file, f"docker-credential-{helper}" if helper else None)
    return None


def part_for(data: Mapping[str, Any], host: str) -> str | None:
    """Which part of one auth file's ``data`` holds credentials for ``host``, if any."""
    if _helper_for(data, host, stores=False):
        return "credHelpers"
    if _helper_for(data, host, stores=True):
        return "credsStore"
    if any(_keys(key, host) for key in _mapping(data.get("auths"))):
        return "auths"
    return None


def find(host: str, auth_files: tuple[AuthFile, ...], runner: Runner, *, server: str = "") -> Login | None:
    """The login for ``host`` from the first auth file that has one; None where
    none has (a helper that is missing or fails counts as none). ``server``: what
    a helper is asked for, where it is not the host (Docker Hub's address). Raises
    for a file the user named that cannot be read, as ``where`` does."""
    for auth_file in auth_files:
        data = _read(auth_file, host, server)  # raises only for a file the user named
        login = _from_helper(data, host, server or host, runner) or _in_auths(data, host)
        if login is not None:
            return login
    return None


_SECRETS = ("auth", "username", "password", "identitytoken", "registrytoken")
"""What an ``auths`` entry may hold a login in (docker's AuthConfig)."""


def in_auths(host: str, auth_file: AuthFile, *, server: str = "") -> Login | bool | None:
    """The login ``auth_file``'s ``auths`` holds for ``host``; False where its entry holds
    nothing at all (``{}``: what `docker login` leaves beside a helper); None where it holds
    something else (a registry token), or the file cannot be read."""
    try:
        data = _read(auth_file, host, server)
    except XcompileError:
        return None
    login = _in_auths(data, host)
    if login is not None:
        return login
    entries = [e for k, e in _mapping(data.get("auths")).items() if _keys(k, host)]
    empty = all(not (isinstance(e, Mapping) and any(e.get(key) for key in _SECRETS)) for e in entries)
    return False if entries and empty else None


def _in_auths(data: Mapping[str, Any], host: str) -> Login | None:
    for key, entry in _mapping(data.get("auths")).items():
        if not _keys(key, host) or not isinstance(entry, Mapping):
            continue
        token = entry.get("identitytoken")
        token = token if isinstance(token, str) else ""
        if isinstance(entry.get("auth"), str) and entry["auth"]:
            try:
                text = base64.b64decode(entry["auth"], validate=True).decode("utf-8", "replace")
            except (binascii.Error, ValueError):
                continue
            user, _, password = text.partition(":")
            return Login(user, password, token)
        if isinstance(entry.get("username"), str) and isinstance(entry.get("password"), str):
            return Login(entry["username"], entry["password"], token)
        if token:
            return Login(str(entry.get("username") or ""), "", token)
    return None


def _from_helper(data: Mapping[str, Any], host: str, server: str, runner: Runner) -> Login | None:
    helper = _helper_for(data, host, stores=False) or _helper_for(data, host, stores=True)
    if helper is None:
        return None
    program = f"docker-credential-{helper}"
    try:
        # The helper prints the secret on stdout; the runner echoes only argv.
        out = runner.ask(program, "get", stdin=server, timeout=HELPER_TIMEOUT, limit=HELPER_OUTPUT)
        found = json.loads(out or "")
    except OutputTooLarge:
        runner.echo(f"xcompile: warning: {program} printed more than 1 MiB for {host}; going on without a login", None)
        return None
    except (XcompileError, json.JSONDecodeError):
        return None  # not installed, failed, or said something else: no login
    if not isinstance(found, Mapping):
        return None
    user, secret = found.get("Username"), found.get("Secret")
    if not isinstance(user, str) or not isinstance(secret, str):
        return None
    # docker-credential-helpers' convention: the user "<token>" says the secret is an identity token.
    return Login("", "", secret) if user == "<token>" else Login(user, secret)


def _helper_for(data: Mapping[str, Any], host: str, *, stores: bool) -> str | None:
    if stores:
        helper = data.get("credsStore")
    else:
        helper = next((v for k, v in _mapping(data.get("credHelpers")).items() if _keys(k, host)), None)
    return helper if isinstance(helper, str) and _HELPER_NAME.fullmatch(helper) else None


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
