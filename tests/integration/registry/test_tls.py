"""Registries behind a private CA: trusted as docker trusts them, never refused before any build.

A real TLS registry (Debian's docker-registry with ``http.tls``) on 127.0.0.1,
its certificate signed by a CA made for the test (tests/privateca.py). The
repository config says ``insecure = false``, so xcompile speaks https to it.
The CA is trusted once through REQUESTS_CA_BUNDLE and once where docker reads
it, /etc/docker/certs.d/HOST:PORT/ca.crt; not at all, the check says so
before any build, and `xcompile doctor` says the same.

What docker does with it: the daemon counts 127.0.0.0/8 as an insecure
registry, so it speaks https to this registry without verifying the
certificate and reads no certs.d for it; its push works either way.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import privateca
import pytest
from conftest import Registry, RunningRegistry, docker, run_xcompile

DOCKER_ETC = Path("/etc/docker")
CERTS_D = DOCKER_ETC / "certs.d"
TRUST_VARIABLES = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE")


@pytest.fixture
def tls_registry(tmp_path: Path) -> Iterator[tuple[Registry, privateca.ServerFiles]]:
    files = privateca.make(tmp_path / "pki")
    running = RunningRegistry(tmp_path / "tls-registry", tls=files)
    registry = running.start()
    assert registry.url.startswith("https://")
    yield registry, files
    running.stop()


@pytest.fixture
def https_env(user_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """A user whose project says ``insecure = false``, and who trusts no extra CA."""
    (tmp_path / "pyproject.toml").write_text("[tool.xcompile]\ninsecure = false\n")
    return {key: value for key, value in user_env.items() if key not in TRUST_VARIABLES}


def refused_before_any_build(repo: str, base: str, cwd: Path, env: dict[str, str]) -> str:
    """A run to ``repo`` that the registry check stops (exit 3, no traceback, no build): its last line."""
    result = run_xcompile("--base", base, "--repo", repo, "--tag", "a", cwd=cwd, env=env)
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr and "docker build" not in result.stderr
    return result.stderr.strip().splitlines()[-1]


def snapshot(root: Path) -> dict[str, tuple[int, bytes | str | None]]:
    """Every path under ``root``: its mode and its bytes (a link's target)."""
    found: dict[str, tuple[int, bytes | str | None]] = {}
    for path in [root, *sorted(root.rglob("*"))]:
        info = path.lstat()
        content = os.readlink(path) if path.is_symlink() else path.read_bytes() if path.is_file() else None
        found[str(path)] = (info.st_mode, content)
    return found


@pytest.fixture
def docker_trusts() -> Iterator[Callable[[str, Path], None]]:
    """Put a CA where docker reads it for a host; afterwards /etc/docker is as it was, byte for byte."""
    if os.geteuid() != 0:
        pytest.fail(f"writing {CERTS_D} needs root; run the suite as root (as CI does)")
    before, times = snapshot(DOCKER_ETC), DOCKER_ETC.stat()
    made: list[Path] = []

    def trust(host: str, ca: Path) -> None:
        folder = CERTS_D / host
        if folder.exists():
            pytest.fail(f"{folder} exists already; this test will not touch it")
        for path in (CERTS_D, folder):
            if not path.exists():
                path.mkdir(mode=0o755)
                made.append(path)
        (folder / "ca.crt").write_bytes(ca.read_bytes())
        made.append(folder / "ca.crt")

    try:
        yield trust
    finally:
        for path in reversed(made):
            path.rmdir() if path.is_dir() else path.unlink()
        os.utime(DOCKER_ETC, ns=(times.st_atime_ns, times.st_mtime_ns))
    assert snapshot(DOCKER_ETC) == before


def build_twice(registry: Registry, armhf_base: str, tmp_path: Path, env: dict[str, str]) -> None:
    """Build and push through the check; then read the registry back: unchanged."""
    name = f"tls-{uuid.uuid4().hex[:8]}/app"
    repo = f"{registry.host}/{name}"
    argv = ["--base", armhf_base, "--repo", repo, "--tag", "a", "--no-verify"]
    try:
        first = run_xcompile(*argv, cwd=tmp_path, env=env)
        assert first.returncode == 0, first.stderr
        assert f"xcompile: registry check: {registry.host} ready for the push" in first.stderr
        assert first.stdout.splitlines()[1].split()[2] == "pushed", first.stdout
        assert registry.tags(name) == ["a"]
        # The second run reads the image's manifest and config over https, with the same trust.
        again = run_xcompile(*argv, cwd=tmp_path, env=env)
        assert again.returncode == 0, again.stderr
        assert again.stdout.splitlines()[1].split()[2] == "unchanged", again.stderr
        assert "cannot read" not in again.stderr
    finally:
        docker("rmi", f"{repo}:a", check=False)


def test_a_ca_in_requests_ca_bundle_lets_the_run_push_and_read(
    tls_registry: tuple[Registry, privateca.ServerFiles], armhf_base: str, tmp_path: Path, https_env: dict[str, str]
) -> None:
    registry, files = tls_registry
    build_twice(registry, armhf_base, tmp_path, {**https_env, "REQUESTS_CA_BUNDLE": str(files.ca)})


def test_a_ca_in_docker_certs_d_lets_the_run_push_and_read(
    tls_registry: tuple[Registry, privateca.ServerFiles],
    docker_trusts: Callable[[str, Path], None],
    armhf_base: str,
    tmp_path: Path,
    https_env: dict[str, str],
) -> None:
    registry, files = tls_registry
    docker_trusts(registry.host, files.ca)
    build_twice(registry, armhf_base, tmp_path, https_env)


def test_an_untrusted_ca_is_refused_before_any_build_and_doctor_says_why(
    tls_registry: tuple[Registry, privateca.ServerFiles], armhf_base: str, tmp_path: Path, https_env: dict[str, str]
) -> None:
    registry, _ = tls_registry
    repo = f"{registry.host}/tls-{uuid.uuid4().hex[:8]}/app"
    assert refused_before_any_build(repo, armhf_base, tmp_path, https_env) == (
        f"xcompile: error: registry {registry.host} is not reachable at https://{registry.host}"
        " (its TLS certificate is not trusted here): the push would fail"
        f" — trust its CA: put it in {CERTS_D}/{registry.host}/ca.crt, or name it in REQUESTS_CA_BUNDLE;"
        " or build with --no-push"
    )
    doctor = run_xcompile("doctor", "--repo", repo, cwd=tmp_path, env=https_env)
    assert doctor.returncode == 3, doctor.stderr
    assert f"fail  registry {registry.host}" in doctor.stdout
    assert "(its TLS certificate is not trusted here)" in doctor.stdout
    assert f"fix: trust its CA: put it in {CERTS_D}/{registry.host}/ca.crt" in doctor.stdout


def test_a_plain_http_registry_spoken_to_in_https_is_named_so(
    registry: Registry, tmp_path: Path, https_env: dict[str, str]
) -> None:
    """``insecure = false`` for a registry that serves plain HTTP: not a certificate problem."""
    doctor = run_xcompile("doctor", "--repo", f"{registry.host}/team/app", cwd=tmp_path, env=https_env)
    assert doctor.returncode == 3, doctor.stderr
    assert (
        f"registry {registry.host} is not reachable at https://{registry.host}"
        " (it answers without TLS): the push would fail"
    ) in doctor.stdout
    assert "fix: if it serves plain HTTP, set insecure = true (XCOMPILE_INSECURE=true)" in doctor.stdout


def test_an_https_registry_on_loopback_spoken_to_in_plain_http_is_named_so(
    tls_registry: tuple[Registry, privateca.ServerFiles], armhf_base: str, tmp_path: Path, user_env: dict[str, str]
) -> None:
    """Without ``insecure = false`` a loopback registry is spoken to in plain HTTP (as docker's
    daemon counts loopback insecure); one that serves https answers 400, and the fix says so."""
    registry, _ = tls_registry
    repo = f"{registry.host}/tls-{uuid.uuid4().hex[:8]}/app"
    assert refused_before_any_build(repo, armhf_base, tmp_path, user_env) == (
        f"xcompile: error: registry {registry.host} answered HTTP 400 at http://{registry.host}/v2/,"
        " not as a registry — if it serves https, set insecure = false (XCOMPILE_INSECURE=false);"
        " or build with --no-push"
    )
