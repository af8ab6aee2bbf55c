"""Several architectures, and the proof of every image, end to end against the
real daemon and registry, with the host's binfmt registrations set up by each
test (Debian's default with the F flag, without it as on older hosts, and the
odd ones) and restored afterwards."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from conftest import Registry, run_xcompile
from hostbinfmt import ARM, ARM64, removed, replaced, seed_world

from integration.test_e2e import layer_file


def build(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_xcompile("build", *args, cwd=cwd, env=env)


@pytest.fixture
def two_arch_env(user_env: dict[str, str], armhf_base: str, arm64_base: str) -> dict[str, str]:
    # Per-arch bases, as a user would set them for images not on Docker Hub.
    return {**user_env, "XCOMPILE_BASE_ARM32V7": armhf_base, "XCOMPILE_BASE_ARM64V8": arm64_base}


@pytest.mark.parametrize("host_binfmt", ["debian", "seed"], indirect=True)
def test_two_arches_push_verified_images_and_a_manifest_list(
    host_binfmt: str, registry: Registry, two_arch_env: dict[str, str], tmp_path: Path
) -> None:
    name = f"multi-{host_binfmt}/rpi"
    repo = f"{registry.host}/{name}"
    args = ["--arch", "arm32v7", "--arch", "aarch64", "--repo", repo, "--tag", "3.7", "--report", "r.json"]
    result = build(*args, env=two_arch_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(registry.tags(name)) == ["3.7", "3.7-arm32v7", "3.7-arm64v8"]

    for arch in (ARM, ARM64):
        _, manifest = registry.manifest(name, f"3.7-{arch.name}")
        config = json.loads(registry.blob(name, manifest["config"]["digest"]))  # type: ignore[index]
        assert (config["architecture"], config.get("variant")) == (arch.architecture, arch.variant)
        host_qemu = Path("/usr/bin", arch.qemu_binary).read_bytes()
        assert layer_file(registry, name, manifest, arch.qemu_path_in_image.lstrip("/")) == host_qemu
        # The proof ran: uname under emulation, before the push.
        assert re.search(
            rf"\[3\.7-{arch.name}\] \+ docker run --rm --name xcompile-proof-[0-9a-f]{{12}}"
            rf" --network none --platform {arch.platform} ",
            result.stderr,
        ), result.stderr[-3000:]

    digest, index = registry.manifest(name, "3.7")
    assert index["mediaType"] == "application/vnd.docker.distribution.manifest.list.v2+json"
    platforms_in_list = [m["platform"] for m in index["manifests"]]  # type: ignore[index, union-attr]
    assert {(p["architecture"], p.get("variant")) for p in platforms_in_list} == {("arm", "v7"), ("arm64", "v8")}
    report = json.loads((tmp_path / "r.json").read_text())
    assert [(i["name"], i["status"]) for i in report["images"]] == [
        (f"{repo}:3.7-arm32v7", "pushed"),
        (f"{repo}:3.7-arm64v8", "pushed"),
        (f"{repo}:3.7", "pushed"),
    ]
    assert report["images"][2]["digest"] == digest
    if host_binfmt == "debian":
        assert "has the F flag, so the image would run here even without qemu inside" in result.stderr
    else:
        assert "(no F) looks for /usr/bin/qemu-aarch64-static inside the container, where the image has it" in (
            result.stderr
        )


def test_no_manifest_pushes_only_the_per_arch_tags(
    registry: Registry, two_arch_env: dict[str, str], tmp_path: Path
) -> None:
    repo = f"{registry.host}/nomanifest/rpi"
    arches = ["--arch", "arm32v7", "--arch", "arm64v8"]
    result = build(
        *arches, "--repo", repo, "--tag", "a", "--no-manifest", "--no-verify", env=two_arch_env, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(registry.tags("nomanifest/rpi")) == ["a-arm32v7", "a-arm64v8"]
    assert "docker manifest" not in result.stderr and "docker run" not in result.stderr


def test_interpreter_elsewhere_gets_a_copy_there(
    registry: Registry, armhf_base: str, user_env: dict[str, str], tmp_path: Path
) -> None:
    """No F, interpreter at another path: the image carries qemu there too, and runs."""
    repo = f"{registry.host}/elsewhere/rpi"
    entry = seed_world(ARM, interpreter="/usr/local/bin/qemu-arm-static")
    with replaced(entry):
        result = build("--base", armhf_base, "--repo", repo, "--tag", "a", env=user_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "looks for /usr/local/bin/qemu-arm-static inside the container; qemu is placed there too" in result.stderr
    _, manifest = registry.manifest("elsewhere/rpi", "a")
    assert layer_file(registry, "elsewhere/rpi", manifest, "usr/local/bin/qemu-arm-static") == (
        Path("/usr/bin/qemu-arm-static").read_bytes()
    )


def test_debian_binfmt_p_path_gets_a_copy(
    registry: Registry, armhf_base: str, user_env: dict[str, str], tmp_path: Path
) -> None:
    """No F but P, at Debian's -binfmt-P name: qemu serves there under that name."""
    repo = f"{registry.host}/binfmtp/rpi"
    entry = seed_world(ARM, interpreter="/usr/libexec/qemu-binfmt/arm-binfmt-P", flags="P")
    with replaced(entry):
        result = build("--base", armhf_base, "--repo", repo, "--tag", "a", env=user_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "looks for /usr/libexec/qemu-binfmt/arm-binfmt-P inside the container; qemu is placed there too" in (
        result.stderr
    )
    _, manifest = registry.manifest("binfmtp/rpi", "a")
    assert layer_file(registry, "binfmtp/rpi", manifest, "usr/libexec/qemu-binfmt/arm-binfmt-P") is not None


@pytest.mark.parametrize(
    ("setup", "note"),
    [
        ("lost", "no binfmt entry qemu-arm, so linux/arm/v7 images cannot run here — run `xcompile doctor --fix`"),
        ("wrapper", "runs /usr/local/bin/qemu-arm-wrapper with the P flag, a wrapper that qemu cannot stand in for"),
    ],
)
def test_a_host_that_cannot_run_the_image_still_proves_the_qemu_that_ships(
    registry: Registry, armhf_base: str, user_env: dict[str, str], tmp_path: Path, setup: str, note: str
) -> None:
    """The proof runs the image's own qemu as its entrypoint, so it needs no binfmt entry: the
    image is proven for the hosts it is made for, and the note says this host cannot run it."""
    repo = f"{registry.host}/unrunnable-{setup}/rpi"
    if setup == "lost":  # registrations lost, e.g. after a reboot
        context = removed(ARM.binfmt_name)
    else:
        context = replaced(seed_world(ARM, interpreter="/usr/local/bin/qemu-arm-wrapper", flags="P"))
    with context:
        result = build("--base", armhf_base, "--repo", repo, "--tag", "a", env=user_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert note in result.stderr
    assert "--entrypoint /usr/bin/qemu-arm-static" in result.stderr
    row = result.stdout.splitlines()[1].split()
    assert (row[0], row[2]) == (f"{repo}:a", "pushed")
    assert registry.tags(f"unrunnable-{setup}/rpi") == ["a"]
