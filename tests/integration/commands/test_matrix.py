"""Beyond one machine: `build --only` cells of `xcompile matrix` run as separate processes with
separate DOCKER_CONFIGs (stand-ins for CI runners), then `xcompile join`, against the real daemon and
registry. amd64 runs natively here; arm32v7 and arm64v8 under emulation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cells import ARCHES, TAGS, arch_of, list_platforms, project, runner_env
from conftest import Registry, docker, run_xcompile, with_buildx

from xcompile.host import platforms

UNAME = {"amd64": "x86_64", "arm32v7": "armv7l", "arm64v8": "aarch64"}


# --- cells on separate runners, then the join ----------------------------------------------------


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
