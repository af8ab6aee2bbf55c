"""Helpers and fixtures for both tiers (tests/unit, tests/integration), imported as ``from conftest import ...``.

The real parts' helpers live here (the registry, docker, the session's label) so that tests of either
tier can name them; the fixtures that start or change those parts are in tests/integration/conftest.py.
Both tiers import these modules from tests/ (pytest puts this folder on sys.path: tests/ has no
``__init__.py``, each tier's folders have one, so same-named files in two folders stay apart).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from plumbum import local
from privateca import ServerFiles
from pytest_httpserver import HTTPServer

REPO = Path(__file__).resolve().parents[1]
MAKE_BASE = REPO / "ci" / "make-base-image.sh"
PROVISION_HINT = "run `make test` (it runs ci/provision.sh) or `bash ci/provision.sh` first"


def run_xcompile(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run `python -m xcompile` as a user would, capturing what they would see."""
    return subprocess.run(
        [sys.executable, "-m", "xcompile", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_in_process(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`xcompile ARGS` as `run_xcompile` runs it, in this process: the same argv to `cli.main` (what
    `python -m xcompile` calls), in the folder and environment given (plumbum's copy of it too, which
    finds programs on its PATH, and the temp folder its TMPDIR names), stdout and stderr captured apart.
    The unit tier's way to ask what the command line says and how it exits, without a child's start
    (about half a second each); whole runs, signals and installs go through run_xcompile."""
    from xcompile.cli import main

    saved_env, saved_cwd, saved_tempdir = dict(os.environ), os.getcwd(), tempfile.tempdir
    out, err = io.StringIO(), io.StringIO()
    try:
        os.environ.clear()
        os.environ.update(saved_env if env is None else env)
        tempfile.tempdir = None  # read TMPDIR again
        if cwd is not None:
            os.chdir(cwd)
        with local.env(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            local.env.clear()
            local.env.update(os.environ)
            code = main(list(args))
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        tempfile.tempdir = saved_tempdir
    return subprocess.CompletedProcess(["xcompile", *args], code, out.getvalue(), err.getvalue())


SUMMARY: list[str] = []
"""Lines a test asks to show at the end of the session, where CI's log keeps them."""


def record_summary(line: str) -> None:
    SUMMARY.append(line)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in SUMMARY:
        terminalreporter.write_line(line)


def docker(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=timeout)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def user_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a user whose docker config and temp folder are the test's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("XCOMPILE_")}
    (tmp_path / "tmp").mkdir()
    env["DOCKER_CONFIG"] = str(tmp_path / "docker-config")
    env["TMPDIR"] = str(tmp_path / "tmp")
    env["PYTHONPATH"] = str(REPO)
    return env


class LoopbackServer(HTTPServer):
    """pytest-httpserver's server, whose stop takes a hundredth of a second, not half of one (its
    serve_forever looks for the stop every 0.5 s): for the servers a test starts and stops itself."""

    def thread_target(self) -> None:
        assert self.server is not None
        self.server.serve_forever(poll_interval=0.01)


@pytest.fixture(scope="session")
def make_httpserver() -> Iterator[HTTPServer]:
    """pytest-httpserver's server (behind its ``httpserver`` fixture) on 127.0.0.1,
    threaded, so that a stalled handler does not hold up the requests behind it."""
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


class Registry:
    """A real registry (Debian's docker-registry) on 127.0.0.1, read through its HTTP API."""

    MANIFEST_TYPES = ", ".join(
        [
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.index.v1+json",
        ]
    )

    def __init__(self, host: str, auth: tuple[str, str] | None = None, *, ca: Path | None = None) -> None:
        self.host = host
        self.url = f"{'https' if ca else 'http'}://{host}/v2"
        self.auth = auth
        self.verify: bool | str = str(ca) if ca else True
        """For a TLS registry: the CA the test trusts it by."""

    def catalog(self) -> list[str]:
        response = requests.get(f"{self.url}/_catalog", auth=self.auth, timeout=10, verify=self.verify)
        return list(response.json()["repositories"])

    def tags(self, name: str) -> list[str]:
        response = requests.get(f"{self.url}/{name}/tags/list", auth=self.auth, timeout=10, verify=self.verify)
        return list(response.json().get("tags") or []) if response.ok else []

    def manifest(self, name: str, tag: str) -> tuple[str, dict[str, object]]:
        response = requests.get(
            f"{self.url}/{name}/manifests/{tag}",
            headers={"Accept": self.MANIFEST_TYPES},
            auth=self.auth,
            timeout=10,
            verify=self.verify,
        )
        response.raise_for_status()
        return response.headers["Docker-Content-Digest"], response.json()

    def blob(self, name: str, digest: str) -> bytes:
        response = requests.get(f"{self.url}/{name}/blobs/{digest}", auth=self.auth, timeout=60, verify=self.verify)
        response.raise_for_status()
        return response.content


class RunningRegistry:
    """A registry process a test starts, stops, kills and starts again on the same port and storage."""

    def __init__(self, folder: Path, *, htpasswd: Path | None = None, tls: ServerFiles | None = None) -> None:
        """``tls``: serve https with this certificate (its CA is what clients must trust)."""
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.registry = Registry(f"127.0.0.1:{self.port}", ca=tls.ca if tls else None)
        auth = f"auth: {{htpasswd: {{realm: xcompile-test, path: {htpasswd}}}}}\n" if htpasswd else ""
        serve_tls = f", tls: {{certificate: {tls.certificate}, key: {tls.key}}}" if tls else ""
        self.config = folder / "config.yml"
        self.config.write_text(
            "version: 0.1\n"
            "log: {level: warn}\n"
            f"storage: {{filesystem: {{rootdirectory: {folder / 'data'}}}}}\n"
            f"http: {{addr: 127.0.0.1:{self.port}{serve_tls}}}\n" + auth
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Registry:
        log = (self.folder / "log").open("a")
        try:
            self.proc = subprocess.Popen(
                ["docker-registry", "serve", str(self.config)], stdout=subprocess.DEVNULL, stderr=log
            )
        except FileNotFoundError:
            pytest.fail(f"docker-registry not installed; {PROVISION_HINT}")
        deadline = time.monotonic() + 20
        while True:
            try:
                # 401: up, and wanting a login.
                answer = requests.get(f"{self.registry.url}/", timeout=1, verify=self.registry.verify)
                if answer.status_code in (200, 401):
                    return self.registry
            except requests.ConnectionError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                pytest.fail(f"registry did not start: {(self.folder / 'log').read_text()[-500:]}")
            time.sleep(0.1)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=10)
        self.proc = None


BASE_TAGS = ("3.7", "3.7-slim", "a", "b", "c")


SESSION = uuid.uuid4().hex[:12]
SESSION_LABEL = f"xcompile-test-session={SESSION}"
"""On every base image this session makes, so on every image built from them and every container of those."""
BASE_REFS: set[str] = set()
"""The bases, which the session keeps until its end."""


def make_base(debian_arch: str, platform: str, name: str) -> Iterator[str]:
    """A local foreign image, made from Debian's busybox-static, tagged for the tags tests use."""
    refs = [f"{name}:{tag}" for tag in BASE_TAGS]
    made = subprocess.run(
        ["bash", str(MAKE_BASE), debian_arch, platform, *refs],
        capture_output=True,
        text=True,
        env={**os.environ, "XCOMPILE_TEST_LABEL": SESSION_LABEL},
    )
    if made.returncode != 0:
        pytest.fail(f"could not make the {debian_arch} base image: {made.stderr.strip()}; {PROVISION_HINT}")
    BASE_REFS.update(refs)
    yield name
    docker("rmi", *refs, check=False)
    BASE_REFS.difference_update(refs)


def session_containers() -> list[str]:
    found = docker("ps", "-a", "--filter", f"label={SESSION_LABEL}", "--format", "{{.ID}} {{.Image}} {{.Status}}")
    return found.stdout.splitlines()


def session_container_ids(name: str | None = None) -> set[str]:
    """This session's containers (made from its bases, so carrying its label), of those
    named ``name``* where given. A set: docker lists in no stable order, and the host's
    other containers are no test's business."""
    by_name = ("--filter", f"name={name}") if name else ()
    found = docker("ps", "-a", "--quiet", "--no-trunc", "--filter", f"label={SESSION_LABEL}", *by_name)
    return set(found.stdout.split())


def session_image_ids(*filters: str) -> set[str]:
    """This session's images that match every ``filters`` (`dangling=true`, `reference=...`):
    built from its bases, so carrying its label. A set: docker lists images made in the
    same second in no stable order, and a host that has done other work holds many."""
    wanted = [f"label={SESSION_LABEL}", *filters]
    found = docker("images", "--quiet", "--no-trunc", *(arg for one in wanted for arg in ("--filter", one)))
    return set(found.stdout.split())


def session_images() -> list[tuple[str, str]]:
    """(ID, repository:tag) of every image of this session; the tag is <none> for dangling ones."""
    found = docker("images", "--filter", f"label={SESSION_LABEL}", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}")
    return [(line.split()[0], line.split()[1]) for line in found.stdout.splitlines()]


CACHE = Path(os.environ.get("XCOMPILE_TEST_CACHE", "/var/cache/xcompile-test"))


def build_cache_ids() -> set[str]:
    """The daemon's BuildKit cache records (`docker system df -v`)."""
    out = docker("system", "df", "-v", "--format", "{{json .BuildCache}}").stdout
    return {str(entry["ID"]) for entry in json.loads(out or "null") or ()}


def with_buildx(env: dict[str, str], plugin: Path) -> dict[str, str]:
    """``env`` with buildx in its own DOCKER_CONFIG's cli-plugins."""
    plugins = Path(env["DOCKER_CONFIG"]) / "cli-plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    if not (plugins / "docker-buildx").exists():
        (plugins / "docker-buildx").symlink_to(plugin)
    return env


def remove_local_images(prefix: str) -> None:
    """Every local image whose name starts with ``prefix`` (what a test's builds and pulls left)."""
    listed = docker("images", "--format", "{{.Repository}}:{{.Tag}}", check=False).stdout.split()
    mine = [ref for ref in listed if ref.startswith(prefix)]
    if mine:
        docker("rmi", *mine, check=False)
