"""Where the registry's login goes, and where it comes from.

- A challenge counts only from the registry itself: a host the registry
  redirects to (a storage, or anyone) that answers 401 never earns the
  registry's credentials, as docker takes its challenge from the registry's own answer.
- Over plain HTTP the login goes only to the registry's own host; an https realm
  may be anywhere (Docker Hub's is); an https registry's realm on http gets none.
- WWW-Authenticate is read as docker reads it: unquoted values, repeated
  parameters, several challenges (Bearer before Basic).

The servers are real: pytest-httpserver on 127.0.0.1 and 127.0.0.2 (kernel-assigned
ports), some with TLS from a throwaway CA (tests/privateca.py).
"""

from __future__ import annotations

import base64
import collections
import json
import random
import re
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import privateca
import pytest
from conftest import LoopbackServer, run_in_process
from plumbum import local
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from unit.registry.test_hostile import (
    LABELLED,
    LABELLED_MANIFEST,
    MANIFEST,
    PASSWORD,
    USER,
    _body,
    _config_like,
    _manifest_like,
    auth_file,
    basic,
    digest_of,
    host_of,
    image_config,
    image_manifest,
    login_for,
    published,
    recording,
    run_measured,
)
from xcompile.engine import choice
from xcompile.errors import RegistryUnreadable
from xcompile.registry import IMAGE_TYPES, challenges, check, credentials
from xcompile.registry import Registry as Where
from xcompile.registry.reader import Reader
from xcompile.settings.config import Config
from xcompile.settings.config import load as load_config
from xcompile.system.runner import Runner

BLOB = f"/v2/team/app/blobs/{digest_of(LABELLED)}"
"""The config blob LABELLED_MANIFEST names."""
DOCUMENTS = {MANIFEST: LABELLED_MANIFEST, BLOB: LABELLED, "/v2/": b"{}"}
"""What a registry that lets the login in serves: a manifest and the config it names by its hash."""


def serve(host: str = "127.0.0.1", files: privateca.ServerFiles | None = None) -> HTTPServer:
    server = LoopbackServer(host=host, port=0, ssl_context=files.server_context() if files else None, threaded=True)
    server.start()
    return server


@pytest.fixture
def servers() -> Iterator[list[HTTPServer]]:
    """Extra servers a test starts (``servers.append(serve(...))``), stopped after it."""
    started: list[HTTPServer] = []
    yield started
    for server in started:
        server.clear()
        server.stop()


def authorized(server: HTTPServer) -> list[str]:
    """The Authorization headers ``server`` received."""
    return [request.headers["Authorization"] for request, _ in server.log if "Authorization" in request.headers]


# --- 1. a redirect target's challenge ------------------------------------------------


def test_a_host_the_registry_redirects_to_never_gets_the_login_over_plain_http(
    httpserver: HTTPServer, servers: list[HTTPServer], tmp_path: Path
) -> None:
    """The registry answers the config blob with a 307 to another host, which
    answers 401 naming a realm of its own: the realm is never asked, and the read
    ends as "cannot read …; building"."""
    host = host_of(httpserver)
    elsewhere, steal = serve("127.0.0.2"), serve()
    servers += [elsewhere, steal]
    realm = steal.url_for("/steal").replace("127.0.0.1", "localhost")
    httpserver.expect_request(MANIFEST).respond_with_json(image_manifest(digest_of(LABELLED)))
    httpserver.expect_request(BLOB).respond_with_data("", status=307, headers={"Location": elsewhere.url_for("/b")})
    elsewhere.expect_request("/b").respond_with_data(
        "", status=401, headers={"WWW-Authenticate": f'Bearer realm="{realm}",service="s"'}
    )
    steal.expect_request("/steal").respond_with_json({"token": "t"})
    reading, said = published(f"{host}/team/app", auth_file(tmp_path / "docker", login_for(host)))

    assert reading.read(f"{host}/team/app:a", "a") is None
    assert said == [
        f"cannot read {host}/team/app:a from the registry"
        f" (registry {host} answered HTTP 401 for the config of team/app:a); building"
    ]
    assert len(elsewhere.log) == 1, "the redirect was not followed"
    assert steal.log == [] and authorized(elsewhere) == []


def test_a_host_the_registry_redirects_to_never_gets_the_login_over_tls(
    tmp_path: Path, servers: list[HTTPServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same over https: the redirect target's realm is on https too, where the
    login may go to a realm on another host, but only to one the registry named."""
    files = privateca.make(tmp_path / "pki")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(files.ca))
    registry, elsewhere = serve(files=files), serve(files=files)
    servers += [registry, elsewhere]
    host = host_of(registry)
    realm = elsewhere.url_for("/steal").replace("127.0.0.1", "localhost")
    assert realm.startswith("https://localhost:")
    registry.expect_request(MANIFEST).respond_with_json(image_manifest(digest_of(LABELLED)))
    registry.expect_request(BLOB).respond_with_data("", status=307, headers={"Location": elsewhere.url_for("/b")})
    elsewhere.expect_request("/b").respond_with_data(
        "", status=401, headers={"WWW-Authenticate": f'Bearer realm="{realm}",service="s"'}
    )
    elsewhere.expect_request("/steal").respond_with_json({"token": "t"})
    reading, said = published(f"{host}/team/app", auth_file(tmp_path / "docker", login_for(host)), insecure=False)

    assert reading.read(f"{host}/team/app:a", "a") is None
    assert len(said) == 1 and said[0].endswith("answered HTTP 401 for the config of team/app:a); building"), said
    assert [request.path for request, _ in elsewhere.log] == ["/b"]
    assert authorized(elsewhere) == []


def test_inspect_never_sends_the_login_to_a_host_the_registry_redirects_to(
    httpserver: HTTPServer, servers: list[HTTPServer], tmp_path: Path, user_env: dict[str, str]
) -> None:
    host = host_of(httpserver)
    elsewhere = serve()
    servers.append(elsewhere)
    challenge = f'Bearer realm="{elsewhere.url_for("/steal")}"'
    httpserver.expect_request(MANIFEST).respond_with_data("", status=307, headers={"Location": elsewhere.url_for("/m")})
    elsewhere.expect_request("/m").respond_with_data("", status=401, headers={"WWW-Authenticate": challenge})
    elsewhere.expect_request("/steal").respond_with_json({"token": "t"})
    auth_file(Path(user_env["DOCKER_CONFIG"]), login_for(host))
    result = run_in_process("inspect", f"{host}/team/app:a", cwd=tmp_path, env=user_env)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"xcompile: error: cannot read {host}/team/app:a from the registry:"
        f" registry {host} answered HTTP 401 for team/app:a"
    )
    assert [request.path for request, _ in elsewhere.log] == ["/m"] and authorized(elsewhere) == []


def test_a_bearer_token_is_never_forwarded_to_a_host_the_registry_redirects_to(
    httpserver: HTTPServer, servers: list[HTTPServer], tmp_path: Path
) -> None:
    """The registry's own realm gives a token; its blob is a redirect to storage on
    another host and port, and to the same host on another port: neither gets
    the token, nor the Basic login."""
    host = host_of(httpserver)
    storage, same_host = serve("127.0.0.2"), serve()
    servers += [storage, same_host]
    challenge = f'Bearer realm="{httpserver.url_for("/token")}",service="s"'

    def guarded(body: object) -> Response:
        return Response(json.dumps(body), content_type="application/json")

    def registry_answer(request: Request) -> Response:
        if request.path == "/token":
            ok = request.headers.get("Authorization") == basic()
            return guarded({"token": "tok"}) if ok else Response("", status=401)
        if request.headers.get("Authorization") != "Bearer tok":
            return Response("", status=401, headers={"WWW-Authenticate": challenge})
        if request.path == MANIFEST:
            return guarded(image_manifest(digest_of(LABELLED)))
        return Response("", status=307, headers={"Location": same_host.url_for("/hop")})

    httpserver.expect_request(MANIFEST).respond_with_handler(registry_answer)
    httpserver.expect_request(BLOB).respond_with_handler(registry_answer)
    httpserver.expect_request("/token").respond_with_handler(registry_answer)
    same_host.expect_request("/hop").respond_with_data("", status=302, headers={"Location": storage.url_for("/s")})
    storage.expect_request("/s").respond_with_data(LABELLED, content_type="application/json")
    reading, said = published(f"{host}/team/app", auth_file(tmp_path / "docker", login_for(host)))

    remote = reading.read(f"{host}/team/app:a", "a")
    assert remote is not None and remote.labels == {"org.example": "yes"}, said
    assert authorized(storage) == [] and authorized(same_host) == []
    assert len(storage.log) == 1 and len(same_host.log) == 1


# --- 2. a plain-HTTP registry's realm -----------------------------------------------


@pytest.mark.parametrize("realm_host", ["127.0.0.2", "localhost"])
def test_a_plain_http_registry_never_sends_the_login_to_a_plain_http_realm_on_another_host(
    httpserver: HTTPServer, servers: list[HTTPServer], tmp_path: Path, realm_host: str
) -> None:
    """The registry itself names the realm, on plain HTTP on another host: asked
    without the login (the login goes in clear text only to the registry's own host)."""
    host = host_of(httpserver)
    other = serve("127.0.0.2" if realm_host == "127.0.0.2" else "127.0.0.1")
    servers.append(other)
    realm = other.url_for("/token").replace(other.host, realm_host)
    realm_saw: list[Request] = []
    other.expect_request("/token").respond_with_handler(recording(realm_saw, Response("{}", status=401)))
    httpserver.expect_request(MANIFEST).respond_with_data(
        "", status=401, headers={"WWW-Authenticate": f'Bearer realm="{realm}",service="s"'}
    )
    reading, said = published(f"{host}/team/app", auth_file(tmp_path / "docker", login_for(host)))
    assert reading.read(f"{host}/team/app:a", "a") is None
    assert len(said) == 1 and said[0].endswith("answered HTTP 401 for team/app:a); building"), said
    assert len(realm_saw) == 1 and "Authorization" not in realm_saw[0].headers


def test_a_plain_http_registry_sends_the_login_to_an_https_realm_on_another_host(
    httpserver: HTTPServer, servers: list[HTTPServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over https the login may go to a realm on another host, as Docker Hub's does."""
    files = privateca.make(tmp_path / "pki")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(files.ca))
    host = host_of(httpserver)
    realm_server = serve(files=files)
    servers.append(realm_server)
    realm = realm_server.url_for("/token").replace("127.0.0.1", "localhost")
    realm_saw: list[Request] = []
    realm_server.expect_request("/token").respond_with_handler(recording(realm_saw, Response("{}", status=401)))
    httpserver.expect_request(MANIFEST).respond_with_data(
        "", status=401, headers={"WWW-Authenticate": f'Bearer realm="{realm}",service="s"'}
    )
    reading, _ = published(f"{host}/team/app", auth_file(tmp_path / "docker", login_for(host)))
    assert reading.read(f"{host}/team/app:a", "a") is None
    assert [request.headers.get("Authorization") for request in realm_saw] == [basic()]


# --- WWW-Authenticate as docker reads it ----------------------------------------------


@pytest.mark.parametrize(
    ("header", "scheme", "params"),
    [
        ('Bearer realm="https://a/t",service="s"', "bearer", {"realm": "https://a/t", "service": "s"}),
        ('Bearer realm="https://a/t", service=registry.example, scope=x', "bearer",
         {"realm": "https://a/t", "service": "registry.example", "scope": "x"}),
        ('Bearer REALM="https://a/t",realm="https://b/t"', "bearer", {"realm": "https://b/t"}),
        ('Basic realm="r", Bearer realm="https://a/t"', "bearer", {"realm": "https://a/t"}),
        ('Bearer realm="https://a/t", Basic realm="r"', "bearer", {"realm": "https://a/t"}),
        ('Negotiate, Basic realm="r"', "basic", {"realm": "r"}),
        ('Bearer realm="https://a/\\"q\\"t"', "bearer", {"realm": 'https://a/"q"t'}),
        ("Bearer realm=https://a/t", "bearer", {"realm": "https"}),
        ('Bearer realm="https://a/t', "bearer", {}),
        ("", "", {}),
        (",,, ,", "", {}),
        ('Bearer ,,,=,"', "bearer", {}),
    ],
    ids=["quoted", "unquoted", "repeated", "basic-then-bearer", "bearer-then-basic", "negotiate-then-basic",
         "escaped", "unquoted-url", "unclosed", "empty", "commas", "junk"],
)  # fmt: skip
def test_www_authenticate_is_read_as_docker_reads_it(header: str, scheme: str, params: dict[str, str]) -> None:
    assert challenges.challenge(header) == (scheme, params)


def test_an_unquoted_service_and_two_challenge_headers_get_a_token(
    httpserver: HTTPServer, servers: list[HTTPServer], tmp_path: Path
) -> None:
    """Two WWW-Authenticate headers, Basic first: the Bearer one is answered, as docker does,
    with its unquoted service passed on."""
    host = host_of(httpserver)
    realm = httpserver.url_for("/token")
    realm_saw: list[Request] = []

    def answer(request: Request) -> Response:
        if request.path == "/token":
            realm_saw.append(request)
            return Response(json.dumps({"token": "tok"}), content_type="application/json")
        if request.headers.get("Authorization") != "Bearer tok":
            response = Response("", status=401)
            response.headers.add("WWW-Authenticate", 'Basic realm="r"')
            response.headers.add("WWW-Authenticate", f'Bearer realm="{realm}",service=registry.test')
            return response
        body = image_manifest(digest_of(LABELLED)) if request.path == MANIFEST else image_config({"org.example": "yes"})
        return Response(json.dumps(body), content_type="application/json")

    for path in (MANIFEST, BLOB, "/token"):
        httpserver.expect_request(path).respond_with_handler(answer)
    reading, said = published(f"{host}/team/app", auth_file(tmp_path / "docker", login_for(host)))
    remote = reading.read(f"{host}/team/app:a", "a")
    assert remote is not None and remote.labels == {"org.example": "yes"}, said
    assert realm_saw[0].args.get("service") == "registry.test"
    assert realm_saw[0].headers.get("Authorization") == basic()


# --- 11. a credential helper's answer is bounded -----------------------------------------

FLOOD = "xcompile-flood"


def flooding_helper(folder: Path, size: int = 300 << 20) -> Path:
    """A credential helper on PATH that answers with ``size`` bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    helper = folder / f"docker-credential-{FLOOD}"
    helper.write_text(f"#!/bin/sh\ncat >/dev/null\nexec head -c {size} /dev/zero\n")
    helper.chmod(0o755)
    return folder


def running_helpers() -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with suppress(OSError):
            if FLOOD.encode() in cmdline.read_bytes():
                found.append(cmdline.parent.name)
    return found


def test_a_helper_that_prints_300_mb_is_stopped_at_1_mib_with_little_memory(
    httpserver: HTTPServer, tmp_path: Path, user_env: dict[str, str]
) -> None:
    """`inspect` of a registry that wants a login whose helper floods: stopped at
    1 MiB, said in one line, and the read goes on without a login."""
    host = host_of(httpserver)
    httpserver.expect_request(MANIFEST).respond_with_data(
        "", status=401, headers={"WWW-Authenticate": 'Basic realm="r"'}
    )
    auth_file(Path(user_env["DOCKER_CONFIG"]), {"credHelpers": {host: FLOOD}})
    env = {**user_env, "PATH": f"{flooding_helper(tmp_path / 'bin')}:{user_env['PATH']}"}
    err = tmp_path / "stderr"
    started = time.monotonic()
    with err.open("w") as sink:
        argv = [sys.executable, "-m", "xcompile", "inspect", f"{host}/team/app:a"]
        code, peak = run_measured(argv, timeout=120, stdout=subprocess.DEVNULL, stderr=sink, env=env, cwd=tmp_path)
    took = time.monotonic() - started
    lines = err.read_text().splitlines()
    assert peak < 100 << 20, f"xcompile peaked at {peak >> 20} MiB"
    assert code == 1, lines
    assert [line for line in lines if "warning" in line] == [
        f"xcompile: warning: docker-credential-{FLOOD} printed more than 1 MiB for {host}; going on without a login"
    ]
    assert lines[-1] == (
        f"xcompile: error: cannot read {host}/team/app:a from the registry: registry {host} answered HTTP 401"
        " for team/app:a"
    )
    assert running_helpers() == [] and took < 30


def test_a_flooding_helper_runs_and_warns_once_for_a_run_s_reads(httpserver: HTTPServer, tmp_path: Path) -> None:
    host = host_of(httpserver)
    httpserver.expect_request(MANIFEST).respond_with_data(
        "", status=401, headers={"WWW-Authenticate": 'Basic realm="r"'}
    )
    reading, said = published(f"{host}/team/app", auth_file(tmp_path / "docker", {"credHelpers": {host: FLOOD}}))
    with local.env(PATH=f"{flooding_helper(tmp_path / 'bin', 2 << 20)}:{local.env['PATH']}"):
        for _ in range(3):
            assert reading.read(f"{host}/team/app:a", "a") is None
    assert [line for line in said if "warning" in line or "docker-credential" in line] == [
        f"+ docker-credential-{FLOOD} get",
        f"xcompile: warning: docker-credential-{FLOOD} printed more than 1 MiB for {host}; going on without a login",
    ]
    assert len([line for line in said if line.startswith("cannot read")]) == 3


# --- 12b. loopback by address ------------------------------------------------------------


@pytest.mark.parametrize("spelled", ["LOCALHOST", "[0:0:0:0:0:0:0:1]"])
def test_a_loopback_registry_however_spelled_is_read_in_plain_http(
    tmp_path: Path, servers: list[HTTPServer], spelled: str
) -> None:
    """As the docker daemon reads it (and pushes to it) without any insecure setting."""
    server = serve("::1" if spelled.startswith("[") else "127.0.0.1")
    servers.append(server)
    repo = f"{spelled}:{server.port}/team/app"
    server.expect_request(MANIFEST).respond_with_data(
        LABELLED_MANIFEST, content_type=IMAGE_TYPES[0], headers={"Docker-Content-Digest": digest_of(LABELLED_MANIFEST)}
    )
    server.expect_request(BLOB).respond_with_data(LABELLED, content_type="application/json")
    reading, said = published(repo, tmp_path / "docker" / "config.json")
    remote = reading.read(f"{repo}:a", "a")
    assert remote is not None and remote.labels == {"org.example": "yes"}, said


# --- 12c. identity tokens (OAuth2 refresh tokens) -----------------------------------------

REFRESH = f"refresh-{uuid.uuid4().hex}"
ACR_USER = "00000000-0000-0000-0000-000000000000"


def oauth_registry(server: HTTPServer, realm_server: HTTPServer) -> list[dict[str, str]]:
    """``server`` as a registry whose token server (on ``realm_server``, as ACR's and
    Docker Hub's are OAuth2 ones) takes REFRESH in a POST only; the forms it was sent."""
    realm = realm_server.url_for("/oauth2/token")
    forms: list[dict[str, str]] = []

    def token(request: Request) -> Response:
        if request.method != "POST":
            return Response("", status=401)  # a GET with Basic: no such user
        forms.append(dict(request.form))
        if request.form.get("refresh_token") != REFRESH or request.form.get("grant_type") != "refresh_token":
            return Response('{"error": "invalid_grant"}', status=401)
        return Response(json.dumps({"access_token": "acc", "refresh_token": "other"}), content_type="application/json")

    def guarded(request: Request) -> Response:
        if request.headers.get("Authorization") != "Bearer acc":
            challenge = f'Bearer realm="{realm}",service="registry.test"'
            return Response("", status=401, headers={"WWW-Authenticate": challenge})
        body = {MANIFEST: image_manifest(digest_of(LABELLED)), BLOB: image_config({"org.example": "yes"}), "/v2/": {}}[
            request.path
        ]
        return Response(json.dumps(body), content_type="application/json")

    for path in (MANIFEST, BLOB, "/v2/"):
        server.expect_request(path).respond_with_handler(guarded)
    realm_server.expect_request("/oauth2/token").respond_with_handler(token)
    return forms


def identity(host: str, token: str = REFRESH) -> dict[str, object]:
    """What `az acr login` leaves in auths."""
    auth = base64.b64encode(f"{ACR_USER}:".encode()).decode()
    return {"auths": {host: {"auth": auth, "identitytoken": token}}}


def test_an_identity_token_in_auths_gets_a_token_as_docker_asks_for_it(
    httpserver: HTTPServer, servers: list[HTTPServer], tmp_path: Path
) -> None:
    """Where every read failed (the realm asked by GET with a Basic login that has no
    password), and every run rebuilt: the refresh token is POSTed, as docker does."""
    host = host_of(httpserver)
    realm_server = serve()
    servers.append(realm_server)
    forms = oauth_registry(httpserver, realm_server)
    reading, said = published(f"{host}/team/app", auth_file(tmp_path / "docker", identity(host)))
    remote = reading.read(f"{host}/team/app:a", "a")
    assert remote is not None and remote.labels == {"org.example": "yes"}, said
    scope = "repository:team/app:pull"
    assert forms[0] == {
        "grant_type": "refresh_token",
        "service": "registry.test",
        "scope": scope,
        "client_id": "xcompile",
        "refresh_token": REFRESH,
    }
    assert not any(REFRESH in line for line in said)


def test_the_check_asks_the_token_server_whether_it_takes_an_identity_token(
    httpserver: HTTPServer, servers: list[HTTPServer], tmp_path: Path
) -> None:
    host = host_of(httpserver)
    realm_server = serve()
    servers.append(realm_server)
    oauth_registry(httpserver, realm_server)
    (where,) = check.for_repo(f"{host}/team/app", None, Runner(lambda line, label: None))
    right = auth_file(tmp_path / "right", identity(host))
    assert check.check([where], (right,))[1].status == "pass"
    wrong = auth_file(tmp_path / "wrong", identity(host, "expired"))
    login = check.check([where], (wrong,))[1]
    assert (login.status, login.detail) == (
        "fail",
        f"registry {host} refused the login of '{ACR_USER}' in auths of {wrong}",
    )


def test_a_helper_s_token_user_is_an_identity_token(
    httpserver: HTTPServer, servers: list[HTTPServer], tmp_path: Path
) -> None:
    """docker-credential-helpers' convention: the user ``<token>`` says the secret is an identity token."""
    host = host_of(httpserver)
    realm_server = serve()
    servers.append(realm_server)
    forms = oauth_registry(httpserver, realm_server)
    helper = tmp_path / "bin" / "docker-credential-xcompile-oauth"
    helper.parent.mkdir()
    helper.write_text(f'#!/bin/sh\ncat >/dev/null\necho \'{{"Username": "<token>", "Secret": "{REFRESH}"}}\'\n')
    helper.chmod(0o755)
    reading, said = published(f"{host}/team/app", auth_file(tmp_path / "docker", {"credsStore": "xcompile-oauth"}))
    with local.env(PATH=f"{helper.parent}:{local.env['PATH']}"):
        remote = reading.read(f"{host}/team/app:a", "a")
    assert remote is not None and remote.labels == {"org.example": "yes"}, said
    assert [form["refresh_token"] for form in forms] == [REFRESH]


# --- 12d. DOCKER_AUTH_CONFIG ----------------------------------------------------------------


def basic_registry(server: HTTPServer, password: str = PASSWORD) -> None:
    """``server`` as a registry that takes USER's Basic login with ``password`` only."""

    def answer(request: Request) -> Response:
        wanted = "Basic " + base64.b64encode(f"{USER}:{password}".encode()).decode()
        if request.headers.get("Authorization") != wanted:
            return Response("", status=401, headers={"WWW-Authenticate": 'Basic realm="r"'})
        body = {MANIFEST: image_manifest(digest_of(LABELLED)), BLOB: image_config({"org.example": "yes"}), "/v2/": {}}[
            request.path
        ]
        return Response(json.dumps(body), content_type="application/json")

    for path in (MANIFEST, BLOB, "/v2/"):
        server.expect_request(path).respond_with_handler(answer)


def test_an_auth_file_that_cannot_be_read_is_one_warning_unless_the_user_named_it(
    httpserver: HTTPServer, tmp_path: Path, user_env: dict[str, str]
) -> None:
    """Where the engine looks by default (podman's auth.json, ~/.docker/config.json), a file docker
    could not read either is one warning and no login: the next file's login is used. The same
    broken file named by DOCKER_CONFIG is a one-line error, exit 2."""
    host = host_of(httpserver)
    basic_registry(httpserver)
    runtime = tmp_path / "runtime"
    (runtime / "containers").mkdir(parents=True)
    (runtime / "containers" / "auth.json").write_text('{"auths": ')
    auth_file(Path(user_env["DOCKER_CONFIG"]), login_for(host))
    env = {**user_env, "XDG_RUNTIME_DIR": str(runtime)}
    podman = run_in_process("inspect", f"{host}/team/app:a", "--engine", "podman", cwd=tmp_path, env=env)
    assert podman.returncode == 0, podman.stderr
    assert podman.stderr.splitlines() == [
        f"xcompile: warning: {runtime}/containers/auth.json is not valid JSON (line 1, column 11: Expecting value);"
        " read as holding no login, as docker reads it"
    ]
    home = tmp_path / "home"
    auth_file(home / ".docker", {}).write_text("{oops")
    default = {key: value for key, value in user_env.items() if key != "DOCKER_CONFIG"} | {"HOME": str(home)}
    docker = run_in_process("inspect", f"{host}/team/app:a", cwd=tmp_path, env=default)
    assert docker.returncode == 1, docker.stderr
    assert docker.stderr.splitlines() == [
        f"xcompile: warning: {home}/.docker/config.json is not valid JSON (line 1, column 2: Expecting property"
        " name enclosed in double quotes); read as holding no login, as docker reads it",
        f"xcompile: error: cannot read {host}/team/app:a from the registry: registry {host} answered HTTP 401 for"
        " team/app:a",
    ]
    named = run_in_process(
        "inspect", f"{host}/team/app:a", cwd=tmp_path, env={**default, "DOCKER_CONFIG": str(home / ".docker")}
    )
    assert named.returncode == 2, named.stderr
    assert named.stderr.splitlines() == [
        f"xcompile: error: {home}/.docker/config.json is not valid JSON (line 1, column 2: Expecting property name"
        " enclosed in double quotes); left unchanged — fix or remove it, then run again"
    ]
    assert (home / ".docker" / "config.json").read_text() == "{oops"


def auth_config(key: str, user: str = USER, password: str = PASSWORD) -> str:
    return json.dumps({"auths": {key: {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}}})


def test_docker_auth_config_s_login_comes_before_the_config_file_s_and_never_shows(
    httpserver: HTTPServer, tmp_path: Path, user_env: dict[str, str]
) -> None:
    """As the docker CLI (28.3+) reads it: its auths before config.json's (which holds a stale login)."""
    host = host_of(httpserver)
    basic_registry(httpserver)
    stale = {"auths": {host: {"auth": base64.b64encode(f"{USER}:stale".encode()).decode()}}}
    auth_file(Path(user_env["DOCKER_CONFIG"]), stale)
    env = {**user_env, "DOCKER_AUTH_CONFIG": auth_config(host)}
    result = run_in_process("inspect", f"{host}/team/app:a", "--format", "json", "-v", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0]["labels"] == {"org.example": "yes"}
    encoded = json.loads(env["DOCKER_AUTH_CONFIG"])["auths"][host]["auth"]
    for shown in (result.stdout, result.stderr):
        assert PASSWORD not in shown and encoded not in shown and "DOCKER_AUTH_CONFIG" not in shown


@pytest.mark.parametrize(
    "variable",
    ['{"auths": {"HOST": {"auth": "bm90IGEgbG9naW4="}}}', '{"auths": {"HOST": {}}}', "not json SECRET", '["SECRET"]'],
    ids=["no-colon", "no-auth", "not-json", "a-list"],
)
def test_a_docker_auth_config_docker_would_not_read_is_ignored_with_one_warning(
    httpserver: HTTPServer, tmp_path: Path, user_env: dict[str, str], variable: str
) -> None:
    """Docker says so and reads config.json alone; so does xcompile, never showing what the variable holds."""
    host = host_of(httpserver)
    basic_registry(httpserver)
    auth_file(Path(user_env["DOCKER_CONFIG"]), login_for(host))
    env = {**user_env, "DOCKER_AUTH_CONFIG": variable.replace("HOST", host)}
    result = run_in_process("inspect", f"{host}/team/app:a", "--format", "json", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        'xcompile: warning: DOCKER_AUTH_CONFIG is not what docker reads (JSON whose "auths" each hold a base64'
        ' "user:password" "auth"), so it is ignored, as docker ignores it'
    ]
    assert "SECRET" not in result.stderr and "bm90IGEgbG9naW4" not in result.stderr


def test_docker_auth_config_counts_for_the_check_and_for_docker_only(httpserver: HTTPServer, tmp_path: Path) -> None:
    host = host_of(httpserver)
    basic_registry(httpserver)
    empty = auth_file(tmp_path / "docker", {})

    def config(variable: str, engine: str = "docker") -> Config:
        env = {"DOCKER_CONFIG": str(empty.parent), "DOCKER_AUTH_CONFIG": variable}
        switches = {"repo": f"{host}/team/app", "engine": engine}
        settings, warnings = load_config(switches, env=env, cwd=tmp_path, home=tmp_path)
        assert warnings == []
        return settings

    def sources(settings: Config) -> tuple[credentials.AuthFile, ...]:
        quiet = Runner(lambda line, label: None)
        return choice.choose(
            settings.engine, quiet, settings.auth_places, tmp_path, lambda line, label: print(line), runs=False
        ).auth_files

    def login(settings: Config) -> tuple[str, str]:
        (where,) = check.for_repo(settings.repo, settings.insecure, Runner(lambda line, label: None))
        found = check.check([where], sources(settings))[1]
        return found.status, found.detail

    assert login(config(auth_config(host))) == ("pass", f"credentials for {host} in auths of DOCKER_AUTH_CONFIG")
    refused = f"registry {host} refused the login of '{USER}' in auths of DOCKER_AUTH_CONFIG"
    assert login(config(auth_config(host, password="wrong"))) == ("fail", refused)
    # docker compares its keys exactly: a key with a scheme is not the host's
    assert login(config(auth_config(f"https://{host}")))[0] == "fail"
    podman = config(auth_config(host), "podman")
    assert [str(one) for one in sources(podman)] == [str(podman.podman_auth_file), str(empty)]
    shown = repr(podman) + repr(sources(config(auth_config(host))))
    assert PASSWORD not in shown and json.loads(auth_config(host))["auths"][host]["auth"] not in shown


# --- the property: over random answers with redirects, only the registry gets its login ---------
#
# unit/registry/test_hostile.py's property tests throw random documents, challenges and statuses at a
# read; this one adds redirects (to the same host, to another loopback host or port, to the
# registry under another name, chains and loops) and odd WWW-Authenticate headers (unquoted and
# repeated parameters, several challenges, several headers), and follows every credential.


class Answering:
    """Every server's one handler: each request is answered at random (from the case's
    own generator), and recorded with the server it reached and the name it was asked by."""

    def __init__(self, registry: HTTPServer, others: dict[str, HTTPServer]) -> None:
        self.registry_host = host_of(registry)
        base = {"registry": f"http://{self.registry_host}", "alias": f"http://localhost:{registry.port}"}
        self.bases = base | {name: f"http://{server.host}:{server.port}" for name, server in others.items()}
        self.rng = random.Random(0)
        self.seen: list[tuple[str, Request, int]] = []
        self.tokens: set[str] = set()
        for name, server in [("registry", registry), *others.items()]:
            server.expect_request(re.compile("/.*")).respond_with_handler(
                lambda request, name=name: self(name, request)
            )

    def __call__(self, server: str, request: Request) -> Response:
        answer = self._answer(server, request)
        self.seen.append((server, request, answer.status_code))
        return answer

    def _answer(self, server: str, request: Request) -> Response:
        rng = self.rng
        if request.path.endswith("/token"):
            return self._token(rng)
        if request.headers.get("Authorization", "").removeprefix("Bearer ") in self.tokens and rng.random() < 0.6:
            return self._document(rng, request.path)
        weights = [1, 3, 7, 1] if server == "registry" else [1, 6, 3, 1]
        kind = rng.choices(["document", "challenge", "redirect", "status"], weights)[0]
        if kind == "redirect":
            return Response(
                "", status=rng.choice([301, 302, 303, 307, 308]), headers={"Location": self._somewhere(rng)}
            )
        if kind == "challenge":
            response = Response("", status=401)
            for _ in range(rng.choice([1, 1, 1, 2, 3])):
                response.headers.add("WWW-Authenticate", self._challenge(rng, server))
            return response
        if kind == "status":
            return Response("", status=rng.choice([400, 403, 404, 500, 503]))
        return self._document(rng, request.path)

    def _document(self, rng: random.Random, path: str) -> Response:
        shaped = _manifest_like if "/manifests/" in path else _config_like
        body = (
            json.dumps(image_manifest(digest_of(LABELLED)))
            if rng.random() < 0.5 and "/manifests/" in path
            else _body(rng, shaped)
        )
        return Response(body, content_type="application/json")

    def _token(self, rng: random.Random) -> Response:
        kind = rng.choices(["token", "refused", "redirect"], [5, 2, 2])[0]
        if kind == "redirect":
            return Response("", status=rng.choice([302, 307]), headers={"Location": self._somewhere(rng, "/token")})
        if kind == "refused":
            return Response('{"error": "invalid_grant"}', status=rng.choice([400, 401, 403]))
        token = f"tok-{uuid.uuid4().hex}"
        self.tokens.add(token)
        return Response(json.dumps({rng.choice(["token", "access_token"]): token}), content_type="application/json")

    def _somewhere(self, rng: random.Random, path: str = "") -> str:
        """A redirect's target: the registry's own paths, or a hop, on any server or the registry by another name."""
        path = path or rng.choice([MANIFEST, BLOB, "/v2/", f"/hop/{rng.randrange(3)}", "/token"])
        where = rng.choice([*self.bases, "relative"])
        return path if where == "relative" else self.bases[where] + path

    def _challenge(self, rng: random.Random, server: str) -> str:
        """A WWW-Authenticate value. A host the registry redirects to may also name a realm on
        the registry's host name (another port), which the registry itself never names: the
        login reaching it would be a redirect target's challenge answered."""
        names = ["registry", "alias", "elsewhere", *(["other-port"] * 2 if server != "registry" else [])]
        realm, other = (self.bases[rng.choice(names)] + "/token" for _ in range(2))
        headers = [
            f'Bearer realm="{realm}",service="s",scope="repository:team/app:pull"',
            f'Bearer realm="{realm}", service=registry.test, scope=repository:team/app:pull',
            f'Bearer realm="{other}",realm="{realm}",service=s',
            f'Bearer REALM="{realm}" , Service = "s"',
            f'Basic realm="r", Bearer realm="{realm}"',
            f'Bearer realm="{realm}", Basic realm="r"',
            f"Bearer realm={realm}",
            f'bEaReR realm="{realm}",,,scope=',
            'Basic realm="r"',
            "Basic",
            "Negotiate abc==",
            "",
            'Bearer realm=""',
        ]
        return rng.choice(headers)

    def follow(self, secrets: list[str], counts: collections.Counter[str]) -> list[str]:
        """Each request that carried a credential to any host but the registry (by its own
        name); ``counts`` gets what the case did, so that the property is not held vacuously."""
        found = []
        for server, request, status in self.seen:
            said = " ".join([request.url, request.get_data(as_text=True), *request.headers.values()])
            auth = request.headers.get("Authorization", "")
            carried = any(secret in said for secret in secrets) or auth.removeprefix("Bearer ") in self.tokens
            registry = server == "registry" and request.host == self.registry_host
            if carried and not registry:
                found.append(f"{server} ({request.host}) got {auth or 'a secret'} at {request.path}")
            counts["credentials to the registry"] += carried and registry
            counts["401s from elsewhere"] += status == 401 and not registry
            counts["requests elsewhere"] += not registry
        return found


@pytest.fixture
def elsewhere(servers: list[HTTPServer]) -> dict[str, HTTPServer]:
    """Another loopback host, and the registry's host on another port."""
    found = {"elsewhere": serve("127.0.0.2"), "other-port": serve()}
    servers += found.values()
    return found


def test_over_random_answers_with_redirects_only_the_registry_ever_gets_its_login(
    httpserver: HTTPServer, elsewhere: dict[str, HTTPServer], tmp_path: Path
) -> None:
    """300 cases, each a read and a registry check against answers drawn at random:
    no internal error, and no credential (the Basic login, the identity token, a
    token the realms gave) ever reaches a host other than the registry."""
    answering = Answering(httpserver, elsewhere)
    host = answering.registry_host
    where = Where(host, host, f"http://{host}", "`docker login`")
    logins = [login_for(host), identity(host), {"auths": {host: {"username": USER, "password": PASSWORD}}}]
    auth = tmp_path / "config.json"
    unexpected: list[str] = []
    counts: collections.Counter[str] = collections.Counter()
    for number in range(300):
        answering.rng = random.Random(9000 + number)
        answering.seen.clear()
        auth.write_text(json.dumps(logins[number % len(logins)]))
        try:
            Reader(where, (auth,), Runner(lambda line, label: None)).read("team/app", "a")
            check.check([where], (auth,))
        except RegistryUnreadable:
            pass
        except Exception:  # what the test is looking for
            unexpected.append(f"case {number}:\n{traceback.format_exc()}")
        leaks = answering.follow([PASSWORD, REFRESH, basic().removeprefix("Basic ")], counts)
        unexpected += [f"case {number}: {leak}" for leak in leaks]
    assert unexpected == []
    assert min(counts.values()) > 40 and len(answering.tokens) > 20, (counts, len(answering.tokens))
