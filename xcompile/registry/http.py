"""The one way xcompile speaks HTTP to a registry: trusted as the engine trusts it, bounded, and polite with secrets.

- **Which CAs.** The system's, plus those docker reads for the host
  (``/etc/docker/certs.d/HOST/*.crt``), plus ``REQUESTS_CA_BUNDLE`` or
  ``SSL_CERT_FILE`` where set: a registry behind a private CA that `docker
  push` reaches is reached here too.
- **No proxy from the environment**: the engine uses none for loopback, and
  the registry check must ask what the push will reach.
- **Bounded**: a body is read up to a limit, so a registry cannot make the
  run hold a 300 MB manifest in memory.
- **Credentials go to a Bearer realm only over https**, or over plain http
  where the registry itself is plain HTTP (by configuration, or loopback),
  as docker does; never in a URL.
"""

from __future__ import annotations

import functools
import json
import os
import re
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import BaseAdapter, HTTPAdapter

from xcompile.errors import RegistryUnreadable
from xcompile.registry import Registry
from xcompile.registry.credentials import Login
from xcompile.urls import redact

DOCKER_CERTS = Path("/etc/docker/certs.d")
TIMEOUT = (3.0, 10.0)
MAX_BODY = 4 << 20
"""The most a manifest, a config blob or a token answer may be (real ones are kilobytes)."""
UNTRUSTED = "its TLS certificate is not trusted here"
NOT_TLS = "it answers without TLS"


class _Adapter(HTTPAdapter):
    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self._context
        super().init_poolmanager(*args, **kwargs)


def trust_for(host: str, env: Mapping[str, str] | None = None, certs: Path = DOCKER_CERTS) -> ssl.SSLContext:
    """The system's CAs, plus docker's for ``host`` and the environment's bundle."""
    env = os.environ if env is None else env
    extra = [Path(env[name]) for name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE") if env.get(name)]
    folder = certs / host
    try:
        if folder.is_dir():
            extra += sorted(path for path in folder.iterdir() if path.suffix == ".crt")
    except OSError:
        pass  # a folder this user cannot read adds nothing, as for docker's client
    return _context(tuple((str(path), _stamp(path)) for path in dict.fromkeys(extra)))


@functools.lru_cache(maxsize=16)
def _context(files: tuple[tuple[str, tuple[int, int]], ...]) -> ssl.SSLContext:
    """One context per set of CA files as they are now: loading the system's CAs
    costs about 20 ms, and every read of the registry opens a session."""
    context = ssl.create_default_context()
    for path, _ in files:
        try:
            context.load_verify_locations(cafile=path)
        except (OSError, ssl.SSLError):
            continue  # an unreadable bundle adds nothing; the check then says the certificate is not trusted
    return context


def _stamp(path: Path) -> tuple[int, int]:
    try:
        found = path.stat()
    except OSError:
        return (0, -1)
    return found.st_mtime_ns, found.st_size


class _TrustOnFirstUse(BaseAdapter):
    """The https adapter, made at the first https request: the CAs cost about 20 ms to
    load, which a plain-HTTP registry (loopback, insecure) whose realm is too never needs."""

    def __init__(self, host: str) -> None:
        super().__init__()
        self._host = host
        self._made: _Adapter | None = None

    def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        if self._made is None:
            self._made = _Adapter(trust_for(self._host))
        return self._made.send(request, *args, **kwargs)

    def close(self) -> None:
        if self._made is not None:
            self._made.close()


def session(host: str) -> requests.Session:
    """A session for one registry host (see the module's notes)."""
    made = requests.Session()
    made.trust_env = False
    made.mount("https://", _TrustOnFirstUse(host))
    return made


def get(
    made: requests.Session, url: str, headers: Mapping[str, str], *, limit: int = MAX_BODY
) -> tuple[int, bytes, Mapping[str, str]]:
    """GET ``url``: (status, body up to ``limit`` bytes, headers). Raises RegistryUnreadable
    for a connection that fails or a body beyond the limit."""
    shown = redact(url)
    try:
        with made.get(url, headers=dict(headers), timeout=TIMEOUT, stream=True, allow_redirects=True) as response:
            body = bytearray()
            for chunk in response.iter_content(64 << 10):
                body += chunk
                if len(body) > limit:
                    msg = f"{shown}: an answer larger than {limit >> 20} MiB"
                    raise RegistryUnreadable(msg)
            return response.status_code, bytes(body), response.headers
    except requests.RequestException as err:
        why = _why(err)
        msg = f"{shown}: {why}"
        raise RegistryUnreadable(msg, why=why) from None


def json_object(body: bytes, what: str) -> dict[str, Any]:
    """``body`` as a JSON object, or RegistryUnreadable saying it is not one."""
    try:
        found = json.loads(body)
    except (ValueError, RecursionError):
        msg = f"{what} is not JSON"
        raise RegistryUnreadable(msg) from None
    if not isinstance(found, dict):
        msg = f"{what} is not a JSON object"
        raise RegistryUnreadable(msg)
    return found


def challenge(header: str) -> tuple[str, dict[str, str]]:
    """A WWW-Authenticate header: its scheme (lowercase) and parameters."""
    scheme, _, params = header.strip().partition(" ")
    return scheme.lower(), dict(re.findall(r'(\w+)="([^"]*)"', params))


def token_auth(made: requests.Session, where: Registry, header: str, scope: str, login: Login | None) -> str | None:
    """The Authorization header that answers a 401's challenge: Basic, or a
    Bearer token from the realm; None where there is no answer to give."""
    scheme, _ = challenge(header)
    if scheme == "basic":
        return login.basic() if login else None
    asked = _realm(where, header, scope, login)
    if asked is None:
        return None
    url, headers = asked
    status, body, _ = get(made, url, headers)
    return _token(body, url) if status == 200 else None


def login_accepted(made: requests.Session, where: Registry, header: str, login: Login) -> bool | None:
    """Whether the registry takes ``login``, asked as `docker login` asks it (its
    realm, then ``/v2/``): True, False where it refuses it, None where it cannot be told."""
    scheme, _ = challenge(header)
    if scheme == "basic":
        auth: str | None = login.basic()
    else:
        asked = _realm(where, header, "", login)
        if asked is None or "Authorization" not in asked[1]:
            return None  # an odd realm, or one the login is not sent to
        status, body, _ = get(made, *asked)
        if status in (401, 403):
            return False
        auth = _token(body, asked[0]) if status == 200 else None
    if auth is None:
        return None
    status, _, _ = get(made, f"{where.url}/v2/", {"Authorization": auth})
    return {200: True, 401: False}.get(status)


def _realm(where: Registry, header: str, scope: str, login: Login | None) -> tuple[str, dict[str, str]] | None:
    """The URL and headers that ask a Bearer challenge's realm for a token; None for an odd realm."""
    scheme, params = challenge(header)
    realm = params.get("realm", "")
    query = {"service": params.get("service", ""), "scope": params.get("scope") or scope}
    try:
        parts = urlsplit(realm)
        url = requests.Request("GET", realm, params=query).prepare().url or realm
    except (ValueError, requests.RequestException):  # not a URL: "http://[::1", a port "x" or 99999999
        return None
    if scheme != "bearer" or parts.scheme not in ("http", "https") or not parts.hostname or parts.username:
        return None  # an odd or credential-bearing realm is not asked at all
    # Credentials only over https, or where the registry itself speaks plain HTTP.
    send = login if parts.scheme == "https" or where.plain_http else None
    return url, ({"Authorization": send.basic()} if send else {})


def _token(body: bytes, url: str) -> str | None:
    found = json_object(body, f"the token answer of {redact(url)}")
    value = found.get("token") or found.get("access_token")
    return f"Bearer {value}" if isinstance(value, str) and value else None


def _why(err: requests.RequestException) -> str:
    if isinstance(err, requests.exceptions.SSLError):
        return _tls_why(err)
    if isinstance(err, requests.Timeout):
        return f"no answer within {TIMEOUT[1]:g} s"
    if isinstance(err, requests.ConnectionError):
        return "connection refused or host unknown"
    if isinstance(err, requests.TooManyRedirects):
        return "redirected in a loop"
    if isinstance(err, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)):
        return "an answer cut short or not as encoded"
    return type(err).__name__


def _tls_why(err: BaseException) -> str:
    """Which TLS failure: a certificate not trusted here, or no TLS at all (a plain-HTTP registry)."""
    for cause in _causes(err):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return UNTRUSTED
        if isinstance(cause, ssl.SSLError) and cause.reason == "WRONG_VERSION_NUMBER":
            return NOT_TLS
    return "the TLS handshake failed"


def _causes(err: BaseException) -> list[BaseException]:
    """``err`` and what it wraps: urllib3 keeps the ssl module's error in ``reason`` or ``args``."""
    found: list[BaseException] = []
    todo = [err]
    while todo and len(found) < 20:
        cause = todo.pop()
        if cause in found:
            continue
        found.append(cause)
        inner = [getattr(cause, "reason", None), cause.__cause__, cause.__context__, *cause.args]
        todo += [one for one in inner if isinstance(one, BaseException)]
    return found
