"""`python -m xcompile` against a stand-in registry that answers xcompile's own reads with hostile
bodies and passes docker's push on to a real registry: read as cannot read and built, never a
presigned URL shown, a 300 MB manifest refused at 4 MiB, a missing credential helper named before
any build. The readers alone are in tests/unit/registry/test_hostile.py."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import pytest
from conftest import Registry, RunningRegistry, docker, run_xcompile
from hostile_registry import (
    A_LIST,
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

# --- end to end: `python -m xcompile` against a hostile stand-in ----------------------


class Router:
    """A registry stand-in on 127.0.0.1: a connection whose first request is
    xcompile's own (python-requests) goes to ``hostile``; every other (the
    docker daemon's push, its TLS probe) goes byte for byte to ``real``."""

    def __init__(self, real: tuple[str, int], hostile: tuple[str, int]) -> None:
        self.real, self.hostile = real, hostile
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.routed: list[str] = []
        self._sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def close(self) -> None:
        with suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        for sock in self._sockets:
            with suppress(OSError):
                sock.close()
        self._thread.join(timeout=5)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self._sockets.append(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        head = b""
        client.settimeout(30)
        with suppress(OSError):
            while b"\r\n\r\n" not in head and len(head) < 65536:
                chunk = client.recv(65536)
                head += chunk
                if not chunk or not head[:1].isalpha():
                    break  # closed, or not HTTP (the daemon's TLS hello comes first)
        client.settimeout(None)
        agent = re.search(rb"(?im)^user-agent:\s*(\S+)", head)
        ours = bool(agent and agent.group(1).startswith(b"python-requests"))
        self.routed.append(("xcompile " if ours else "other ") + head.split(b"\r\n", 1)[0][:100].decode("latin-1"))
        try:
            upstream = socket.create_connection(self.hostile if ours else self.real)
        except OSError:
            client.close()
            return
        self._sockets.append(upstream)
        with suppress(OSError):
            upstream.sendall(head)
        back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
        back.start()
        _pump(client, upstream)
        back.join()
        client.close()
        upstream.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with suppress(OSError):
        while data := source.recv(1 << 16):
            sink.sendall(data)
    with suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


@pytest.fixture
def stand_in(registry: Registry, httpserver: HTTPServer) -> Iterator[Router]:
    host, port = registry.host.rsplit(":", 1)
    router = Router((host, int(port)), ("127.0.0.1", httpserver.port))
    httpserver.expect_request("/v2/").respond_with_json({})  # the registry check's GET
    yield router
    router.close()


def cannot_read_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "cannot read " in line]


def hostile_run(
    stand_in: Router, registry: Registry, armhf_base: str, tmp_path: Path, env: dict[str, str], *extra: str
) -> tuple[subprocess.CompletedProcess[str], str, int]:
    """`python -m xcompile` building one image and pushing it through the
    stand-in: its result, the repository it pushed, and its peak RSS."""
    name = f"hostile-{uuid.uuid4().hex[:8]}/app"
    repo = f"127.0.0.1:{stand_in.port}/{name}"
    argv = [sys.executable, "-m", "xcompile", "--base", armhf_base, "--repo", repo, "--tag", "a", "--no-verify", *extra]
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    try:
        with out.open("w") as stdout, err.open("w") as stderr:
            code, peak = run_measured(argv, timeout=300, cwd=tmp_path, env=env, stdout=stdout, stderr=stderr)
    finally:
        docker("rmi", f"{repo}:a", check=False)
    result = subprocess.CompletedProcess(argv, code, out.read_text(), err.read_text())
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    assert code == 0, result.stderr
    assert registry.tags(name) == ["a"], "the image was not pushed through the stand-in"
    assert result.stdout.splitlines()[1].split()[2] == "pushed", result.stdout
    return result, f"127.0.0.1:{stand_in.port}/{name}", peak


@pytest.mark.parametrize(
    ("manifest", "config", "why"),
    [
        (b"[1,2,3]", None, "the manifest of NAME:a is not a JSON object"),
        (
            json.dumps({**A_LIST, "manifests": ["a"]}).encode(),
            None,
            "the manifest of NAME:a: a manifest list entry without a digest",
        ),
        (
            json.dumps(image_manifest(digest_of(json.dumps(image_config(["x"])).encode()))).encode(),
            json.dumps(image_config(["x"])).encode(),
            "the config of NAME:a holds labels that are not text by name",
        ),
    ],
    ids=["list", "manifests-of-text", "labels-a-list"],
)
def test_a_run_reads_hostile_answers_as_cannot_read_and_builds(
    stand_in: Router,
    registry: Registry,
    httpserver: HTTPServer,
    armhf_base: str,
    tmp_path: Path,
    user_env: dict[str, str],
    manifest: bytes,
    config: bytes | None,
    why: str,
) -> None:
    """The registry check passes; then the read before the build gets a hostile
    manifest or config: one "cannot read …; building" line, and the image is
    built and pushed (exit 0), with no internal error."""
    httpserver.expect_request(re.compile(r"/v2/.*/manifests/a")).respond_with_data(manifest)
    if config is not None:
        httpserver.expect_request(re.compile(r"/v2/.*/blobs/.*")).respond_with_data(config)
    result, repo, _ = hostile_run(stand_in, registry, armhf_base, tmp_path, user_env)
    name = repo.split("/", 1)[1]
    assert cannot_read_lines(result.stderr) == [
        f"[a] cannot read {repo}:a from the registry ({why.replace('NAME', name)}); building"
    ]
    assert any(line.startswith("xcompile ") and "/manifests/a " in line for line in stand_in.routed), stand_in.routed


def test_a_run_with_v_never_shows_a_presigned_url(
    stand_in: Router,
    registry: Registry,
    httpserver: HTTPServer,
    armhf_base: str,
    tmp_path: Path,
    user_env: dict[str, str],
) -> None:
    """The registry redirects the config blob to storage with a signed query
    (as S3 does); the storage refuses. Nothing of the signature shows, with -v too."""
    httpserver.expect_request(re.compile(r"/v2/.*/manifests/a")).respond_with_json(image_manifest())
    httpserver.expect_request(re.compile(r"/v2/.*/blobs/.*")).respond_with_data(
        "", status=307, headers={"Location": presigned(httpserver)}
    )
    httpserver.expect_request(re.compile("/bucket/.*")).respond_with_data(f"denied {SIGNATURE}", status=403)
    result, repo, _ = hostile_run(stand_in, registry, armhf_base, tmp_path, user_env, "-v")
    name = repo.split("/", 1)[1]
    assert cannot_read_lines(result.stderr) == [
        f"[a] cannot read {repo}:a from the registry"
        f" (registry {repo.split('/')[0]} answered HTTP 403 for the config of {name}:a); building"
    ]
    for seen in (result.stdout, result.stderr):
        assert SIGNATURE not in seen and "X-Amz-Signature" not in seen and "AKIAEXAMPLE" not in seen
    assert any("/bucket/" in request.path for request, _ in httpserver.log), "the redirect was not followed"


def test_a_run_refuses_a_300_mb_manifest_at_4_mib_with_little_memory(
    stand_in: Router,
    registry: Registry,
    httpserver: HTTPServer,
    armhf_base: str,
    tmp_path: Path,
    user_env: dict[str, str],
) -> None:
    serve_huge(httpserver, re.compile(r"/v2/.*/manifests/a"))
    result, repo, peak = hostile_run(stand_in, registry, armhf_base, tmp_path, user_env)
    assert peak < 200 << 20, f"xcompile peaked at {peak >> 20} MiB"
    path = repo.split("/", 1)[1]
    assert cannot_read_lines(result.stderr) == [
        f"[a] cannot read {repo}:a from the registry"
        f" (http://{repo.split('/')[0]}/v2/{path}/manifests/a: an answer larger than 4 MiB); building"
    ]


def test_a_run_stops_before_any_build_when_the_named_credential_helper_is_missing(
    armhf_base: str, tmp_path: Path, user_env: dict[str, str]
) -> None:
    """A registry that wants a login (htpasswd), and a config.json whose
    credHelpers names a helper that is not installed: `docker push` would have
    no credentials, so the run stops at the check, before any build."""
    made = subprocess.run(["htpasswd", "-Bni", USER], input=PASSWORD, capture_output=True, text=True)
    if made.returncode != 0:
        pytest.fail(f"htpasswd failed ({made.stderr.strip()}); run ci/provision.sh (apache2-utils)")
    (tmp_path / "htpasswd").write_text(made.stdout)
    running = RunningRegistry(tmp_path / "locked-registry", htpasswd=tmp_path / "htpasswd")
    registry = running.start()
    try:
        config = auth_file(Path(user_env["DOCKER_CONFIG"]), {"credHelpers": {registry.host: "xcompile-nosuchhelper"}})
        result = run_xcompile(
            "--base", armhf_base, "--repo", f"{registry.host}/team/app", "--tag", "a", cwd=tmp_path, env=user_env
        )
    finally:
        running.stop()
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr and "docker build" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"xcompile: error: {config} names docker-credential-xcompile-nosuchhelper for {registry.host}"
        " (in credHelpers), and no such program is on PATH"
        f" — install docker-credential-xcompile-nosuchhelper, or `docker login {registry.host}`"
    )
