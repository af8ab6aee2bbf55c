"""`xcompile verify`: images xcompile pushed to a real registry, checked against a real signed archive
on 127.0.0.1 (the real qemu packages, signed with a throwaway key), as a user runs it. Also images
crafted through the registry API to differ in one thing each, with their labels left as they were;
images that cannot be told; and hostile top layers. Nothing here skips."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import re
import secrets
import subprocess
import tarfile
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from conftest import REPO, Registry, RunningRegistry, docker, free_port, run_xcompile
from debian_archive import GpgKey, file_handler, key_fixture, real_mirror, real_package, tiny_elf
from hostbinfmt import host_state
from pytest_httpserver import HTTPServer

from integration.commands.test_join import attest, put_blob, put_manifest
from xcompile.registry import recipe, toplayer

PREFIX = f"/verify-{uuid.uuid4().hex[:6]}/debian"
TRIXIE = real_package("trixie", "qemu-user").field("Version")

key = key_fixture("Verify Archive")


@dataclass
class Job:
    """What one xcompile build pushed: a part per arch and their list, from bases in the same registry."""

    registry: Registry
    name: str
    """The image's repository path: ``{name}:a`` is the list, ``{name}:a-arm32v7`` a part."""
    bases: dict[str, str]
    env: dict[str, str]
    mirror: str
    key: GpgKey
    server: HTTPServer

    @property
    def repo(self) -> str:
        return f"{self.registry.host}/{self.name}"

    def verify(self, *refs: str, extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
        names = [ref if "/" in ref else f"{self.repo}:{ref}" for ref in refs]
        args = ("verify", *names, "--mirror", self.mirror, "--keyring", str(self.key.keyring), *extra)
        return run_xcompile(*args, env=self.env, timeout=600)


@pytest.fixture(scope="module")
def archive_root(tmp_path_factory: pytest.TempPathFactory, key: GpgKey) -> Path:
    root = tmp_path_factory.mktemp("verify-mirror")
    real_mirror(root, key)
    return root


@pytest.fixture(scope="module")
def job(
    tmp_path_factory: pytest.TempPathFactory,
    registry: Registry,
    armhf_base: str,
    arm64_base: str,
    archive_root: Path,
    key: GpgKey,
    make_httpserver: HTTPServer,
) -> Iterator[Job]:
    """Bases pushed to the registry, and a two-arch job built from them by xcompile with qemu
    downloaded from the signed mirror: the parts ``a-arm32v7``, ``a-arm64v8`` and the list ``a``."""
    folder = tmp_path_factory.mktemp("verify-job")
    ns = f"verify-{uuid.uuid4().hex[:6]}"
    bases = {"arm32v7": f"{registry.host}/{ns}/arm32v7-base", "arm64v8": f"{registry.host}/{ns}/arm64v8-base"}
    for arch, local in (("arm32v7", armhf_base), ("arm64v8", arm64_base)):
        docker("tag", f"{local}:a", f"{bases[arch]}:a")
        docker("push", f"{bases[arch]}:a", timeout=300)
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(folder),
        "DOCKER_CONFIG": str(folder / "docker-config"),
        "XDG_CACHE_HOME": str(folder / "cache"),
        "TMPDIR": str(folder),
        "PYTHONPATH": str(REPO),
    }
    make_httpserver.expect_request(re.compile(f"^{PREFIX}/")).respond_with_handler(file_handler(archive_root, PREFIX))
    made = Job(registry, f"{ns}/rpi", bases, env, make_httpserver.url_for(PREFIX), key, make_httpserver)
    image = ["--base", f"{registry.host}/{ns}/{{namespace}}-base", "--repo", made.repo, "--tag", "a"]
    qemu = ["--qemu-source", "download", "--mirror", made.mirror, "--keyring", str(key.keyring)]
    args = ["build", *image, "--arch", "arm32v7", "--arch", "arm64v8", *qemu]
    try:
        with host_state("debian"):
            built = run_xcompile(*args, cwd=folder, env=env, timeout=900)
        assert built.returncode == 0, built.stderr[-3000:]
        yield made
    finally:
        refs = [f"{made.repo}:a-arm32v7", f"{made.repo}:a-arm64v8", *(f"{base}:a" for base in bases.values())]
        docker("rmi", *refs, check=False)


def lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return result.stdout.splitlines()


# --- verified -------------------------------------------------------------------------------------


def test_an_image_xcompile_pushed_is_verified_and_names_its_package_and_signer(job: Job) -> None:
    result = job.verify("a-arm32v7")
    assert result.returncode == 0, result.stdout + result.stderr
    [line] = lines(result)
    assert line.startswith(f"{job.repo}:a-arm32v7  linux/arm/v7  verified: the base's layers unchanged,"), line
    assert f"/usr/bin/qemu-arm-static: qemu-user {TRIXIE} amd64 of trixie" in line
    assert "Verify Archive" in line and "as its ELF header says" in line

    shown = job.verify("a-arm32v7", extra=("--format", "json"))
    assert shown.returncode == 0, shown.stderr
    [found] = json.loads(shown.stdout)
    said = (found["state"], found["package"], found["version"], found["arch"])
    assert said == ("verified", "qemu-user", TRIXIE, "amd64")
    assert "Verify Archive" in found["signer"]


def test_with_a_warm_cache_verify_asks_the_mirror_nothing(job: Job) -> None:
    """A binary the chain gave before is taken from the cache, checked with the same keys."""
    assert job.verify("a-arm32v7").returncode == 0  # warm: the pinned version's suites and binary

    def asked() -> int:
        return sum(1 for request, _ in job.server.log if request.path.startswith(PREFIX))

    before = asked()
    again = job.verify("a-arm32v7")
    assert again.returncode == 0, again.stdout + again.stderr
    assert asked() == before


def test_a_two_arch_list_is_verified_platform_by_platform(job: Job) -> None:
    result = job.verify("a")
    assert result.returncode == 0, result.stdout + result.stderr
    found = {line.split()[1]: line.split()[2] for line in lines(result)}
    assert found == {"linux/arm/v7": "verified:", "linux/arm64/v8": "verified:"}, result.stdout
    assert "/usr/bin/qemu-aarch64-static: qemu-user" in result.stdout


def test_an_index_with_buildkit_attestations_is_verified_and_the_attestation_passed_over(job: Job) -> None:
    attest(job.registry, job.name, "attested", source="a-arm32v7")
    result = job.verify("attested")
    assert result.returncode == 0, result.stdout + result.stderr
    verdicts = [line.split()[1:3] for line in lines(result)]
    assert verdicts == [["linux/arm/v7", "verified:"], ["unknown/unknown", "passed"]], result.stdout
    assert "passed over: an attestation manifest (sha256:" in lines(result)[1]


def test_a_list_xcompile_join_made_of_parts_with_attestations_is_verified_platform_by_platform(job: Job) -> None:
    """Each part pushed as BuildKit pushes with --provenance (an index: the image and its attestation),
    then `xcompile join`: the list verifies platform by platform, and each part's index does too."""
    for arch in ("arm32v7", "arm64v8"):
        attest(job.registry, job.name, f"j-{arch}", source=f"a-{arch}")
    arches = ["--arch", "arm32v7", "--arch", "arm64v8"]
    joined = run_xcompile("join", "--repo", job.repo, "--tag", "j", *arches, cwd=Path(job.env["HOME"]), env=job.env)
    assert joined.returncode == 0, joined.stderr
    result = job.verify("j", "j-arm64v8")
    assert result.returncode == 0, result.stdout + result.stderr
    found = [line.split()[:3] for line in lines(result)]
    found[:2] = sorted(found[:2])  # the list's order is join's
    assert found == [
        [f"{job.repo}:j", "linux/arm/v7", "verified:"],
        [f"{job.repo}:j", "linux/arm64/v8", "verified:"],
        [f"{job.repo}:j-arm64v8", "linux/arm64/v8", "verified:"],
        [f"{job.repo}:j-arm64v8", "unknown/unknown", "passed"],
    ], result.stdout


def test_a_qemu_from_path_is_verified_against_the_debian_package_its_version_names(job: Job, tmp_path: Path) -> None:
    """The host's own qemu-arm-static (Debian's bookworm package, on PATH): its label says the version
    its --version prints, whose package the mirror's bookworm serves."""
    bookworm = real_package("bookworm", "qemu-user-static").field("Version")
    repo = f"{job.repo}-path"
    image = ["--base", job.bases["arm32v7"], "--repo", repo, "--tag", "a", "--arch", "arm32v7"]
    with host_state("debian"):
        built = run_xcompile("build", *image, "--qemu-source", "path", cwd=tmp_path, env=job.env)
    try:
        assert built.returncode == 0, built.stderr[-3000:]
        result = job.verify(f"{repo}:a")
    finally:
        docker("rmi", f"{repo}:a", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"qemu-arm-static: qemu-user-static {bookworm} amd64 of bookworm" in result.stdout
    assert "it came from path, and is that package's binary" in result.stdout


# --- crafted through the registry API -------------------------------------------------------------


def layer(files: dict[str, bytes], folders: tuple[str, ...] = ("usr", "usr/bin")) -> bytes:
    """A gzipped tar as docker's COPY makes it: the folders, then the files."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for folder in folders:
            info = tarfile.TarInfo(folder)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def top_file(job: Job, tag: str) -> bytes:
    """The emulator in the top layer of ``tag``, as the registry has it."""
    _, manifest = job.registry.manifest(job.name, tag)
    blob = job.registry.blob(job.name, manifest["layers"][-1]["digest"])  # type: ignore[index]
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        member = tar.extractfile("usr/bin/qemu-arm-static")
        assert member is not None
        return member.read()


def craft(
    job: Job,
    tag: str,
    *,
    top: bytes | None = None,
    labels: dict[str, str] | None = None,
    first: dict[str, object] | None = None,
    runs: dict[str, object] | None = None,
    diff_id: str | None = None,
) -> str:
    """``tag``: the part a-arm32v7 with its top layer replaced by ``top`` (a gzipped tar), its labels
    changed by ``labels``, its first layer replaced by the descriptor ``first``, or its config's run
    settings (Entrypoint, Env, ...) changed by ``runs``; the rest as it was."""
    _, manifest = job.registry.manifest(job.name, "a-arm32v7")
    config = json.loads(job.registry.blob(job.name, manifest["config"]["digest"]))  # type: ignore[index]
    layers: list[dict[str, object]] = list(manifest["layers"])  # type: ignore[call-overload]
    if top is not None:
        layers[-1] = {**layers[-1], **put_blob(job.registry, job.name, top)}
        diff_id = diff_id or "sha256:" + hashlib.sha256(gzip.decompress(top)).hexdigest()
        config["rootfs"]["diff_ids"][-1] = diff_id
    if first is not None:
        layers[0] = first
    config["config"]["Labels"].update(labels or {})
    config["config"].update(runs or {})
    described = put_blob(job.registry, job.name, json.dumps(config).encode())
    crafted = {**manifest, "config": {**manifest["config"], **described}, "layers": layers}  # type: ignore[dict-item]
    put_manifest(job.registry, job.name, tag, crafted)
    return f"{job.repo}:{tag}"


def test_another_binary_under_the_same_labels_differs(job: Job) -> None:
    other = tiny_elf("amd64", size=200_000)
    result = job.verify(craft(job, "other-binary", top=layer({"usr/bin/qemu-arm-static": other})))
    assert result.returncode == 1, result.stdout + result.stderr
    [line] = lines(result)
    assert "differs: another binary: /usr/bin/qemu-arm-static (sha256 " in line
    assert f"is not qemu-user {TRIXIE}'s qemu-arm-static" in line


def test_a_second_file_in_the_top_layer_differs(job: Job) -> None:
    qemu = top_file(job, "a-arm32v7")
    top = layer({"usr/bin/qemu-arm-static": qemu, "usr/bin/helper": b"#!/bin/sh\necho hi\n"})
    result = job.verify(craft(job, "extra-file", top=top))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "differs: an extra file in the top layer: /usr/bin/helper (18 bytes), not the emulator" in result.stdout


def test_the_same_qemu_at_a_binfmt_path_too_is_verified_and_named(job: Job) -> None:
    qemu = top_file(job, "a-arm32v7")
    files = {"usr/bin/qemu-arm-static": qemu, "usr/libexec/qemu-binfmt/arm-binfmt-P": qemu}
    top = layer(files, ("usr", "usr/bin", "usr/libexec", "usr/libexec/qemu-binfmt"))
    result = job.verify(craft(job, "binfmt-copy", top=top))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(also at /usr/libexec/qemu-binfmt/arm-binfmt-P, for a binfmt entry)" in result.stdout


def test_a_base_layer_swapped_for_another_images_differs(job: Job) -> None:
    arm64 = job.bases["arm64v8"].split("/", 1)[1]
    _, theirs = job.registry.manifest(arm64, "a")
    swapped: dict[str, object] = theirs["layers"][0]  # type: ignore[index]
    put_blob(job.registry, job.name, job.registry.blob(arm64, str(swapped["digest"])))
    result = job.verify(craft(job, "swapped-base", first=swapped))
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"differs: base layer 1 of 1 replaced: {swapped['digest']} is not the base's sha256:" in result.stdout


def test_an_entrypoint_the_base_does_not_have_differs(job: Job) -> None:
    tag = craft(job, "entrypoint", runs={"Entrypoint": ["/usr/bin/qemu-arm-static", "/bin/sh"]})
    result = job.verify(tag)
    assert result.returncode == 1, result.stdout + result.stderr
    said = "differs: its config's Entrypoint is ['/usr/bin/qemu-arm-static', '/bin/sh'], its base's None"
    assert said in result.stdout


def test_a_layer_added_by_a_build_from_the_image_differs(job: Job, tmp_path: Path) -> None:
    """FROM the pushed image, COPY another static binary over the emulator, push: the labels are inherited."""
    (tmp_path / "qemu-arm-static").write_bytes(tiny_elf("amd64"))
    (tmp_path / "Dockerfile").write_text(f"FROM {job.repo}:a-arm32v7\nCOPY qemu-arm-static /usr/bin/\n")
    target = f"{job.repo}:copied"
    docker("pull", "--platform", "linux/arm/v7", f"{job.repo}:a-arm32v7", timeout=300)
    try:
        docker("build", "--platform", "linux/arm/v7", "-t", target, str(tmp_path), timeout=300)
        docker("push", target, timeout=300)
    finally:
        docker("rmi", target, f"{job.repo}:a-arm32v7", check=False)
    result = job.verify("copied")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "differs: 2 layers on top of the base's 1, not one" in result.stdout


# --- cannot tell ----------------------------------------------------------------------------------


def test_a_recorded_version_no_suite_serves_cannot_be_told_and_says_where_it_was_looked_for(job: Job) -> None:
    gone = "1:7.2+dfsg-7+deb12u5"
    labels = {recipe.QEMU_SOURCE: f"debian bookworm qemu-user-static {gone}", recipe.QEMU_VERSION: gone}
    tag = craft(job, "gone", labels=labels)
    result = job.verify(tag)
    assert result.returncode == 3, result.stdout + result.stderr
    [line] = lines(result)
    assert f"cannot tell: qemu {gone} is in no suite {job.mirror} serves (searched: bookworm, trixie" in line
    assert "a snapshot mirror" in line and "--mirror URL" in line


def test_an_archive_that_is_down_cannot_be_told(job: Job, tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}/debian"
    env = {**job.env, "XDG_CACHE_HOME": str(tmp_path / "cold-cache")}  # nothing to fall back on
    args = ("verify", f"{job.repo}:a-arm32v7", "--mirror", down, "--keyring", str(job.key.keyring))
    result = run_xcompile(*args, env=env)
    assert result.returncode == 3, result.stdout + result.stderr
    [line] = lines(result)
    assert f"cannot tell: cannot fetch qemu {TRIXIE} from {down}: " in line, line


def test_a_qemu_from_a_url_is_not_verifiable_and_the_label_is_shown_escaped(job: Job) -> None:
    source = "https://example.invalid/\x1b[2Jqemu-arm-static"
    result = job.verify(craft(job, "from-url", labels={recipe.QEMU_SOURCE: source}))
    assert result.returncode == 3, result.stdout + result.stderr
    said = "cannot tell: not verifiable: its qemu came from https://example.invalid/\\x1b[2Jqemu-arm-static"
    assert said in result.stdout and "\x1b" not in result.stdout


def test_a_recorded_base_that_is_no_name_or_digest_cannot_be_told(job: Job) -> None:
    result = job.verify(craft(job, "odd-base", labels={recipe.BASE_DIGEST: "sha256:../../v2/_catalog"}))
    assert result.returncode == 3, result.stdout + result.stderr
    assert "cannot tell: its labels record a base digest 'sha256:../../v2/_catalog' that is no sha256" in result.stdout


def test_a_qemu_from_apt_is_verified_against_the_package_it_came_from(job: Job) -> None:
    tag = craft(job, "from-apt", labels={recipe.QEMU_SOURCE: f"apt qemu-user-static {TRIXIE}"})
    result = job.verify(tag)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "it came from apt, and is that package's binary" in result.stdout


def test_an_image_without_xcompiles_labels_cannot_be_told(job: Job) -> None:
    result = job.verify(f"{job.bases['arm32v7']}:a")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "cannot tell: its labels record no base: made before xcompile's labels" in result.stdout
    assert "Traceback" not in result.stderr


def test_a_registry_that_is_down_cannot_be_told(job: Job) -> None:
    result = job.verify(f"127.0.0.1:{free_port()}/team/rpi:a")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "cannot tell: cannot read 127.0.0.1:" in result.stdout and "connection refused" in result.stdout


def test_a_list_of_more_entries_than_xcompile_makes_is_not_read(job: Job) -> None:
    digest, manifest = job.registry.manifest(job.name, "a-arm32v7")
    size = len(json.dumps(manifest))  # only the list's shape matters: it is refused before any entry is read
    entry = {
        "mediaType": manifest["mediaType"],
        "digest": digest,
        "size": size,
        "platform": {"os": "linux", "architecture": "arm", "variant": "v7"},
    }
    listed = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
        "manifests": [entry] * 65,
    }
    body = json.dumps(listed).encode()
    headers = {"Content-Type": str(listed["mediaType"])}
    put = requests.put(f"{job.registry.url}/{job.name}/manifests/many", data=body, timeout=10, headers=headers)
    assert put.status_code == 201, put.text
    result = job.verify("many")
    assert result.returncode == 1, result.stdout + result.stderr
    assert lines(result) == [
        f"{job.repo}:many  -  differs: a list of 65 entries, more than the 64 one of xcompile's can hold; not read"
    ]


@pytest.fixture
def locked(tmp_path: Path) -> Iterator[Registry]:
    """A registry that wants a login (htpasswd, bcrypt; the password via stdin, never in argv)."""
    folder = tmp_path / "locked"
    folder.mkdir()
    password = secrets.token_urlsafe(16)
    made = subprocess.run(["htpasswd", "-Bni", "reader"], input=password, capture_output=True, text=True)
    assert made.returncode == 0, f"htpasswd failed ({made.stderr.strip()}); run ci/provision.sh (apache2-utils)"
    (folder / "htpasswd").write_text(made.stdout)
    running = RunningRegistry(folder, htpasswd=folder / "htpasswd")
    yield Registry(running.start().host, auth=("reader", password))
    running.stop()


def copy_image(job: Job, tag: str, to: Registry, name: str) -> None:
    """``tag`` of the job, its config and every layer, into ``to`` as ``name:tag`` through the registry API."""
    _, manifest = job.registry.manifest(job.name, tag)
    blobs = [manifest["config"], *manifest["layers"]]  # type: ignore[list-item]
    for blob in blobs:
        data = job.registry.blob(job.name, blob["digest"])  # type: ignore[index]
        started = requests.post(f"{to.url}/{name}/blobs/uploads/", auth=to.auth, timeout=10)
        params = {"digest": blob["digest"]}  # type: ignore[index]
        headers = {"Content-Type": "application/octet-stream"}
        done = requests.put(
            started.headers["Location"], params=params, data=data, auth=to.auth, headers=headers, timeout=60
        )
        assert done.status_code == 201, done.text
    headers = {"Content-Type": str(manifest["mediaType"])}
    put = requests.put(
        f"{to.url}/{name}/manifests/{tag}", data=json.dumps(manifest), auth=to.auth, timeout=10, headers=headers
    )
    assert put.status_code == 201, put.text


def test_an_image_in_a_registry_that_wants_a_login_is_read_with_the_engines_credentials(
    job: Job, locked: Registry, tmp_path: Path
) -> None:
    copy_image(job, "a-arm32v7", locked, "team/rpi")
    name = f"{locked.host}/team/rpi:a-arm32v7"
    nobody = job.verify(name)
    assert nobody.returncode == 3, nobody.stdout + nobody.stderr
    assert (
        f"cannot tell: cannot read {name} from the registry: registry {locked.host} answered HTTP 401" in nobody.stdout
    )
    config = tmp_path / "logged-in"
    config.mkdir()
    login = base64.b64encode(":".join(locked.auth or ()).encode()).decode()
    (config / "config.json").write_text(json.dumps({"auths": {locked.host: {"auth": login}}}))
    args = ("verify", name, "--mirror", job.mirror, "--keyring", str(job.key.keyring))
    result = run_xcompile(*args, env={**job.env, "DOCKER_CONFIG": str(config)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert " verified: the base's layers unchanged" in result.stdout
    assert (locked.auth or ("", ""))[1] not in result.stdout + result.stderr


# --- hostile top layers, through the command ------------------------------------------------------


def hostile(kind: str) -> bytes:
    """A top layer of one hostile kind, as the registry stores it."""
    if kind == "oversized":
        return os.urandom(toplayer.MAX_LAYER + 1)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as made:
        info = tarfile.TarInfo("usr/bin/../../etc/passwd" if kind == "climbs" else "usr/bin/qemu-arm-static")
        if kind == "link":
            info.type, info.linkname = tarfile.SYMTYPE, "/bin/sh"
        made.addfile(info)
    if kind != "bomb":
        return gzip.compress(raw.getvalue())
    squeeze = zlib.compressobj(9, zlib.DEFLATED, 31)  # the tar, then 800 MiB of zeros: under 1 MB gzipped
    zeros = bytes(8 << 20)
    return b"".join([squeeze.compress(raw.getvalue()), *(squeeze.compress(zeros) for _ in range(100)), squeeze.flush()])


@pytest.mark.parametrize(
    ("kind", "said"),
    [
        ("climbs", "holds a path that climbs out of the image's root, 'usr/bin/../../etc/passwd'"),
        ("link", "holds a link, 'usr/bin/qemu-arm-static' -> '/bin/sh'"),
        ("bomb", f"unpacks to more than {toplayer.MAX_UNPACKED >> 20} MiB (a gzip bomb?); not read on"),
        ("oversized", "is 67.1 MB, above the 64 MiB a qemu layer may be; not read"),
    ],
)
def test_a_hostile_top_layer_is_refused_in_one_line(job: Job, kind: str, said: str) -> None:
    top = hostile(kind)
    result = job.verify(craft(job, kind, top=top, diff_id="sha256:" + "0" * 64))
    assert result.returncode == 1, result.stdout + result.stderr
    [line] = lines(result)
    digest = "sha256:" + hashlib.sha256(top).hexdigest()
    assert line.endswith(f"  linux/arm/v7  differs: the top layer {digest} {said}"), line
    assert "Traceback" not in result.stderr


def test_verify_without_an_image_or_with_a_bad_name_is_exit_2_before_any_read(user_env: dict[str, str]) -> None:
    none = run_xcompile("verify", env=user_env)
    assert (none.returncode, none.stdout) == (2, ""), none.stderr
    assert (
        none.stderr == "xcompile: error: verify needs at least one image — e.g. `xcompile verify HOST/team/app:3.7`\n"
    )
    # The registry on this port would be read first (exit 3) were the names not all checked before any read.
    bad = run_xcompile("verify", f"127.0.0.1:{free_port()}/team/app:1", "Team/App:1", env=user_env)
    assert (bad.returncode, bad.stdout) == (2, ""), bad.stderr
    assert bad.stderr.startswith("xcompile: error: verify: invalid image 'Team/App' — use lowercase")
