"""The registry check before any build of a run that pushes: each registry
answers `GET /v2/`, and one that wants a login has credentials in the engine's
auth config. Real registries on 127.0.0.1 (Debian's docker-registry), one the
test stopped and one with bcrypt htpasswd auth; a real `docker login`."""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Registry, RunningRegistry, docker, run_xcompile
from plumbum import local

from xcompile import registry as xregistry
from xcompile.engine import PODMAN
from xcompile.registry import check as registry_check
from xcompile.registry import credentials
from xcompile.registry.reader import Reader
from xcompile.system.runner import Runner


def one_line_error(stderr: str) -> str:
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("xcompile: error:")]
    assert len(errors) == 1 and stderr.strip().splitlines()[-1] == errors[0], stderr
    return errors[0]


@pytest.fixture
def stopped(tmp_path: Path) -> Registry:
    running = RunningRegistry(tmp_path / "stopped-registry")
    found = running.start()
    running.stop()
    return found


def test_a_registry_that_is_down_stops_the_run_before_any_build(
    stopped: Registry, armhf_base: str, tmp_path: Path, user_env: dict[str, str]
) -> None:
    result = run_xcompile(
        "--base", armhf_base, "--repo", f"{stopped.host}/team/app", "--tag", "a", cwd=tmp_path, env=user_env
    )
    assert result.returncode == 3, result.stderr
    assert one_line_error(result.stderr) == (
        f"xcompile: error: registry {stopped.host} is not reachable at http://{stopped.host}"
        " (connection refused or host unknown): the push would fail"
        " — start it or check the network, or build with --no-push"
    )
    assert "docker build" not in result.stderr and "+ cp " not in result.stderr
    assert result.stdout == ""


def test_no_push_skips_the_registry_check(
    stopped: Registry, armhf_base: str, tmp_path: Path, user_env: dict[str, str]
) -> None:
    repo = f"{stopped.host}/nopush-{uuid.uuid4().hex[:8]}/app"
    try:
        result = run_xcompile(
            "--base", armhf_base, "--repo", repo, "--tag", "a", "--no-push", "--no-verify", cwd=tmp_path, env=user_env
        )
    finally:
        docker("rmi", f"{repo}:a", check=False)
    assert result.returncode == 0, result.stderr
    assert "registry check" not in result.stderr
    assert result.stdout.splitlines()[1].split()[2] == "built"


def test_doctor_reports_the_same(stopped: Registry, tmp_path: Path, user_env: dict[str, str]) -> None:
    result = run_xcompile("doctor", "--repo", f"{stopped.host}/team/app", cwd=tmp_path, env=user_env)
    assert result.returncode == 3
    assert f"fail  registry {stopped.host}" in result.stdout
    assert f"registry {stopped.host} is not reachable at http://{stopped.host}" in result.stdout


def test_a_registry_that_answers_is_quick(registry: Registry, tmp_path: Path) -> None:
    found = xregistry.for_repos([f"{registry.host}/a/b"], insecure=None, hub_address=lambda: "unused")
    line = registry_check.ensure(found, (tmp_path / "no-config.json",))
    assert line.startswith(f"registry check: {registry.host} ready for the push (")
    seconds = float(line.rsplit("(", 1)[1].split()[0])
    assert seconds < 1.0, line  # a loopback registry answers in milliseconds; the timeout is seconds


def test_credentials_are_looked_up_as_docker_keys_them(tmp_path: Path) -> None:
    for data, where in [
        ({"auths": {"127.0.0.1:5000": {"auth": "x"}}}, "auths"),
        ({"auths": {"http://127.0.0.1:5000/v1/": {}}}, "auths"),
        ({"credHelpers": {"127.0.0.1:5000": "pass"}}, "credHelpers"),
        ({"credsStore": "secretservice"}, "credsStore"),
        ({"auths": {"127.0.0.1:5001": {}}}, None),
        ({}, None),
    ]:
        assert credentials.part_for(data, "127.0.0.1:5000") == where, data


# --- a registry with htpasswd auth ------------------------------------------------


@pytest.fixture
def locked(tmp_path: Path) -> Iterator[tuple[Registry, str, str]]:
    """A registry that wants a login, its user and password (bcrypt, via stdin: never in argv)."""
    folder = tmp_path / "locked-registry"
    folder.mkdir()
    user, password = "builder", secrets.token_urlsafe(16)
    made = subprocess.run(["htpasswd", "-Bni", user], input=password, capture_output=True, text=True)
    if made.returncode != 0:
        pytest.fail(f"htpasswd failed ({made.stderr.strip()}); run ci/provision.sh (apache2-utils)")
    (folder / "htpasswd").write_text(made.stdout)
    running = RunningRegistry(folder, htpasswd=folder / "htpasswd")
    found = running.start()
    yield Registry(found.host, auth=(user, password)), user, password
    running.stop()


def test_a_registry_wanting_a_login_nobody_gave(
    locked: tuple[Registry, str, str], armhf_base: str, tmp_path: Path, user_env: dict[str, str]
) -> None:
    registry, _, password = locked
    result = run_xcompile(
        "--base", armhf_base, "--repo", f"{registry.host}/team/app", "--tag", "a", cwd=tmp_path, env=user_env
    )
    assert result.returncode == 3, result.stderr
    config = Path(user_env["DOCKER_CONFIG"]) / "config.json"
    assert one_line_error(result.stderr) == (
        f"xcompile: error: registry {registry.host} wants a login, and {config} has no credentials for it"
        f" — `docker login {registry.host}`"
    )
    assert "docker build" not in result.stderr
    doctor = run_xcompile("doctor", "--repo", f"{registry.host}/team/app", cwd=tmp_path, env=user_env)
    assert doctor.returncode == 3
    assert f"fix: `docker login {registry.host}`" in doctor.stdout
    assert password not in result.stderr + result.stdout + doctor.stdout


def test_a_login_the_registry_refuses_or_an_empty_entry_stops_the_run_before_any_build(
    locked: tuple[Registry, str, str], armhf_base: str, tmp_path: Path, user_env: dict[str, str]
) -> None:
    """A wrong password in auths, or the empty entry `docker login` leaves beside a helper
    with no helper named: the registry is asked, as `docker login` asks it, and the run stops
    with exit 3 before any build, where `docker push` failed after every build and proof."""
    registry, user, password = locked
    config = Path(user_env["DOCKER_CONFIG"]) / "config.json"
    config.parent.mkdir(exist_ok=True)
    wrong = base64.b64encode(f"{user}:not-{password}".encode()).decode()
    for entry, detail, fix in (
        (
            {"auth": wrong},
            f"registry {registry.host} refused the login of '{user}' in auths of {config}",
            f"log in again: `docker login {registry.host}`",
        ),
        (
            {},
            f"registry {registry.host} wants a login, and the entry for it in {config} holds none",
            f"`docker login {registry.host}`",
        ),
    ):
        config.write_text(json.dumps({"auths": {registry.host: entry}}))
        result = run_xcompile(
            "--base", armhf_base, "--repo", f"{registry.host}/team/app", "--tag", "a", cwd=tmp_path, env=user_env
        )
        assert result.returncode == 3, result.stderr
        assert one_line_error(result.stderr) == f"xcompile: error: {detail} — {fix}"
        assert "docker build" not in result.stderr and password not in result.stderr
        doctor = run_xcompile("doctor", "--repo", f"{registry.host}/team/app", cwd=tmp_path, env=user_env)
        assert doctor.returncode == 3 and detail in doctor.stdout, doctor.stdout
    right = base64.b64encode(f"{user}:{password}".encode()).decode()
    config.write_text(json.dumps({"auths": {registry.host: {"auth": right}}}))
    found = xregistry.for_repos([f"{registry.host}/team/app"], insecure=None, hub_address=lambda: "unused")
    assert registry_check.check(found, (config,))[1] == registry_check.Finding(
        "registry login", "pass", f"credentials for {registry.host} in auths of {config}"
    )


@pytest.mark.parametrize("host_binfmt", ["debian"], indirect=True)  # the image is proven under emulation
def test_after_docker_login_the_run_pushes_and_no_password_shows(
    host_binfmt: str, locked: tuple[Registry, str, str], armhf_base: str, tmp_path: Path, user_env: dict[str, str]
) -> None:
    registry, user, password = locked
    login = subprocess.run(
        ["docker", "login", "--username", user, "--password-stdin", registry.host],
        input=password,
        env=user_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert login.returncode == 0, login.stderr
    name = f"auth-{uuid.uuid4().hex[:8]}/app"
    repo = f"{registry.host}/{name}"
    report = tmp_path / "report.json"
    argv = ["--base", armhf_base, "--repo", repo, "--tag", "a", "--report", str(report)]
    try:
        result = run_xcompile(*argv, cwd=tmp_path, env=user_env)
    finally:
        docker("rmi", f"{repo}:a", check=False)
    assert result.returncode == 0, result.stderr
    assert f"xcompile: registry check: {registry.host} ready for the push" in result.stderr
    assert registry.tags(name) == ["a"]
    assert json.loads(report.read_text())["images"][0]["status"] == "pushed"
    # The password is nowhere: not in what the user saw, the report, or any argv xcompile ran.
    for seen in (result.stdout, result.stderr, report.read_text(), " ".join(argv)):
        assert password not in seen
    assert all(password not in line for line in result.stderr.splitlines() if line.lstrip("[]a ").startswith("+"))
    # The login went to the test's own DOCKER_CONFIG only.
    assert registry.host in json.loads((Path(user_env["DOCKER_CONFIG"]) / "config.json").read_text())["auths"]


def test_podman_reads_its_own_auth_file_then_dockers(locked: tuple[Registry, str, str], tmp_path: Path) -> None:
    """As containers-auth.json(5) says: podman's auth file first, then docker's config.json."""
    registry, user, password = locked
    podman_file, docker_file = tmp_path / "auth.json", tmp_path / "config.json"
    files = PODMAN.auth_files(docker_file, podman_file)
    assert files == (podman_file, docker_file)
    found = xregistry.for_repos([f"{registry.host}/team/app"], insecure=None, hub_address=lambda: "unused")

    login = registry_check.check(found, files)[1]
    assert login.status == "fail"
    assert login.detail == (
        f"registry {registry.host} wants a login, and neither {podman_file} nor {docker_file} has credentials for it"
    )
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    docker_file.write_text(json.dumps({"auths": {registry.host: {"auth": token}}}))
    login = registry_check.check(found, files)[1]
    assert (login.status, login.detail) == ("pass", f"credentials for {registry.host} in auths of {docker_file}")
    podman_file.write_text(json.dumps({"auths": {registry.host: {"auth": token}}}))
    assert registry_check.check(found, files)[1].detail.endswith(f"in auths of {podman_file}")
    assert password not in repr(registry_check.check(found, files))


def test_a_credential_helper_is_asked_before_auths_and_for_what_docker_asks_it(
    locked: tuple[Registry, str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`docker login` with a credsStore leaves an empty (or stale) auths entry beside it: docker
    takes the helper's login, and asks it for the host, or for Docker Hub's address. So does
    xcompile; and a credsStore whose helper is missing fails the check, as the push would."""
    registry, user, password = locked
    asked, creds, helpers = tmp_path / "asked", tmp_path / "creds.json", tmp_path / "bin"
    creds.write_text(json.dumps({"Username": user, "Secret": password}))
    helpers.mkdir()
    helper = helpers / "docker-credential-xctest"
    helper.write_text(f"#!/bin/sh\ncat >>'{asked}'\necho >>'{asked}'\ncat '{creds}'\n")
    helper.chmod(0o755)
    stale = base64.b64encode(f"{user}:not-the-password".encode()).decode()
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"auths": {registry.host: {"auth": stale}}, "credsStore": "xctest"}))
    runner = Runner(lambda line, label: None)
    (where,) = xregistry.for_repos([f"{registry.host}/team/app"], insecure=None, hub_address=lambda: "unused")
    path = f"{helpers}:{local.env['PATH']}"
    monkeypatch.setenv("PATH", path)  # the check looks for the helper; the runner runs it
    with local.env(PATH=path):
        assert credentials.where(registry.host, (config,)) == credentials.Source(
            "credsStore", config, "docker-credential-xctest"
        )
        assert registry_check.check([where], (config,))[1].status == "pass"
        # The registry answers 404 for a missing tag only to the right login (the stale one gets 401).
        assert Reader(where, (config,), runner).read("team/app", "nope") is None
        (hub,) = xregistry.for_repos(["team/app"], insecure=None, hub_address=lambda: "https://index.docker.io/v1/")
        assert credentials.find(hub.host, (config,), runner, server=hub.server) == credentials.Login(user, password)
    assert asked.read_text().split() == [registry.host, "https://index.docker.io/v1/"]

    config.write_text(json.dumps({"auths": {registry.host: {}}, "credsStore": "xcompile-nosuchhelper"}))
    login = registry_check.check([where], (config,))[1]
    assert (login.status, login.detail) == (
        "fail",
        f"{config} names docker-credential-xcompile-nosuchhelper for {registry.host} (in credsStore),"
        " and no such program is on PATH",
    )
