"""Beyond one machine: `xcompile matrix`, `build --only` cells run as separate
processes with separate DOCKER_CONFIGs (stand-ins for CI runners), and
`xcompile join`, against the real daemon and registry. amd64 runs natively
here; arm32v7 and arm64v8 under emulation."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from conftest import REPO, Registry, docker, remove_local_images, run_xcompile, with_buildx

from xcompile.host import platforms

ARCHES = ("amd64", "arm32v7", "arm64v8")
TAGS = ("3.7", "3.7-slim")
UNAME = {"amd64": "x86_64", "arm32v7": "armv7l", "arm64v8": "aarch64"}


def project(folder: Path, repo: str, bases: dict[str, str], tags: tuple[str, ...] = TAGS) -> Path:
    """A project folder whose setup.cfg asks for tags x arches, with per-arch bases."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["[xcompile]", f"repo = {repo}", f"tags = {' '.join(tags)}", f"arches = {' '.join(ARCHES)}"]
    lines += [f"base_{arch} = {base}" for arch, base in bases.items()]
    (folder / "setup.cfg").write_text("\n".join(lines) + "\n")
    return folder


def runner_env(user_env: dict[str, str], tmp_path: Path, name: str) -> dict[str, str]:
    """A CI runner of its own: its own docker config and temp folder."""
    (tmp_path / name / "tmp").mkdir(parents=True)
    return {**user_env, "DOCKER_CONFIG": str(tmp_path / name / "docker"), "TMPDIR": str(tmp_path / name / "tmp")}


def list_platforms(registry: Registry, name: str, tag: str) -> dict[str, str]:
    """platform (os/architecture[/variant]) -> member digest of a manifest list."""
    _, index = registry.manifest(name, tag)
    assert index["mediaType"] in (
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.index.v1+json",
    ), index
    found = {}
    for member in index["manifests"]:  # type: ignore[union-attr]
        p = member["platform"]
        found["/".join(x for x in (p["os"], p["architecture"], p.get("variant")) if x)] = member["digest"]
    return found


def arch_of(platform: str) -> str:
    """The row a list's platform names (arm64 with or without v8)."""
    os_, architecture, variant = [*platform.split("/"), ""][:3]
    (row,) = [a for a in ARCHES if platforms.get(a).matches(os_, architecture, variant)]
    return row


@pytest.fixture
def bases(amd64_base: str, armhf_base: str, arm64_base: str) -> dict[str, str]:
    return {"amd64": amd64_base, "arm32v7": armhf_base, "arm64v8": arm64_base}


@pytest.fixture
def prefix(registry: Registry) -> Iterator[str]:
    """A unique namespace in the registry; local images under it go afterwards."""
    name = f"matrix-{uuid.uuid4().hex[:8]}"
    yield name
    remove_local_images(f"{registry.host}/{name}/")


# --- matrix: no docker needed -------------------------------------------------------------------


def test_matrix_lists_the_configured_cells_in_both_formats(tmp_path: Path, user_env: dict[str, str]) -> None:
    folder = project(tmp_path / "p", "127.0.0.1:5000/team/py", {})
    listed = run_xcompile("matrix", cwd=folder, env=user_env)
    assert listed.returncode == 0, listed.stderr
    cells = [{"tag": t, "arch": a, "only": f"{t}/{a}", "qemu_host": "amd64"} for t in TAGS for a in ARCHES]
    assert json.loads(listed.stdout) == cells
    github = run_xcompile("matrix", "--format", "github", cwd=folder, env=user_env)
    assert github.returncode == 0
    assert len(github.stdout.splitlines()) == 1  # one line, for $GITHUB_OUTPUT
    assert json.loads(github.stdout) == {"include": cells}
    lines = run_xcompile("matrix", "--format", "lines", "--tag", "x", "--arch", "aarch64", cwd=folder, env=user_env)
    assert lines.stdout == "x/arm64v8\n"
    bad = run_xcompile("matrix", "--format", "yaml", cwd=folder, env=user_env)
    assert (bad.returncode, bad.stderr) == (
        2,
        "xcompile: error: --format: expected one of json, github, lines, got 'yaml'\n",
    )


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        (
            "3.8/amd64",
            "xcompile: error: --only 3.8/amd64: not a configured cell — valid cells: 3.7/amd64, 3.7/arm32v7,"
            " 3.7/arm64v8, 3.7-slim/amd64, 3.7-slim/arm32v7, 3.7-slim/arm64v8\n",
        ),
        ("3.7/i386", "xcompile: error: --only 3.7/i386: not a configured cell — valid cells: 3.7/amd64,"),
        ("3.7", "xcompile: error: --only: expected TAG/ARCH, got '3.7'\n"),
        ("3.7/sparc", "xcompile: error: unknown architecture 'sparc'"),
    ],
)
def test_only_an_unconfigured_cell_is_exit_2(tmp_path: Path, user_env: dict[str, str], cell: str, message: str) -> None:
    folder = project(tmp_path / "p", "127.0.0.1:5000/team/py", {})
    result = run_xcompile("build", "--only", cell, cwd=folder, env=user_env)
    assert result.returncode == 2
    assert result.stderr.startswith(message), result.stderr
    assert result.stdout == ""


def test_only_plans_its_cells_and_no_list(tmp_path: Path, user_env: dict[str, str]) -> None:
    folder = project(tmp_path / "p", "127.0.0.1:5000/team/py", {})
    result = run_xcompile("--dry-run", "--only", "3.7/aarch64", "--only", "3.7-slim/amd64", cwd=folder, env=user_env)
    assert result.returncode == 0, result.stderr
    rows = [line.split()[:3] for line in result.stdout.splitlines()[1:]]
    assert rows == [
        ["127.0.0.1:5000/team/py:3.7-arm64v8", "linux/arm64/v8", "planned"],
        ["127.0.0.1:5000/team/py:3.7-slim-amd64", "linux/amd64", "planned"],
    ]
    assert "docker manifest" not in result.stderr and "imagetools" not in result.stderr
    # Only the cells' emulators are settled and copied in: none for arm32v7, which no cell builds.
    assert "xcompile: qemu: /usr/bin/qemu-aarch64-static" in result.stderr
    assert "xcompile: qemu: /usr/bin/qemu-x86_64-static" in result.stderr
    assert "arm32v7" not in result.stderr and "qemu-arm-static" not in result.stderr


# --- cells on separate runners, then the join ----------------------------------------------------


@pytest.mark.integration
# The seed's world (no F): the kernel looks for qemu inside each image, so every
# platform pulled back from a list runs only because its image carries qemu.
@pytest.mark.parametrize("host_binfmt", ["seed"], indirect=True)
def test_three_runners_of_two_cells_then_join(
    host_binfmt: str,
    registry: Registry,
    bases: dict[str, str],
    prefix: str,
    buildx_plugin: Path,
    user_env: dict[str, str],
    tmp_path: Path,
) -> None:
    """2 tags x 3 arches through matrix, three parallel
    processes of two cells each, and join: 2 lists x 3 platforms, each runnable."""
    name = f"{prefix}/py"
    folder = project(tmp_path / "project", f"{registry.host}/{name}", bases)
    listed = run_xcompile("matrix", "--format", "github", cwd=folder, env=user_env)
    cells = [cell["only"] for cell in json.loads(listed.stdout)["include"]]
    assert len(cells) == 6

    # Three runners, each with its own DOCKER_CONFIG; the first has buildx,
    # so its builds go through BuildKit, the others through the classic builder.
    envs = [runner_env(user_env, tmp_path, f"runner{i}") for i in range(3)]
    with_buildx(envs[0], buildx_plugin)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "xcompile", "build", "--only", cells[i], "--only", cells[i + 3]],
            cwd=folder,
            env=envs[i],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    outputs = [proc.communicate(timeout=600) for proc in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-3000:]
        assert "docker manifest" not in err and "imagetools" not in err  # a cell never pushes a list
    # Each runner's share, and no list yet.
    assert sorted(registry.tags(name)) == sorted(f"{t}-{a}" for t in TAGS for a in ARCHES)

    joiner = with_buildx(runner_env(user_env, tmp_path, "join"), buildx_plugin)
    joined = run_xcompile("join", cwd=folder, env=joiner)
    assert joined.returncode == 0, joined.stderr
    assert "join: with docker buildx imagetools" in joined.stderr
    assert sorted(registry.tags(name)) == sorted([*TAGS, *(f"{t}-{a}" for t in TAGS for a in ARCHES)])

    for tag in TAGS:
        members = list_platforms(registry, name, tag)
        assert sorted(arch_of(p) for p in members) == sorted(ARCHES)
        for platform, digest in members.items():
            arch = platforms.get(arch_of(platform))
            # Exactly the part that cell pushed.
            part_digest, _ = registry.manifest(name, f"{tag}-{arch.name}")
            assert digest == part_digest
            # Pulled back from the list for its platform, it runs (amd64
            # natively, the others under emulation) and carries its qemu.
            ref = f"{registry.host}/{name}:{tag}"
            docker("pull", "--platform", arch.platform, ref, timeout=300)
            script = f"uname -m && ls {arch.qemu_path_in_image}"
            ran = docker("run", "--rm", "--platform", arch.platform, ref, "sh", "-c", script, check=False)
            docker("rmi", ref, check=False)
            assert ran.returncode == 0, ran.stderr
            assert ran.stdout.split() == [UNAME[arch.name], arch.qemu_path_in_image]

    # A join run again changes nothing.
    before = {tag: registry.manifest(name, tag)[0] for tag in TAGS}
    again = run_xcompile("join", cwd=folder, env=joiner)
    assert again.returncode == 0, again.stderr
    assert {tag: registry.manifest(name, tag)[0] for tag in TAGS} == before
    assert [line.split()[-2] for line in again.stdout.splitlines()] == ["unchanged", "unchanged"]
    assert "imagetools create" not in again.stderr

    # The same config on one machine: its lists hold the same platforms.
    single = f"{prefix}/single"
    one = project(tmp_path / "one", f"{registry.host}/{single}", bases)
    built = run_xcompile("build", cwd=one, env=runner_env(user_env, tmp_path, "single"))
    assert built.returncode == 0, built.stdout + built.stderr[-3000:]
    for tag in TAGS:
        assert sorted(map(arch_of, list_platforms(registry, single, tag))) == sorted(
            map(arch_of, list_platforms(registry, name, tag))
        )


@pytest.fixture
def parts(registry: Registry, bases: dict[str, str], prefix: str, user_env: dict[str, str], tmp_path: Path) -> Path:
    """A project of one tag whose three parts are pushed (from one runner, --no-verify: fast)."""
    folder = project(tmp_path / "p", f"{registry.host}/{prefix}/py", bases, tags=("a",))
    env = runner_env(user_env, tmp_path, "cells")
    cells = [f"--only=a/{arch}" for arch in ARCHES]
    result = run_xcompile("build", *cells, "--no-verify", cwd=folder, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return folder


@pytest.mark.integration
@pytest.mark.parametrize("tool", ["buildx", "manifest"])
def test_join_checks_every_part_first_and_is_idempotent(
    registry: Registry,
    parts: Path,
    prefix: str,
    buildx_plugin: Path,
    user_env: dict[str, str],
    tmp_path: Path,
    tool: str,
) -> None:
    name = f"{prefix}/py"
    env = runner_env(user_env, tmp_path, "join")
    if tool == "buildx":
        with_buildx(env, buildx_plugin)
    ref = f"{registry.host}/{name}"

    # A missing part: nothing is joined, and the error names it.
    missing = run_xcompile("join", "--tag", "a", "--tag", "b", cwd=parts, env=env)
    assert missing.returncode == 1
    assert missing.stderr.splitlines()[-1].startswith(
        f"xcompile: error: cannot join: {ref}:b-amd64 is not in the registry; {ref}:b-arm32v7 is not in the registry;"
    ), missing.stderr
    assert "a" not in registry.tags(name)

    # A part that is not what its name says: the amd64 image pushed as arm64v8.
    wrong_repo = f"{prefix}/wrong"
    for arch in ARCHES:
        source = f"{ref}:a-amd64" if arch == "arm64v8" else f"{ref}:a-{arch}"
        docker("tag", source, f"{registry.host}/{wrong_repo}:a-{arch}")
        docker("push", f"{registry.host}/{wrong_repo}:a-{arch}", timeout=300)
    wrong = run_xcompile("join", "--repo", f"{registry.host}/{wrong_repo}", cwd=parts, env=env)
    assert wrong.returncode == 1
    assert (
        f"xcompile: error: cannot join: {registry.host}/{wrong_repo}:a-arm64v8 is linux/amd64, not linux/arm64/v8"
        in wrong.stderr
    )
    assert registry.tags(wrong_repo) and "a" not in registry.tags(wrong_repo)

    first = run_xcompile("join", cwd=parts, env=env)
    assert first.returncode == 0, first.stderr
    expected = "join: with docker buildx imagetools" if tool == "buildx" else "join: with docker manifest"
    assert expected in first.stderr
    digest, _ = registry.manifest(name, "a")
    members = list_platforms(registry, name, "a")
    assert sorted(map(arch_of, members)) == sorted(ARCHES)
    assert first.stdout.split()[0] == f"{ref}:a" and first.stdout.split()[-2:] == ["joined", digest]

    second = run_xcompile("join", cwd=parts, env=env)
    assert second.returncode == 0, second.stderr
    assert second.stdout.split()[-2] == "unchanged"
    assert registry.manifest(name, "a")[0] == digest
    assert "create" not in second.stderr and "push" not in second.stderr


OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYERS = {
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar": "application/vnd.oci.image.layer.v1.tar",
}


def put_blob(registry: Registry, name: str, data: bytes) -> dict[str, object]:
    """Upload ``data`` as a blob (POST, then PUT with its digest): its descriptor, without a media type."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    started = requests.post(f"{registry.url}/{name}/blobs/uploads/", timeout=10)
    assert started.status_code == 202, started.text
    location = started.headers["Location"]
    done = requests.put(
        location, params={"digest": digest}, data=data, timeout=30, headers={"Content-Type": "application/octet-stream"}
    )
    assert done.status_code == 201, done.text
    return {"digest": digest, "size": len(data)}


def put_manifest(registry: Registry, name: str, reference: str, manifest: dict[str, object]) -> dict[str, object]:
    """Upload ``manifest`` under ``reference`` (a tag, or its digest): its descriptor."""
    body = json.dumps(manifest, separators=(",", ":")).encode()
    media_type = str(manifest["mediaType"])
    put = requests.put(
        f"{registry.url}/{name}/manifests/{reference}", data=body, timeout=10, headers={"Content-Type": media_type}
    )
    assert put.status_code == 201, put.text
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    assert put.headers["Docker-Content-Digest"] == digest
    return {"mediaType": media_type, "digest": digest, "size": len(body)}


def attest(registry: Registry, name: str, tag: str, source: str | None = None, claim: str | None = None) -> str:
    """Push under ``tag`` what `docker buildx build --provenance=true` (and GitHub's
    build-push-action) push, from the image ``source`` (else ``tag``) holds: an
    OCI index of that image (as an OCI manifest, the same config and layers) and
    an attestation manifest beside it (platform unknown/unknown, one in-toto
    layer, annotated with the image it attests). The index gives the image the
    platform its config says, or ``claim`` (os/architecture/variant). Returns the
    image's digest. BuildKit v0.8 here makes no attestations ("Attestation is
    not supported for the docker driver"), so they go in through the registry API."""
    _, manifest = registry.manifest(name, source or tag)
    config_ref: dict[str, object] = manifest["config"]  # type: ignore[assignment]
    config = json.loads(registry.blob(name, str(config_ref["digest"])))
    layers: list[dict[str, object]] = manifest["layers"]  # type: ignore[assignment]
    as_oci = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {**config_ref, "mediaType": OCI_CONFIG},
        "layers": [{**layer, "mediaType": OCI_LAYERS[str(layer["mediaType"])]} for layer in layers],
    }
    image = put_manifest(registry, name, f"{tag}-image", as_oci)
    provenance = {
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": "https://slsa.dev/provenance/v0.2",
        "subject": [{"name": f"pkg:docker/{name}@{tag}", "digest": {"sha256": str(image["digest"])[7:]}}],
        "predicate": {"buildType": "https://mobyproject.org/buildkit@v1", "builder": {"id": ""}},
    }
    statement = json.dumps(provenance).encode()
    layer = put_blob(registry, name, statement)
    unknown = {"architecture": "unknown", "os": "unknown"}
    rootfs = {"type": "layers", "diff_ids": [layer["digest"]]}
    att_config = put_blob(registry, name, json.dumps({**unknown, "config": {}, "rootfs": rootfs}).encode())
    in_toto = {
        **layer,
        "mediaType": "application/vnd.in-toto+json",
        "annotations": {"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"},
    }
    attests = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {**att_config, "mediaType": OCI_CONFIG},
        "layers": [in_toto],
    }
    attestation = put_manifest(registry, name, f"{tag}-attestation", attests)
    platform = {key: config[key] for key in ("architecture", "os", "variant") if config.get(key)}
    if claim is not None:
        platform = dict(zip(("os", "architecture", "variant"), claim.split("/"), strict=False))
    reference = {"vnd.docker.reference.digest": image["digest"], "vnd.docker.reference.type": "attestation-manifest"}
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {**image, "platform": platform},
            {**attestation, "platform": unknown, "annotations": reference},
        ],
    }
    put_manifest(registry, name, tag, index)
    return str(image["digest"])


@pytest.mark.integration
@pytest.mark.parametrize("tool", ["buildx", "manifest"])
def test_join_takes_the_image_out_of_a_buildkit_index_with_attestations(
    registry: Registry,
    parts: Path,
    prefix: str,
    buildx_plugin: Path,
    user_env: dict[str, str],
    tmp_path: Path,
    tool: str,
) -> None:
    """Two parts pushed as BuildKit pushes with --provenance: the list holds each
    part's platform image, never the index or its attestation manifest, with
    the right platforms; with imagetools, and with `docker manifest` (which
    cannot take an index as a member). The platform is the image config's, not
    the index's: an index that claims arm64 for an amd64 image is refused."""
    name = f"{prefix}/py"
    env = runner_env(user_env, tmp_path, "join")
    if tool == "buildx":
        with_buildx(env, buildx_plugin)
    ref = f"{registry.host}/{name}"
    for arch in ("amd64", "arm32v7"):
        attest(registry, name, f"b-{arch}", source=f"a-{arch}")
    attest(registry, name, "b-arm64v8", source="a-amd64", claim="linux/arm64/v8")
    wrong = run_xcompile("join", "--tag", "b", cwd=parts, env=env)
    assert wrong.returncode == 1, wrong.stderr
    assert wrong.stderr.splitlines()[-1].startswith(
        f"xcompile: error: cannot join: {ref}:b-arm64v8 is linux/amd64, not linux/arm64/v8"
    ), wrong.stderr
    assert "b" not in registry.tags(name)

    expected = {"amd64": registry.manifest(name, "a-amd64")[0]}
    expected |= {arch: attest(registry, name, f"a-{arch}") for arch in ("arm32v7", "arm64v8")}
    assert registry.manifest(name, "a-arm32v7")[1]["mediaType"] == OCI_INDEX

    joined = run_xcompile("join", cwd=parts, env=env)
    assert joined.returncode == 0, joined.stderr
    members = list_platforms(registry, name, "a")
    # arch_of: each platform is its arch's (imagetools spells arm64 without v8, as the config may)
    assert {arch_of(platform): digest for platform, digest in members.items()} == expected
    digest, _ = registry.manifest(name, "a")
    assert joined.stdout.split()[-2:] == ["joined", digest]

    again = run_xcompile("join", cwd=parts, env=env)
    assert again.returncode == 0, again.stderr
    assert again.stdout.split()[-2:] == ["unchanged", digest]


@pytest.mark.integration
def test_amd64_is_native_here_and_doctor_agrees(
    registry: Registry, amd64_base: str, prefix: str, user_env: dict[str, str], tmp_path: Path
) -> None:
    """No false binfmt warning for the host's own arch, in build and in doctor."""
    repo = f"{registry.host}/{prefix}/native"
    built = run_xcompile(
        "build", "--arch", "amd64", "--base", amd64_base, "--repo", repo, "--tag", "a", cwd=tmp_path, env=user_env
    )
    assert built.returncode == 0, built.stderr[-3000:]
    assert "xcompile: amd64: runs natively on this x86_64 host" in built.stderr
    assert "cannot run here" not in built.stderr and "doctor --fix" not in built.stderr
    doctor = run_xcompile("doctor", "--arch", "amd64", "--no-push", cwd=tmp_path, env=user_env)
    binfmt_line = next(line for line in doctor.stdout.splitlines() if "binfmt amd64" in line)
    assert binfmt_line.split(None, 3) == ["pass", "binfmt", "amd64", "runs natively on x86_64"]
    # The image carries its emulator too, for arm64 hosts whose binfmt lacks F.
    ran = docker("run", "--rm", "--platform", "linux/amd64", f"{repo}:a", "ls", "/usr/bin/qemu-x86_64-static")
    assert ran.stdout.strip() == "/usr/bin/qemu-x86_64-static"


def test_ci_examples_call_what_exists() -> None:
    """Neither CI file can run here; what they call must exist as they spell it."""
    workflow = (REPO / ".github/workflows/ci.yml").read_text()
    travis = (REPO / ".travis.yml").read_text()
    for text in (workflow, travis):
        assert "xcompile matrix" in text and "build --only" in text and "xcompile join" in text
    assert "fromJSON(needs.matrix.outputs.cells)" in workflow
    assert "xcompile matrix --format github" in workflow


def test_travis_shards_build_every_cell_of_xcompile_matrix_once(tmp_path: Path) -> None:
    """Travis cannot make jobs from a command's output, so its build jobs are shards of
    `xcompile matrix`: run each shard's script as written, with the build echoed, on a job of
    three tags and three arches; together the shards build every cell once, and the file types in
    no arch, so setup.cfg alone decides the cells."""
    travis = (REPO / ".travis.yml").read_text()
    assert not [arch.name for arch in platforms.ARCHES if re.search(rf"\b{arch.name}\b", travis)]
    script = re.search(r"script: >-\n((?:        .+\n)+)", travis)
    assert script, "no folded build script in .travis.yml"
    loop = " ".join(line.strip() for line in script[1].splitlines())
    shards = sorted(set(re.findall(r"env: SHARD=(\d+) SHARDS=(\d+)", travis)))
    assert len(shards) >= 2 and {n for _, n in shards} == {str(len(shards))}
    (tmp_path / "setup.cfg").write_text(
        "[xcompile]\nimage = python\ntags = 3.9 3.10 3.11\nrepo = 127.0.0.1:5000/team/py\narch = arm32v7 arm64v8 i386\n"
    )
    bin_dir = tmp_path / ".venv/bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "xcompile").write_text(
        f'#!/bin/sh\nif [ "$1" = build ]; then echo "built $3"; else exec {sys.executable} -m xcompile "$@"; fi\n'
    )
    (bin_dir / "xcompile").chmod(0o755)
    built: list[str] = []
    for shard, count in shards:
        env = {**os.environ, "SHARD": shard, "SHARDS": count, "PYTHONPATH": str(REPO)}
        ran = subprocess.run(["bash", "-ec", loop], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert ran.returncode == 0, ran.stderr
        built += [line.removeprefix("built ") for line in ran.stdout.splitlines()]
    cells = run_xcompile("matrix", "--format", "lines", cwd=tmp_path).stdout.split()
    assert len(cells) == 9 and sorted(built) == sorted(cells)


def test_join_with_one_arch_has_nothing_to_do(tmp_path: Path, user_env: dict[str, str]) -> None:
    result = run_xcompile("join", "--arch", "arm32v7", "--repo", "127.0.0.1:5000/x/y", cwd=tmp_path, env=user_env)
    assert (result.returncode, result.stdout) == (0, "")
    assert result.stderr == (
        "xcompile: nothing to join: with one architecture (arm32v7) each tag is pushed as the image itself\n"
    )
