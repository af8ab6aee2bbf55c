"""A registry that answers oddly, or that asks for credentials where they must not go.

Whatever a registry answers, reading it ends as what it holds, as "no such
tag", or as "cannot read …; building": never an internal error. A Bearer
realm gets the login only over https, or over plain HTTP where the registry
itself is plain HTTP (configured so, or loopback), as docker 20.10 does; never
in a URL. A presigned storage URL is never shown, and no answer beyond 4 MiB
is held in memory.

The servers are real: pytest-httpserver on 127.0.0.1 (kernel-assigned ports),
one with TLS from a throwaway CA (tests/privateca.py). Whole runs against a
hostile stand-in are in tests/integration/registry/test_hostile.py.
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import socket
import subprocess
import sys
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import privateca
import pytest
from conftest import REPO, LoopbackServer
from hostile_registry import (
    A_LIST,
    CONFIG_DIGEST,
    PASSWORD,
    SIGNATURE,
    USER,
    auth_file,
    digest_of,
    image_config,
    image_manifest,
    presigned,
    run_measured,
    serve_huge,
)
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from xcompile.engine import choice
from xcompile.engine.authfiles import AuthFile
from xcompile.errors import RegistryUnreadable
from xcompile.pipeline.push import Published
from xcompile.registry import IMAGE_TYPES, LIST_TYPES, check, credentials
from xcompile.registry import Registry as Where
from xcompile.registry.reader import Reader
from xcompile.settings.config import Config
from xcompile.system.runner import Runner

MANIFEST = "/v2/team/app/manifests/a"
BLOB = f"/v2/team/app/blobs/{CONFIG_DIGEST}"


LABELLED = json.dumps(image_config({"org.example": "yes"})).encode()
LABELLED_MANIFEST = json.dumps(image_manifest(digest_of(LABELLED))).encode()


def login_for(host: str) -> dict[str, object]:
    return {"auths": {host: {"auth": base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}}}


def basic() -> str:
    return "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


def published(repo: str, docker_config: Path, *, insecure: bool | None = None) -> tuple[Published, list[str]]:
    """What the build reads before it builds (push.Published), and every line it says."""
    said: list[str] = []

    def say(line: str, label: str | None) -> None:
        said.append(line)

    config = Config(repo=repo, insecure=insecure, docker_config=docker_config)
    runner = Runner(say)
    chosen = choice.choose("docker", runner, config.auth_places, docker_config.parent, say)
    return Published(config, runner, chosen, say), said


def host_of(server: HTTPServer) -> str:
    return f"127.0.0.1:{server.port}"


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[HTTPServer, privateca.ServerFiles]]:
    """An https server on 127.0.0.1 whose certificate a throwaway CA signed."""
    files = privateca.make(tmp_path / "pki")
    server = LoopbackServer(host="127.0.0.1", port=0, ssl_context=files.server_context(), threaded=True)
    server.start()
    yield server, files
    server.clear()
    server.stop()


@pytest.fixture
def other_server() -> Iterator[HTTPServer]:
    """A second plain HTTP server on 127.0.0.1, on a port of its own (a realm, a storage)."""
    server = LoopbackServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


def recording(seen: list[Request], answer: Response) -> Callable[[Request], Response]:
    def handler(request: Request) -> Response:
        seen.append(request)
        return answer

    return handler


# --- 1. Bearer realms and credentials ---------------------------------------------


def test_an_https_registry_never_sends_the_login_to_a_plain_http_realm(
    tls_server: tuple[HTTPServer, privateca.ServerFiles],
    other_server: HTTPServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The registry speaks https (its CA trusted through REQUESTS_CA_BUNDLE) and
    points its Bearer realm at plain http on another loopback port: a downgrade
    docker refuses to send credentials over. The realm is asked without them,
    and the read ends as "cannot read …; building"."""
    server, files = tls_server
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(files.ca))
    host = host_of(server)
    realm = other_server.url_for("/token")
    assert realm.startswith("http://127.0.0.1:")
    challenge = f'Bearer realm="{realm}",service="registry.test",scope="repository:team/app:pull"'
    asked: list[Request] = []
    server.expect_request(MANIFEST).respond_with_handler(
        recording(asked, Response("", status=401, headers={"WWW-Authenticate": challenge}))
    )
    realm_saw: list[Request] = []
    other_server.expect_request("/token").respond_with_handler(recording(realm_saw, Response("{}", status=401)))
    reading, said = published(f"{host}/team/app", auth_file(tmp_path / "docker", login_for(host)), insecure=False)

    assert reading.read(f"{host}/team/app:a", "a") is None
    assert said == [
        f"cannot read {host}/team/app:a from the registry (registry {host} answered HTTP 401 for team/app:a); building"
    ]
    assert len(asked) == 1  # over TLS, trusted through REQUESTS_CA_BUNDLE
    assert len(realm_saw) == 1, "the realm was not asked at all"
    assert "Authorization" not in realm_saw[0].headers
    assert PASSWORD not in realm_saw[0].url and USER not in realm_saw[0].url


def test_an_https_realm_gets_the_login(
    tls_server: tuple[HTTPServer, privateca.ServerFiles], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, files = tls_server
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(files.ca))
    host = host_of(server)
    realm = server.url_for("/token")
    assert realm.startswith("https://")
    _token_registry(server, realm)
    reading, said = published(f"{host}/team/app", auth_file(tmp_path / "docker", login_for(host)), insecure=False)
    remote = reading.read(f"{host}/team/app:a", "a")
    assert remote is not None and remote.labels == {"org.example": "yes"}, said


def test_a_plain_http_loopback_registry_sends_the_login_to_its_loopback_http_realm(
    httpserver: HTTPServer, other_server: HTTPServer, tmp_path: Path
) -> None:
    """As docker 20.10 does: the registry itself is plain HTTP (loopback), so its
    realm on another loopback port gets Basic credentials, in a header only."""
    host = host_of(httpserver)
    realm_saw = _token_registry(httpserver, other_server.url_for("/token"), realm_server=other_server)
    reading, said = published(f"{host}/team/app", auth_file(tmp_path / "docker", login_for(host)))
    remote = reading.read(f"{host}/team/app:a", "a")
    assert remote is not None, said
    assert remote.labels == {"org.example": "yes"} and remote.digest == digest_of(LABELLED_MANIFEST)
    assert [request.headers.get("Authorization") for request in realm_saw] == [basic()]
    assert realm_saw[0].args.get("scope") == "repository:team/app:pull"
    assert PASSWORD not in realm_saw[0].url and USER not in realm_saw[0].url


def test_a_token_that_stopped_working_is_asked_for_again(
    httpserver: HTTPServer, other_server: HTTPServer, tmp_path: Path
) -> None:
    """A token lives minutes (Docker Hub's 300 s) and is for one repository, while a
    run reads for longer: a read whose token is refused asks the realm again, where
    it said "cannot read; building" and rebuilt what had not changed."""
    host = host_of(httpserver)
    realm_saw = _token_registry(httpserver, other_server.url_for("/token"), realm_server=other_server, lasts=2)
    reading, said = published(f"{host}/team/app", auth_file(tmp_path / "docker", login_for(host)))
    for _ in range(3):  # two requests a read: each token is spent by the read that asked for it
        remote = reading.read(f"{host}/team/app:a", "a")
        assert remote is not None and remote.labels == {"org.example": "yes"}, said
    assert said == [] and len(realm_saw) == 3


def test_the_check_asks_a_token_realm_whether_it_takes_the_login(
    httpserver: HTTPServer, other_server: HTTPServer, tmp_path: Path
) -> None:
    """As `docker login` asks it: the realm, with the login, then /v2/ with the token."""
    host = host_of(httpserver)
    realm_saw = _token_registry(httpserver, other_server.url_for("/token"), realm_server=other_server)
    (where,) = check.for_repo(f"{host}/team/app", None, Runner(lambda line, label: None))
    right = auth_file(tmp_path / "right", login_for(host))
    assert check.check([where], (right,))[1].status == "pass"
    wrong_login = {"auths": {host: {"auth": base64.b64encode(f"{USER}:wrong".encode()).decode()}}}
    wrong = auth_file(tmp_path / "wrong", wrong_login)
    login = check.check([where], (wrong,))[1]
    assert (login.status, login.detail) == (
        "fail",
        f"registry {host} refused the login of '{USER}' in auths of {wrong}",
    )
    assert [request.headers.get("Authorization") for request in realm_saw][-1] != basic()
    assert all(PASSWORD not in request.url for request in realm_saw)


def test_a_realm_with_credentials_in_its_url_is_not_asked(
    httpserver: HTTPServer, other_server: HTTPServer, tmp_path: Path
) -> None:
    host = host_of(httpserver)
    realm = other_server.url_for("/token").replace("http://", "http://someone:secret@")
    httpserver.expect_request(MANIFEST).respond_with_data(
        "", status=401, headers={"WWW-Authenticate": f'Bearer realm="{realm}",service="s"'}
    )
    realm_saw: list[Request] = []
    other_server.expect_request("/token").respond_with_handler(recording(realm_saw, Response('{"token": "t"}')))
    reading, said = published(f"{host}/team/app", auth_file(tmp_path / "docker", login_for(host)))
    assert reading.read(f"{host}/team/app:a", "a") is None
    assert realm_saw == []
    assert len(said) == 1 and "secret" not in said[0] and said[0].endswith("; building")


def _token_registry(
    server: HTTPServer, realm: str, *, realm_server: HTTPServer | None = None, lasts: int = 0
) -> list[Request]:
    """``server`` as a registry that wants a Bearer token from ``realm``, which
    gives one for the right Basic login; what the realm saw. ``lasts``: the number
    of requests a token is good for, as if it expired then (0: no end)."""
    tokens: dict[str, int] = {}
    realm_saw: list[Request] = []

    def realm_answer(request: Request) -> Response:
        realm_saw.append(request)
        if request.headers.get("Authorization") != basic():
            return Response("{}", status=401)
        token = uuid.uuid4().hex
        tokens[token] = lasts or -1
        return Response(json.dumps({"token": token}), content_type="application/json")

    def guarded(body: bytes, headers: dict[str, str]) -> Callable[[Request], Response]:
        def answer(request: Request) -> Response:
            token = request.headers.get("Authorization", "").removeprefix("Bearer ")
            if not tokens.get(token):
                return Response("", status=401, headers={"WWW-Authenticate": f'Bearer realm="{realm}",service="s"'})
            tokens[token] -= 1
            return Response(body, headers=headers, content_type=str(json.loads(body).get("mediaType", "")))

        return answer

    digest = {"Docker-Content-Digest": digest_of(LABELLED_MANIFEST)}
    server.expect_request(MANIFEST).respond_with_handler(guarded(LABELLED_MANIFEST, digest))
    server.expect_request(f"/v2/team/app/blobs/{digest_of(LABELLED)}").respond_with_handler(guarded(LABELLED, {}))
    server.expect_request("/v2/").respond_with_handler(guarded(b"{}", {}))
    (realm_server or server).expect_request("/token").respond_with_handler(realm_answer)
    return realm_saw


# --- 2. odd JSON never crashes -------------------------------------------------------


@pytest.mark.parametrize(
    ("manifest", "config", "why"),
    [
        ([1, 2, 3], None, "the manifest of team/app:a is not a JSON object"),
        ({**A_LIST, "manifests": ["a"]}, None, "the manifest of team/app:a: a manifest list entry without a digest"),
        (
            {**A_LIST, "manifests": {"a": 1}},
            None,
            "the manifest of team/app:a: a manifest list whose manifests are not a list",
        ),
        (image_manifest(), image_config(["a", "b"]), "the config of team/app:a holds labels that are not text by name"),
        (image_manifest(), image_config({"a": 1}), "the config of team/app:a holds labels that are not text by name"),
        (image_manifest(), [1], "the config of team/app:a is not a JSON object"),
        (image_manifest(), b"\xff", "the config of team/app:a is not JSON"),
    ],
    ids=["list", "manifests-of-text", "manifests-a-map", "labels-a-list", "labels-a-number", "config-a-list", "bytes"],
)
def test_odd_json_is_read_as_cannot_read(
    httpserver: HTTPServer, tmp_path: Path, manifest: object, config: object, why: str
) -> None:
    host = host_of(httpserver)
    if config is not None:  # served where the manifest names it, by its hash
        blob = config if isinstance(config, bytes) else json.dumps(config).encode()
        manifest = image_manifest(digest_of(blob))
        httpserver.expect_request(f"/v2/team/app/blobs/{digest_of(blob)}").respond_with_data(blob)
    httpserver.expect_request(MANIFEST).respond_with_data(json.dumps(manifest))
    reading, said = published(f"{host}/team/app", tmp_path / "docker" / "config.json")
    assert reading.read(f"{host}/team/app:a", "a") is None
    assert said == [f"cannot read {host}/team/app:a from the registry ({why}); building"]


@pytest.mark.parametrize(
    "auths",
    [
        {"credHelpers": "oops"},
        {"credHelpers": {"HOST": "nosuchhelper"}},
        {"credsStore": "nosuchhelper"},
        {"credHelpers": {"HOST": "../../bin/sh"}},
        {"auths": "oops"},
        {"auths": {"HOST": "oops"}},
        {"auths": {"HOST": {"auth": "not base64!"}}},
        {"auths": {"HOST": {"auth": 5}}},
    ],
    ids=["helpers-text", "helper-missing", "store-missing", "helper-a-path", "auths-text", "entry-text", "b64", "int"],
)
def test_odd_auth_files_give_no_login(httpserver: HTTPServer, tmp_path: Path, auths: dict[str, object]) -> None:
    """A registry that wants a login: the auth file's odd shapes and a helper
    that is not installed are no login; the read ends as "cannot read"."""
    host = host_of(httpserver)
    data = json.loads(json.dumps(auths).replace("HOST", host))
    httpserver.expect_request(MANIFEST).respond_with_data(
        "", status=401, headers={"WWW-Authenticate": 'Basic realm="r"'}
    )
    path = auth_file(tmp_path / "docker", data)
    assert credentials.find(host, (path,), Runner(lambda line, label: None)) is None
    reading, said = published(f"{host}/team/app", path)
    assert reading.read(f"{host}/team/app:a", "a") is None
    assert said[-1] == (
        f"cannot read {host}/team/app:a from the registry (registry {host} answered HTTP 401 for team/app:a); building"
    )
    assert not any("internal error" in line or "Traceback" in line for line in said)
    assert not any("../" in line for line in said), "a helper named by a path was run"


def test_the_check_says_a_credential_helper_is_not_installed(httpserver: HTTPServer, tmp_path: Path) -> None:
    """`docker push` to a registry that wants a login fails when the helper the
    auth file names is missing; the check says so before any build."""
    host = host_of(httpserver)
    httpserver.expect_request("/v2/").respond_with_data("", status=401, headers={"WWW-Authenticate": 'Basic realm="r"'})
    path = auth_file(tmp_path / "docker", {"credHelpers": {host: "xcompile-nosuchhelper"}})
    found = check.for_repo(f"{host}/team/app", None, Runner(lambda line, label: None))
    reach, login = check.check(found, (path,))
    assert reach.status == "pass"
    assert (login.status, login.detail) == (
        "fail",
        f"{path} names docker-credential-xcompile-nosuchhelper for {host} (in credHelpers),"
        " and no such program is on PATH",
    )
    assert login.fix == f"install docker-credential-xcompile-nosuchhelper, or `docker login {host}`"
    odd = auth_file(tmp_path / "odd", {"credHelpers": "oops"})
    assert check.check(found, (odd,))[1].detail == f"registry {host} wants a login, and {odd} has no credentials for it"


# The property test: random documents, challenges and statuses from a real server.

_KEYS = [
    *("mediaType", "manifests", "config", "digest", "Labels", "platform", "os", "architecture", "variant"),
    *("layers", "schemaVersion", "size", "token", "access_token", "auths", "credHelpers", "credsStore", "auth"),
]
_TEXTS = [*LIST_TYPES, *IMAGE_TYPES, "", "linux", "arm", "v7", "sha256:", CONFIG_DIGEST, "sha256:../x", "\u2603"]
_NOT_JSON = [b"", b"{", b"\xff\xfe", b"[" * 100_000, b"nul", b'{"a": NaN}', b"1" * 5000, b'"\\ud800"']


def _text(rng: random.Random) -> str:
    if rng.random() < 0.6:
        return rng.choice(_TEXTS)
    code_points = [rng.choice([rng.randrange(32, 127), rng.randrange(0x80, 0x3000)]) for _ in range(rng.randrange(9))]
    return "".join(map(chr, code_points))


def _value(rng: random.Random, depth: int = 0) -> object:
    kind = rng.randrange(8 if depth < 4 else 5)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.choice([0, -1, 1.5, 2**64, 10**30, -(10**18), 1e308, rng.randrange(-(10**6), 10**6)])
    if kind in (2, 3, 4):
        return _text(rng)
    if kind == 5:
        return [_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice([*_KEYS, _text(rng)]): _value(rng, depth + 1) for _ in range(rng.randrange(5))}


def _manifest_like(rng: random.Random) -> object:
    """Mostly shaped like a manifest or a list, with any part of it odd."""
    if rng.random() < 0.15:
        return _value(rng)
    doc = {key: _value(rng, 1) for key in rng.sample(_KEYS, rng.randrange(4))}
    if rng.random() < 0.5:
        doc["mediaType"] = rng.choice([*LIST_TYPES, *IMAGE_TYPES])
    if rng.random() < 0.4:
        entries = [{"digest": _value(rng, 2), "platform": _value(rng, 2)}, _value(rng, 2)]
        doc["manifests"] = [rng.choice(entries) for _ in range(rng.randrange(4))]
    if rng.random() < 0.6:
        doc["config"] = rng.choice([{"digest": CONFIG_DIGEST}, {"digest": _value(rng, 2)}, _value(rng, 2)])
    return doc


def _config_like(rng: random.Random) -> object:
    if rng.random() < 0.2:
        return _value(rng)
    doc = {key: _value(rng, 1) for key in rng.sample(["os", "architecture", "variant", "config"], rng.randrange(5))}
    if rng.random() < 0.6:
        doc["config"] = rng.choice([{"Labels": _value(rng, 2)}, {"Labels": {_text(rng): _value(rng, 3)}}, _value(rng)])
    return doc


def _body(rng: random.Random, shaped: Callable[[random.Random], object]) -> bytes:
    if rng.random() < 0.1:
        return rng.choice(_NOT_JSON)
    return json.dumps(shaped(rng)).encode()


def _answer(status: int, body: bytes, kind: str = "plain") -> Response:
    if kind == "cut":  # says more than it sends: a connection cut mid-body
        return Response(iter([body[: len(body) // 2]]), status=status, headers={"Content-Length": str(len(body) + 10)})
    if kind == "gzip":  # says gzip, is not
        return Response(body, status=status, headers={"Content-Encoding": "gzip"})
    if kind == "loop":
        return Response("", status=307, headers={"Location": MANIFEST})
    return Response(body, status=status)


def _challenged(challenge: str, then: Callable[[], Response]) -> Callable[[], Response]:
    """A 401 with ``challenge`` the first time; ``then`` after."""
    asked = []

    def answer() -> Response:
        if not asked:
            asked.append(True)
            return Response("", status=401, headers={"WWW-Authenticate": challenge})
        return then()

    return answer


@dataclass
class Case:
    """One registry's answers: what its manifest, blob and token URLs say."""

    name: str
    manifest: Callable[[], Response]
    blob: Callable[[], Response] = lambda: Response("", status=404)
    token: Callable[[], Response] = lambda: Response("", status=404)
    auths: object = None


class Scripted:
    """The server's one handler, answering as the current case says."""

    def __init__(self) -> None:
        self.case = Case("none", lambda: Response("", status=404))

    def __call__(self, request: Request) -> Response:
        if request.path.startswith("/v2/team/app/manifests/"):
            return self.case.manifest()
        if request.path.startswith("/v2/team/app/blobs/"):
            return self.case.blob()
        if request.path == "/token":
            return self.case.token()
        if request.path == "/loop":
            return Response("", status=302, headers={"Location": "/loop"})
        return Response("", status=404)


def _read_each(server: HTTPServer, cases: list[Case], auth: Path) -> list[str]:
    """Read the tag once per case, each with a reader of its own (none has a
    token yet); what went wrong other than RegistryUnreadable."""
    host = host_of(server)
    scripted = Scripted()
    server.expect_request(re.compile("/.*")).respond_with_handler(scripted)
    unexpected = []
    for case in cases:
        scripted.case = case
        auth.write_text(json.dumps(case.auths))
        where = Where(host, host, f"http://{host}", "`docker login`")
        try:
            # The auth file where the engine looks by default: whatever it holds, never an error.
            default = AuthFile(auth, lambda line, label: None)
            Reader(where, (default,), Runner(lambda line, label: None)).read("team/app", "a")
        except RegistryUnreadable:
            pass
        except Exception:  # what the test is looking for
            unexpected.append(f"{case.name}:\n{traceback.format_exc()}")
    return unexpected


def test_random_documents_are_read_or_unreadable_never_an_error(httpserver: HTTPServer, tmp_path: Path) -> None:
    """200 random JSON documents as manifests and config blobs, and random auth
    files: every read gives a Remote, None or RegistryUnreadable."""
    rng = random.Random(20261205)
    host = host_of(httpserver)
    cases = []
    for number in range(200):
        manifest, config = _body(rng, _manifest_like), _body(rng, _config_like)
        status = rng.choice([200] * 6 + [401])
        headers = {"Docker-Content-Digest": _text(rng).encode("ascii", "replace").decode()}
        if status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="r"'
        helper = {"credHelpers": {host: f"xcompile-nosuch-{number}"}}
        cases.append(
            Case(
                f"case {number}: {manifest[:200]!r} / {config[:200]!r}",
                manifest=lambda m=manifest, s=status, h=headers: Response(m, status=s, headers=h),
                blob=lambda c=config: Response(c),
                auths=rng.choice([login_for(host), helper, _value(rng)]),
            )
        )
    assert _read_each(httpserver, cases, tmp_path / "config.json") == []


def test_odd_challenges_statuses_and_bodies_are_unreadable_never_an_error(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    """Malformed WWW-Authenticate headers, realms and token answers, every
    status, redirect loops, bodies cut short or wrongly encoded."""
    rng = random.Random(4011)
    token = httpserver.url_for("/token")
    challenges = [
        "",
        "Bearer",
        "Bearer ",
        "Basic",
        'Basic realm="r"',
        "Negotiate abc",
        "Bearer realm=",
        'Bearer realm="',
        'Bearer realm=""',
        'Bearer realm="ftp://127.0.0.1/x"',
        'Bearer realm="file:///etc/passwd"',
        'Bearer realm="http://"',
        'Bearer realm="http://[::1"',
        'Bearer realm="http://127.0.0.1:99999999/t"',
        'Bearer realm="http://127.0.0.1:0/t"',
        'Bearer realm="http://127.0.0.1:x/t"',
        'Bearer realm="//127.0.0.1/t"',
        'Bearer realm="/token"',
        'Bearer realm="http://[zz]/t"',
        f'Bearer realm="{token.replace("://", "://u:p@")}"',
        f'Bearer realm="{token}",scope="{"x" * 8000}"',
        f'bEaReR REALM="{token}"',
        f'Bearer realm="{token}",,,=,"',
        f'Bearer realm="{httpserver.url_for("/loop")}"',
        *[f'Bearer realm="{token}"'] * 4,
    ]
    token_answers = [b'{"token": "t"}', b'{"token": 5}', b'{"access_token": ["x"]}', b"[1]", b"", b"\xff", b"{}"]
    statuses = [
        *(200, 201, 202, 203, 204, 206),
        *(300, 301, 302, 303, 304, 305, 307, 308),
        *(400, 401, 403, 404, 405, 406, 409, 410, 416, 418, 429, 451),
        *(500, 501, 502, 503, 504, 599),
    ]
    cases = []
    for number in range(120):
        challenge = challenges[number] if number < len(challenges) else rng.choice(challenges)
        status, kind = rng.choice(statuses), rng.choice(["plain", "cut", "gzip", "loop"])
        manifest = _body(rng, _manifest_like)
        token_body, token_status = rng.choice(token_answers), rng.choice([200, 200, 401, 500, 302])
        cases.append(
            Case(
                f"case {number}: {challenge[:100]!r}, then {status} {kind}; token {token_status} {token_body!r}",
                manifest=_challenged(challenge, lambda s=status, m=manifest, k=kind: _answer(s, m, k)),
                blob=lambda s=status, m=manifest, k=kind: _answer(s, m, k),
                token=lambda b=token_body, s=token_status: Response(b, status=s, headers={"Location": "/token"}),
                auths=login_for(host_of(httpserver)),
            )
        )
    assert _read_each(httpserver, cases, tmp_path / "config.json") == []


# --- 4. presigned URLs are never shown -------------------------------------------


@pytest.mark.parametrize(
    ("storage_answer", "why"),
    [
        (
            Response(f"<Error><Code>AccessDenied</Code><Sig>{SIGNATURE}</Sig></Error>", status=403),
            "registry HOST answered HTTP 403 for the config of team/app:a",
        ),
        (
            Response(f"not json {SIGNATURE}"),
            f"the config of team/app:a: its bytes hash to {digest_of(f'not json {SIGNATURE}'.encode())}, not to CONFIG",
        ),
        (Response(b" " * (5 << 20)), "http://HOST/v2/team/app/blobs/CONFIG: an answer larger than 4 MiB"),
    ],
    ids=["403", "not-json", "too-large"],
)
def test_a_presigned_blob_url_is_never_shown(
    httpserver: HTTPServer, other_server: HTTPServer, tmp_path: Path, storage_answer: Response, why: str
) -> None:
    host = host_of(httpserver)
    httpserver.expect_request(MANIFEST).respond_with_json(image_manifest())
    httpserver.expect_request(BLOB).respond_with_data("", status=307, headers={"Location": presigned(other_server)})
    other_server.expect_request(re.compile("/bucket/.*")).respond_with_response(storage_answer)
    reading, said = published(f"{host}/team/app", tmp_path / "docker" / "config.json")
    assert reading.read(f"{host}/team/app:a", "a") is None
    why = why.replace("HOST", host).replace("CONFIG", CONFIG_DIGEST)
    assert said == [f"cannot read {host}/team/app:a from the registry ({why}); building"]
    assert len(other_server.log) == 1  # the redirect was followed


def test_a_storage_that_is_down_is_not_named_with_its_signature(httpserver: HTTPServer, tmp_path: Path) -> None:
    host = host_of(httpserver)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        location = f"http://127.0.0.1:{closed.getsockname()[1]}/bucket/blob?X-Amz-Signature={SIGNATURE}"
    httpserver.expect_request(MANIFEST).respond_with_json(image_manifest())
    httpserver.expect_request(BLOB).respond_with_data("", status=307, headers={"Location": location})
    reading, said = published(f"{host}/team/app", tmp_path / "docker" / "config.json")
    assert reading.read(f"{host}/team/app:a", "a") is None
    assert len(said) == 1 and SIGNATURE not in said[0] and said[0].endswith("; building"), said


# --- 5. unbounded sizes ------------------------------------------------------------


READ_ONE = """
import sys
from pathlib import Path
from xcompile.errors import RegistryUnreadable
from xcompile.registry import Registry
from xcompile.registry.reader import Reader
from xcompile.system.runner import Runner
host = sys.argv[1]
reader = Reader(Registry(host, host, f"http://{host}", ""), (Path(sys.argv[2]),), Runner(lambda line, label: None))
try:
    reader.read("team/app", "a")
except RegistryUnreadable as err:
    print(err)
"""
# The reading process's own peak, exactly, as it ends (the parent's polling may miss its last moments).
REPORT_PEAK = """
import re
from pathlib import Path
print(re.search(r"^VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE).group(1))
"""


@pytest.mark.parametrize("what", ["manifest", "config"])
def test_a_300_mb_answer_is_refused_at_4_mib_with_little_memory(
    httpserver: HTTPServer, tmp_path: Path, what: str
) -> None:
    host = host_of(httpserver)
    if what == "manifest":
        serve_huge(httpserver, MANIFEST)
    else:
        httpserver.expect_request(MANIFEST).respond_with_json(image_manifest())
        serve_huge(httpserver, BLOB)
    out = tmp_path / "out"
    with out.open("wb") as sink:
        argv = [sys.executable, "-c", READ_ONE + REPORT_PEAK, host, str(tmp_path / "none.json")]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        code, polled = run_measured(argv, timeout=120, stdout=sink, stderr=subprocess.STDOUT, env=env)
    *said, peak_kb = out.read_text().splitlines()
    peak = max(polled, int(peak_kb) << 10)
    assert peak < 100 << 20, f"the reading process peaked at {peak >> 20} MiB"
    path = MANIFEST if what == "manifest" else BLOB
    assert (code, said) == (0, [f"http://{host}{path}: an answer larger than 4 MiB"]), out.read_text()
