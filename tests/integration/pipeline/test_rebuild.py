"""Rebuild only what changed, and always the newest base: against the real daemon
and a real registry whose own access log counts the manifest PUTs."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from conftest import Registry, docker, free_port, run_xcompile
from hostbinfmt import replaced, seed_world

from xcompile.host import platforms
from xcompile.registry import recipe

pytestmark = pytest.mark.parametrize("host_binfmt", ["debian"], indirect=True)
ARM = platforms.get("arm32v7")


class LoggedRegistry(Registry):
    def __init__(self, host: str, log: Path) -> None:
        super().__init__(host)
        self.log = log

    def manifest_puts(self, name: str) -> int:
        return self.log.read_text().count(f'"PUT /v2/{name}/manifests/')

    def blob_uploads(self, name: str) -> int:
        return self.log.read_text().count(f'"POST /v2/{name}/blobs/uploads/')

    def labels(self, name: str, tag: str) -> dict[str, str]:
        _, manifest = self.manifest(name, tag)
        config = json.loads(self.blob(name, manifest["config"]["digest"]))  # type: ignore[index]
        return dict(config["config"].get("Labels") or {})


@pytest.fixture
def logged_registry(tmp_path: Path) -> Iterator[LoggedRegistry]:
    """A registry of this test's own, logging one line per request (level info)."""
    port = free_port()
    config = tmp_path / "registry.yml"
    config.write_text(
        f"version: 0.1\nlog: {{level: info}}\nstorage: {{filesystem: {{rootdirectory: {tmp_path / 'data'}}}}}\n"
        f"http: {{addr: 127.0.0.1:{port}}}\n"
    )
    log = tmp_path / "registry.log"
    proc = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=log.open("w"), stderr=subprocess.STDOUT)
    registry = LoggedRegistry(f"127.0.0.1:{port}", log)
    deadline = time.monotonic() + 20
    while True:
        try:
            if requests.get(f"{registry.url}/", timeout=1).ok:
                break
        except requests.ConnectionError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-500:]
        time.sleep(0.1)
    yield registry
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def job(
    logged_registry: LoggedRegistry, armhf_base: str, user_env: dict[str, str], tmp_path: Path
) -> Iterator[dict[str, str]]:
    """Two tags on bases of this test's own (so it may change them), pushed once."""
    base = f"xcompile-test-{uuid.uuid4().hex[:8]}/python"
    for tag in ("a", "b"):
        docker("tag", f"{armhf_base}:{tag}", f"{base}:{tag}")
    name = f"rebuild-{uuid.uuid4().hex[:6]}/rpi"
    job = {"base": base, "name": name, "repo": f"{logged_registry.host}/{name}"}
    yield job
    docker("rmi", f"{base}:a", f"{base}:b", f"{job['repo']}:a", f"{job['repo']}:b", check=False)


def build(job: dict[str, str], env: dict[str, str], cwd: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    tags = ["--tag", "a", "--tag", "b", "--report", "r.json"]
    result = run_xcompile("--base", job["base"], "--repo", job["repo"], *tags, *extra, env=env, cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def statuses(cwd: Path) -> dict[str, tuple[str, str | None]]:
    report = json.loads((cwd / "r.json").read_text())
    return {i["name"].rsplit(":", 1)[1]: (i["status"], i["digest"]) for i in report["images"]}


def test_rerun_unchanged_makes_no_push_and_says_unchanged(
    host_binfmt: str, logged_registry: LoggedRegistry, job: dict[str, str], user_env: dict[str, str], tmp_path: Path
) -> None:
    build(job, user_env, tmp_path)
    first = statuses(tmp_path)
    assert logged_registry.manifest_puts(job["name"]) == 2
    # The labels are in the pushed config.
    labels = logged_registry.labels(job["name"], "a")
    assert labels[recipe.BASE_NAME] == f"{job['base']}:a"
    local_id = docker("image", "inspect", "--format", "{{.Id}}", f"{job['base']}:a").stdout.strip()
    assert labels[recipe.BASE_DIGEST] == local_id  # a base from no registry: its local image ID
    assert labels[recipe.QEMU_SHA256] == hashlib.sha256(Path("/usr/bin/qemu-arm-static").read_bytes()).hexdigest()
    assert labels[recipe.RECIPE].startswith("xcompile ")

    again = build(job, user_env, tmp_path)
    assert logged_registry.manifest_puts(job["name"]) == 2  # not one more PUT
    assert statuses(tmp_path) == {tag: ("unchanged", digest) for tag, (_, digest) in first.items()}
    assert "+ docker build" not in again.stderr and "+ docker push" not in again.stderr
    rows = again.stdout.splitlines()[1:3]
    assert all(row.split()[2] == "unchanged" and row.split()[3].startswith("sha256:") for row in rows)

    build(job, user_env, tmp_path, "--rebuild", "always")
    assert {status for status, _ in statuses(tmp_path).values()} == {"pushed"}
    assert logged_registry.manifest_puts(job["name"]) == 4


def test_a_one_part_name_on_a_registry_is_read_where_it_was_pushed(
    host_binfmt: str, logged_registry: LoggedRegistry, armhf_base: str, user_env: dict[str, str], tmp_path: Path
) -> None:
    """`HOST/rpi` is repository `rpi` there (only Docker Hub reads `python` as `library/python`):
    the rerun finds it unchanged, and `inspect` reads it."""
    name = f"solo-{uuid.uuid4().hex[:8]}"
    repo = f"{logged_registry.host}/{name}"
    argv = ["--base", armhf_base, "--repo", repo, "--tag", "a"]
    try:
        first = run_xcompile(*argv, env=user_env, cwd=tmp_path)
        assert first.returncode == 0, first.stderr[-3000:]
        again = run_xcompile(*argv, env=user_env, cwd=tmp_path)
    finally:
        docker("rmi", f"{repo}:a", check=False)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.splitlines()[1].split()[2] == "unchanged", again.stdout
    assert logged_registry.manifest_puts(name) == 1 and "+ docker push" not in again.stderr
    assert "/v2/library/" not in logged_registry.log.read_text()
    seen = run_xcompile("inspect", f"{repo}:a", "--format", "json", env=user_env, cwd=tmp_path)
    assert seen.returncode == 0, seen.stderr
    (image,) = json.loads(seen.stdout)
    assert image["base"] == f"{armhf_base}:a" and image["platform"] == "linux/arm/v7"


def qemu_layer(registry: LoggedRegistry, name: str, tag: str) -> tuple[str, list[tarfile.TarInfo], bytes]:
    """The digest of the image's topmost layer (qemu's), its entries, and the bytes of its qemu."""
    _, manifest = registry.manifest(name, tag)
    digest = str(manifest["layers"][-1]["digest"])  # type: ignore[index]
    with tarfile.open(fileobj=io.BytesIO(registry.blob(name, digest)), mode="r:*") as tar:
        entries = tar.getmembers()
        qemu = tar.extractfile("usr/bin/qemu-arm-static")
        assert qemu is not None
        return digest, entries, qemu.read()


def test_the_qemu_layer_is_the_same_bytes_on_every_base_and_in_every_run(
    host_binfmt: str, logged_registry: LoggedRegistry, job: dict[str, str], user_env: dict[str, str], tmp_path: Path
) -> None:
    """On two bases whose /usr/bin differ, in runs seconds apart, under a umask
    that would make the tree private: one qemu layer, world-readable, and a
    rebuild uploads no layer, only each image's new config."""
    other = tmp_path / "other-base"
    other.mkdir()
    (other / "marker").write_text("b\n")
    (other / "Dockerfile").write_text(f"FROM {job['base']}:b\nCOPY marker /usr/bin/marker\n")
    docker("build", "-q", "--platform", ARM.platform, "-t", f"{job['base']}:b", str(other))
    umask = os.umask(0o077)
    try:
        build(job, user_env, tmp_path)
        first = {tag: qemu_layer(logged_registry, job["name"], tag) for tag in ("a", "b")}
        time.sleep(1.1)  # layer times are whole seconds
        uploads = logged_registry.blob_uploads(job["name"])
        build(job, user_env, tmp_path, "--rebuild", "always")
    finally:
        os.umask(umask)
    again = {tag: qemu_layer(logged_registry, job["name"], tag) for tag in ("a", "b")}
    assert {tag: status for tag, (status, _) in statuses(tmp_path).items()} == {"a": "pushed", "b": "pushed"}
    assert first["a"][0] == first["b"][0] == again["a"][0] == again["b"][0]
    _, entries, qemu = first["a"]
    assert qemu == Path("/usr/bin/qemu-arm-static").read_bytes()
    assert [(e.name.strip("./"), e.mode & 0o7777, e.mtime, e.uid, e.gid) for e in entries] == [
        ("usr", 0o755, 1, 0, 0),
        ("usr/bin", 0o755, 1, 0, 0),
        ("usr/bin/qemu-arm-static", 0o755, 1, 0, 0),
    ]
    assert logged_registry.blob_uploads(job["name"]) - uploads == 2  # the two configs: no layer again


def test_a_changed_base_rebuilds_only_its_tag(
    host_binfmt: str, logged_registry: LoggedRegistry, job: dict[str, str], user_env: dict[str, str], tmp_path: Path
) -> None:
    build(job, user_env, tmp_path)
    newer = tmp_path / "newer"
    newer.mkdir()
    (newer / "Dockerfile").write_text(f"FROM {job['base']}:b\nLABEL newer=yes\n")
    docker("build", "-q", "--platform", ARM.platform, "-t", f"{job['base']}:b", str(newer))
    result = build(job, user_env, tmp_path)
    assert {tag: status for tag, (status, _) in statuses(tmp_path).items()} == {"a": "unchanged", "b": "pushed"}
    assert "changed since" in result.stderr and ": base; building" in result.stderr


def test_a_different_qemu_rebuilds_all(
    host_binfmt: str, logged_registry: LoggedRegistry, job: dict[str, str], user_env: dict[str, str], tmp_path: Path
) -> None:
    build(job, user_env, tmp_path)
    other = tmp_path / "other-qemu"
    other.mkdir()
    shutil.copy("/usr/bin/qemu-arm-static", other / "qemu-arm-static")
    with (other / "qemu-arm-static").open("ab") as binary:
        binary.write(b"\0")  # another build of qemu, as far as its SHA256 can tell
    env = {**user_env, "PATH": f"{other}:{user_env['PATH']}"}
    build(job, env, tmp_path)
    assert {status for status, _ in statuses(tmp_path).values()} == {"pushed"}


def test_a_recipe_change_rebuilds(
    host_binfmt: str, logged_registry: LoggedRegistry, job: dict[str, str], user_env: dict[str, str], tmp_path: Path
) -> None:
    """A host whose binfmt entry (no F) looks for qemu elsewhere gets another
    Dockerfile (qemu at a second path): another recipe."""
    build(job, user_env, tmp_path)
    with replaced(seed_world(ARM, interpreter="/usr/local/bin/qemu-arm-static")):
        result = build(job, user_env, tmp_path)
    assert {status for status, _ in statuses(tmp_path).values()} == {"pushed"}
    assert ": recipe; building" in result.stderr


def test_a_newer_base_in_the_registry_is_pulled_and_built_on(
    host_binfmt: str, logged_registry: LoggedRegistry, armhf_base: str, user_env: dict[str, str], tmp_path: Path
) -> None:
    base = f"{logged_registry.host}/bases-{uuid.uuid4().hex[:6]}/python"
    repo = f"{logged_registry.host}/newest-{uuid.uuid4().hex[:6]}/rpi"
    newer = tmp_path / "newer"
    newer.mkdir()
    (newer / "Dockerfile").write_text(f"FROM {armhf_base}:a\nLABEL newer=yes\n")
    try:
        docker("build", "-q", "--platform", ARM.platform, "-t", f"{base}:a", str(newer))
        docker("push", f"{base}:a")
        newer_digest = docker("image", "inspect", "--format", "{{index .RepoDigests 0}}", f"{base}:a").stdout
        docker("rmi", f"{base}:a")
        docker("tag", f"{armhf_base}:a", f"{base}:a")  # the local cache holds the older one
        result = run_xcompile("--base", base, "--repo", repo, "--tag", "a", env=user_env, cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        name = repo.split("/", 1)[1]
        labels = logged_registry.labels(name, "a")
        assert labels[recipe.BASE_DIGEST] == newer_digest.strip().split("@")[1]
        assert labels.get("newer") == "yes"  # built on the newer base: its label came along
    finally:
        docker("rmi", f"{base}:a", f"{repo}:a", check=False)
