"""End to end, as a user runs it: `python -m xcompile` against a real daemon,
a real registry on 127.0.0.1 and a locally made armhf base image. Outcomes are
checked where the user would look: the registry's API, the image config, the
bytes of the layer, and what the image does under emulation. Builds run the
proof under emulation, so each sets up the host's binfmt state it needs
(the `host_binfmt` fixture) rather than relying on the host's."""

from __future__ import annotations

import io
import json
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path

import pytest
from conftest import REPO, Registry, docker, run_xcompile
from hostbinfmt import replaced, seed_world, snapshot

from xcompile.host import platforms

ARM = platforms.get("arm32v7")
HOST_QEMU = Path("/usr/bin/qemu-arm-static")


def layer_file(registry: Registry, name: str, manifest: dict[str, object], path: str) -> bytes | None:
    """The bytes of ``path`` in the topmost layer that holds it."""
    layers = manifest["layers"]
    assert isinstance(layers, list)
    for layer in reversed(layers):
        blob = registry.blob(name, layer["digest"])
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:*") as tar:
            for member in tar:
                if member.name.lstrip("./") == path:
                    extracted = tar.extractfile(member)
                    assert extracted is not None
                    return extracted.read()
    return None


# `pushed` builds and proves the image under emulation: a host with no entry cannot.
BUILDS_HERE = pytest.mark.parametrize("host_binfmt", ["debian", "seed"], indirect=True)
SEED_ONLY = pytest.mark.parametrize("host_binfmt", ["seed"], indirect=True)


@pytest.fixture
def pushed(
    host_binfmt: str, registry: Registry, armhf_base: str, user_env: dict[str, str], tmp_path: Path
) -> dict[str, object]:
    """Two tags built and pushed by xcompile, with the run's report, on a host in state ``host_binfmt``."""
    # A name of its own: a second run to the same name would find it unchanged.
    name = f"team-{uuid.uuid4().hex[:6]}/rpi-python"
    repo = f"{registry.host}/{name}"
    report = tmp_path / "report.json"
    tags = ["--tag", "3.7", "--tag", "3.7-slim", "--report", str(report)]
    result = run_xcompile("build", "--base", armhf_base, "--repo", repo, *tags, cwd=tmp_path, env=user_env)
    assert result.returncode == 0, result.stderr
    return {"repo": repo, "name": name, "report": report, "result": result}


@BUILDS_HERE
def test_build_pushes_every_tag_with_qemu_inside(registry: Registry, pushed: dict[str, object]) -> None:
    name = str(pushed["name"])
    assert sorted(registry.tags(name)) == ["3.7", "3.7-slim"]
    report = json.loads(Path(str(pushed["report"])).read_text())
    by_name = {image["name"]: image for image in report["images"]}
    for tag in ("3.7", "3.7-slim"):
        digest, manifest = registry.manifest(name, tag)
        config_blob = manifest["config"]
        assert isinstance(config_blob, dict)
        config = json.loads(registry.blob(name, config_blob["digest"]))
        assert (config["os"], config["architecture"], config.get("variant")) == ("linux", "arm", "v7")
        assert layer_file(registry, name, manifest, "usr/bin/qemu-arm-static") == HOST_QEMU.read_bytes()
        entry = by_name[f"{pushed['repo']}:{tag}"]
        assert entry["status"] == "pushed"
        assert entry["digest"] == digest  # the summary's digest is the registry's
        assert entry["platform"] == "linux/arm/v7"
        assert entry["error"] is None
    assert report["engine"]["name"] == "docker"
    assert report["engine"]["server"] and report["engine"]["client"]
    assert report["xcompile"]


@SEED_ONLY
def test_summary_and_echo_are_what_the_user_sees(pushed: dict[str, object]) -> None:
    result = pushed["result"]
    assert isinstance(result, subprocess.CompletedProcess)
    assert "+ docker build --platform linux/arm/v7 --no-cache" in result.stderr
    assert f"+ docker push {pushed['repo']}:3.7" in result.stderr
    assert "xcompile: experimental: not needed with docker client " in result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["image", "platform", "status", "digest", "seconds", "qemu"]
    assert {row.split()[0] for row in rows} == {f"{pushed['repo']}:3.7", f"{pushed['repo']}:3.7-slim"}
    assert all(row.split()[2] == "pushed" and row.split()[3].startswith("sha256:") for row in rows)
    # The qemu column: the version of the host's qemu-arm-static, which went in (found on PATH).
    version = subprocess.run([HOST_QEMU, "--version"], capture_output=True, text=True).stdout.split()[2]
    assert {row.split()[5] for row in rows} == {version}
    assert "Traceback" not in result.stderr


@SEED_ONLY
def test_docker_config_untouched_where_the_client_needs_no_experimental(
    pushed: dict[str, object], user_env: dict[str, str]
) -> None:
    assert not Path(user_env["DOCKER_CONFIG"]).exists()


@SEED_ONLY
def test_build_context_removed(pushed: dict[str, object], user_env: dict[str, str]) -> None:
    assert list(Path(user_env["TMPDIR"]).iterdir()) == []


@pytest.mark.parametrize("host_binfmt", ["debian"], indirect=True)
def test_image_runs_where_binfmt_lacks_fix_binary(
    registry: Registry, armhf_base: str, pushed: dict[str, object]
) -> None:
    """Built on a host with F (where any image runs), then the seed's world: qemu
    registered without F at /usr/bin/qemu-arm-static. There the pushed image
    (pulled back fresh) runs ARM code and the bare base does not."""
    image = f"{pushed['repo']}:3.7"
    docker("rmi", image)
    docker("pull", "--platform", ARM.platform, image)
    before = snapshot()
    with replaced(seed_world(ARM)):
        ours = docker("run", "--rm", "--platform", ARM.platform, image, "uname", "-m", check=False)
        bare = docker("run", "--rm", "--platform", ARM.platform, f"{armhf_base}:3.7", "uname", "-m", check=False)
    assert snapshot() == before, "binfmt registration not restored"
    assert (ours.returncode, ours.stdout.strip()) == (0, ARM.uname_m), ours.stderr
    assert bare.returncode != 0
    assert "no such file or directory" in bare.stderr


def test_dry_run_prints_the_original_job_and_changes_nothing(
    host_binfmt: str, tmp_path: Path, user_env: dict[str, str]
) -> None:
    shutil.copy(REPO / "setup.cfg", tmp_path / "setup.cfg")
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run_xcompile("--dry-run", cwd=tmp_path, env=user_env)
    assert result.returncode == 0, result.stderr
    log = result.stderr
    ctx = f"{user_env['TMPDIR']}/xcompile-XXXXXX/context-qemu-arm-static"
    dockerfiles = f"{user_env['TMPDIR']}/xcompile-XXXXXX/dockerfiles"  # outside the context its build sends
    tree = f"{ctx}/qemu-layer"
    assert f"+ cp {HOST_QEMU} {tree}/usr/bin/qemu-arm-static\n" in log
    stamped = f"{tree} {tree}/usr {tree}/usr/bin {tree}/usr/bin/qemu-arm-static"
    assert f"stamp 0755, 1970-01-01 00:00:01 UTC: {stamped}\n" in log
    assert (
        f'would set "experimental": "enabled" in {user_env["DOCKER_CONFIG"]}/config.json (new file)'
        " (only where the docker client is older than 20.10)\n"
    ) in log
    for tag in ("3.6", "3.6-slim", "3.7", "3.7-slim"):
        build = (
            f"+ docker build --platform linux/arm/v7 --no-cache"
            f" -f {dockerfiles}/Dockerfile.{tag} -t brewblox/rpi-python:{tag} {ctx}"
        )
        assert f"[{tag}] {build}\n" in log
        labels = f'LABEL org.opencontainers.image.base.name="arm32v7/python:{tag}"'
        dockerfile = (
            f"FROM arm32v7/python:{tag}; # qemu-layer/ holds qemu-arm-static at /usr/bin/qemu-arm-static;"
            " COPY qemu-layer/ /"
        )
        assert f"[{tag}] write {dockerfiles}/Dockerfile.{tag}: {dockerfile}; {labels}" in log
        assert f"[{tag}] + docker pull -q --platform linux/arm/v7 arm32v7/python:{tag}\n" in log
        assert f"+ docker push brewblox/rpi-python:{tag}\n" in log
    assert log.count("+ docker build") == 4 and log.count("+ docker push") == 4
    # Commands in the original's order: cp, then the edit, then build/push.
    assert log.index("+ cp ") < log.index("would set") < log.index("+ docker build")
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert not Path(user_env["DOCKER_CONFIG"]).exists()
    assert list(Path(user_env["TMPDIR"]).iterdir()) == []
    assert all(row.split()[2] == "planned" for row in result.stdout.splitlines()[1:])


def test_dry_run_without_qemu_shows_apt(tmp_path: Path, user_env: dict[str, str]) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for program in ("docker", "apt-get", "cp"):
        found = shutil.which(program)
        assert found, program
        (bin_dir / program).symlink_to(found)
    env = {**user_env, "PATH": str(bin_dir)}
    result = run_xcompile("--dry-run", "--tag", "3.7", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert "+ apt-get update\n" in result.stderr
    assert "+ apt-get install -y qemu-user-static binfmt-support\n" in result.stderr
    assert "install qemu " not in result.stderr  # Debian 12 has no package named qemu


@SEED_ONLY
@pytest.mark.parametrize("keep_going", [False, True])
def test_a_failure_stops_the_rest_unless_keep_going(
    host_binfmt: str, registry: Registry, armhf_base: str, user_env: dict[str, str], tmp_path: Path, keep_going: bool
) -> None:
    # Tag "missing" has no base image anywhere, so it fails before its build.
    repo = f"{registry.host}/fail-{int(keep_going)}/img"
    base = f"{registry.host}/nowhere/python"
    docker("tag", f"{armhf_base}:a", f"{base}:a")
    docker("tag", f"{armhf_base}:c", f"{base}:c")
    try:
        args = ["--base", base, "--repo", repo, "--tag", "a", "--tag", "missing", "--tag", "c", "--jobs", "1"]
        result = run_xcompile(*args, *(["--keep-going"] if keep_going else []), cwd=tmp_path, env=user_env)
    finally:
        docker("rmi", f"{base}:a", f"{base}:c", check=False)
    assert result.returncode == 1
    statuses = {row.split()[0].rsplit(":", 1)[1]: row.split()[2] for row in result.stdout.splitlines()[1:4]}
    assert statuses == {"a": "pushed", "missing": "failed", "c": "pushed" if keep_going else "skipped"}
    assert f"{repo}:missing: base {base}:missing is not on this host, and the pull failed: " in result.stdout
    expected = ["a", "c"] if keep_going else ["a"]
    assert sorted(registry.tags(f"fail-{int(keep_going)}/img")) == expected
    assert "Traceback" not in result.stderr
    assert list(Path(user_env["TMPDIR"]).iterdir()) == []


def test_docker_missing(tmp_path: Path, user_env: dict[str, str]) -> None:
    env = {**user_env, "PATH": str(tmp_path)}  # no docker, and nothing else either
    result = run_xcompile("--tag", "3.7", cwd=tmp_path, env=env)
    assert result.returncode == 3
    assert result.stderr.strip().splitlines() == [
        "+ docker version --format '{{json .}}'",
        "xcompile: error: docker: not found on PATH — install Docker (e.g. `sudo apt-get install docker.io`)"
        " and make sure `docker` is on PATH",
    ]
    assert not Path(user_env["DOCKER_CONFIG"]).exists()


def test_daemon_down(tmp_path: Path, user_env: dict[str, str]) -> None:
    env = {**user_env, "DOCKER_HOST": f"unix://{tmp_path}/nothing.sock"}
    result = run_xcompile("--tag", "3.7", cwd=tmp_path, env=env)
    assert result.returncode == 3
    last = result.stderr.strip().splitlines()[-1]
    assert last == (
        f"xcompile: error: docker daemon not reachable at unix://{tmp_path}/nothing.sock"
        " — start it (e.g. `sudo systemctl start docker`, or `sudo dockerd &`), or use `--engine podman`"
    )
    assert "+ cp" not in result.stderr and "apt-get" not in result.stderr
    assert not Path(user_env["DOCKER_CONFIG"]).exists()


def test_interrupt_removes_build_context(
    registry: Registry, armhf_base: str, tmp_path: Path, user_env: dict[str, str]
) -> None:
    """Ctrl-C in the middle of a build: exit 130, nothing left in TMPDIR."""
    shim = tmp_path / "bin"
    shim.mkdir()
    real = shutil.which("docker")
    # A real docker, slowed down at `build` so the interrupt lands mid-build.
    (shim / "docker").write_text(
        f'#!/bin/sh\n[ "$1" = build ] && touch "{tmp_path}/building" && sleep 30\nexec {real} "$@"\n'
    )
    (shim / "docker").chmod(0o755)
    env = {**user_env, "PATH": f"{shim}:{user_env['PATH']}"}
    argv = [sys.executable, "-m", "xcompile", "--base", armhf_base, "--repo", f"{registry.host}/int/img", "--tag", "a"]
    proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (tmp_path / "building").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    assert any(Path(user_env["TMPDIR"]).iterdir())  # the context exists while building
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "xcompile: interrupted"
    assert list(Path(user_env["TMPDIR"]).iterdir()) == []
    assert registry.tags("int/img") == []
