"""`xcompile join` against the real daemon and registry: every part checked first, idempotent, and the
image taken out of a BuildKit index with attestations (whose helpers test_verify.py uses too)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import requests
from cells import ARCHES, arch_of, list_platforms, project, runner_env
from conftest import Registry, docker, run_xcompile, with_buildx


@pytest.fixture
def parts(registry: Registry, bases: dict[str, str], prefix: str, user_env: dict[str, str], tmp_path: Path) -> Path:
    """A project of one tag whose three parts are pushed (from one runner, --no-verify: fast)."""
    folder = project(tmp_path / "p", f"{registry.host}/{prefix}/py", bases, tags=("a",))
    env = runner_env(user_env, tmp_path, "cells")
    cells = [f"--only=a/{arch}" for arch in ARCHES]
    result = run_xcompile("build", *cells, "--no-verify", cwd=folder, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return folder


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
