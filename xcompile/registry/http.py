"""The one way xcompile speaks HTTP to a registry: trusted as the engine trusts it, bounded, and polite with secrets.

- **Which CAs.** The system's, plus those docker reads for the host
  (``/etc/docker/certs.d/HOST/*.crt``), plus ``REQUESTS_CA_BUNDLE`` or
  ``SSL_CERT_FILE`` where set: a registry behind a private CA that `docker
  push` reaches is reached here too.
- **No proxy from the environment**: the engine uses none for loopback, and
  the registry check must ask what the push will reach.
- **Bounded**: a body is read up to a limit, so a registry cannot make the
  run hold a 300 MB manifest in memory.
- **A challenge counts only from the registry itself**: an answer from a host
  it redirects to comes without one, so that host never earns its credentials.
- **Credentials go to a Bearer realm over https** (on any host, as Docker Hub's),
  or over plain HTTP only where the registry itself is plain HTTP (by
  configuration, or loopback) and only to its own host; never in a URL.
"""

from __future__ import annotations

import functools
import json
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import BaseAdapter, HTTPAdapter
from urllib3 import HTTPHeaderDict

from xcompile.errors import RegistryUnreadable
from xcompile.registry import Registry
from xcompile.registry.challenges import challenge
from xcompile.registry.credentials import Login
from xcompile.urls import redact

DOCKER_CERTS = Path("/etc/docker/certs.d")
TIMEOUT = (3.0, 10.0)
CLIENT_ID = "xcompile"
"""Who asks an OAuth2 token server (the spec's required client_id; docker says "docker")."""
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
) -> tuple[int, bytes, HTTPHeaderDict]:
    """GET ``url``: (status, body up to ``limit`` bytes, headers). Raises RegistryUnreadable
    for a connection that fails or a body beyond the limit.

    Redirects are followed; requests drops the Authorization header where one leads to
    another host, port or scheme. An answer from another origin than ``url``'s comes
    without its challenge (WWW-Authenticate): as docker takes the challenge from the
    registry's own answer, a host the registry redirects to never earns its credentials."""
    return _send(made, "GET", url, headers, None, limit)


def post(
    made: requests.Session, url: str, form: Mapping[str, str], *, limit: int = MAX_BODY
) -> tuple[int, bytes, HTTPHeaderDict]:
    """POST ``form`` (url-encoded) to ``url``, as ``get``, but redirects are not followed:
    a 307 would send the form, and the secret in it, on to wherever it points."""
    return _send(made, "POST", url, {}, dict(form), limit)


def _send(
    made: requests.Session, method: str, url: str, headers: Mapping[str, str], form: dict[str, str] | None, limit: int
) -> tuple[int, bytes, HTTPHeaderDict]:
    shown = redact(url)
    try:
        with made.request(method, url, headers=dict(headers), data=form, timeout=TIMEOUT, stream=True,
                          allow_redirects=form is None) as response:  # fmt: skip
            body = bytearray()
            for chunk in response.iter_content(64 << 10):
                body += chunk
                if len(body) > limit:
                    msg = f"{shown}: an answer larger than {limit >> 20} MiB"
                    raise RegistryUnreadable(msg)
            return response.status_code, bytes(body), _headers(url, response)
    except requests.RequestException as err:
        why = _why(err)
        msg = f"{shown}: {why}"
        raise RegistryUnreadable(msg, why=why) from None


def _headers(asked: str, response: requests.Response) -> HTTPHeaderDict:
    """The answer's headers, every value of a repeated one kept; without its challenge where
    it came from another origin than the one asked."""
    found = HTTPHeaderDict(getattr(response.raw, "headers", None) or response.headers)
    if _origin(response.url) != _origin(asked):
        found.discard("WWW-Authenticate")
    return found


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    return parts.scheme, parts.hostname or "", port or {"http": 80, "https": 443}.get(parts.scheme)


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


def token_auth(made: requests.Session, where: Registry, header: str, scope: str, login: Login | None) -> str | None:
    """The Authorization header that answers a 401's challenge: Basic, or a
    Bearer token from the realm; None where there is no answer to give."""
    scheme, _ = challenge(header)
    if scheme == "basic":
        return login.basic() if login and not login.identity_token else None
    realm = _realm(where, header, scope, login)
    if realm is None:
        return None
    status, body = _ask(made, realm)
    return _token_of(body, realm.url) if status == 200 else None


def login_accepted(made: requests.Session, where: Registry, header: str, login: Login) -> bool | None:
    """Whether the registry takes ``login``, asked as `docker login` asks it (its
    realm, then ``/v2/``): True, False where it refuses it, None where it cannot be told."""
    scheme, _ = challenge(header)
    if scheme == "basic":
        auth = None if login.identity_token else login.basic()
    else:
        realm = _realm(where, header, "", login)
        if realm is None or realm.login is None:
            return None  # an odd realm, or one the login is not sent to
        status, body = _ask(made, realm)
        if status in (401, 403):
            return False
        auth = _token_of(body, realm.url) if status == 200 else None
    if auth is None:
        return None
    status, _, _ = get(made, f"{where.url}/v2/", {"Authorization": auth})
    return {200: True, 401: False}.get(status)


@dataclass(frozen=True)
class _Realm:
    """A Bearer challenge's realm, and what it is asked with."""

    url: str
    query_url: str
    """The realm with ``service`` and ``scope`` in its query: what a GET asks."""
    service: str
    scope: str
    login: Login | None
    """The login it may be sent (see ``_may_send``); None: asked without one."""


def _realm(where: Registry, header: str, scope: str, login: Login | None) -> _Realm | None:
    """How to ask a Bearer challenge's realm for a token; None for an odd realm."""
    scheme, params = challenge(header)
    realm = params.get("realm", "")
    service, scope = params.get("service", ""), params.get("scope") or scope
    try:
        parts = urlsplit(realm)
        url = requests.Request("GET", realm, params={"service": service, "scope": scope}).prepare().url or realm
    except (ValueError, requests.RequestException):  # not a URL: "http://[::1", a port "x" or 99999999
        return None
    if scheme != "bearer" or parts.scheme not in ("http", "https") or not parts.hostname or parts.username:
        return None  # an odd or credential-bearing realm is not asked at all
    send = login if _may_send(where, parts.scheme, parts.hostname) else None
    return _Realm(realm, url, service, scope, send)


def _ask(made: requests.Session, realm: _Realm) -> tuple[int, bytes]:
    """The realm's answer. An identity token (an OAuth2 refresh token: `az acr login`'s)
    is POSTed as docker does (distribution's token spec, "OAuth2 token"); a login
    goes as Basic in a GET's header."""
    login = realm.login
    if login is not None and login.identity_token:
        form = {"grant_type": "refresh_token", "service": realm.service, "scope": realm.scope,
                "client_id": CLIENT_ID, "refresh_token": login.identity_token}  # fmt: skip
        status, body, _ = post(made, realm.url, form)
        return status, body
    status, body, _ = get(made, realm.query_url, {"Authorization": login.basic()} if login else {})
    return status, body


def _may_send(where: Registry, scheme: str, hostname: str) -> bool:
    """Whether the registry's login may go to a realm: over https, to any host (Docker Hub's
    realm is on a host of its own); over plain HTTP, only where the registry itself speaks
    plain HTTP, and only to its own host (another port of it is common): never in clear
    text to another host, nor from an https registry to an http realm."""
    if scheme == "https":
        return True
    return where.plain_http and hostname == (urlsplit(where.url).hostname or "")


def _token_of(body: bytes, url: str) -> str | None:
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
