"""The proof at the cost of one run, every way it fails an image, with the real daemon and registry.

Where the build must come out wrong (qemu missing or different), a docker shim on PATH changes
the build context or Dockerfile before the real docker builds it, as a broken builder would."""

from __future__ import annotations

import contextlib
import shutil
import struct
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Registry, docker, run_xcompile

from xcompile.host import platforms

ARM = platforms.get("arm32v7")
# Each integration test sets up the binfmt state it asserts in.
BUILDS_HERE = pytest.mark.parametrize("host_binfmt", ["debian", "seed"], indirect=True)
DEBIAN = pytest.mark.parametrize("host_binfmt", ["debian"], indirect=True)


# --- integration: real daemon, real registry ------------------------------------


def arm_loop() -> bytes:
    """A static 32-bit ARM program that never ends: one instruction, `b .` (an ELF of 88 bytes)."""
    entry = 0x10054
    header = b"\x7fELF" + bytes([1, 1, 1, 0]) + bytes(8)
    header += struct.pack("<HHIIIIIHHHHHH", 2, 40, 1, entry, 52, 0, 0x05000400, 52, 32, 1, 40, 0, 0)
    load = struct.pack("<IIIIIIII", 1, 0, 0x10000, 0x10000, 0x58, 0x58, 5, 0x10000)
    return header + load + struct.pack("<I", 0xEAFFFFFE)


def docker_shim(tmp_path: Path, on_build: str) -> str:
    """A PATH entry whose `docker` runs ``on_build`` (sh, with the build's argv) before a real build."""
    shim = tmp_path / "shim"
    shim.mkdir()
    real = shutil.which("docker")
    (shim / "docker").write_text(f'#!/bin/sh\nif [ "$1" = build ]; then\n{on_build}\nfi\nexec {real} "$@"\n')
    (shim / "docker").chmod(0o755)
    return str(shim)


def build_a(
    base: str, registry: Registry, name: str, env: dict[str, str], cwd: Path, *extra: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """xcompile building tag ``a`` of ``base`` (named without its tag) into ``registry`` as ``name``."""
    return run_xcompile(
        "--base", base, "--repo", f"{registry.host}/{name}", "--tag", "a", *extra, env=env, cwd=cwd, timeout=timeout
    )


def refused(result: subprocess.CompletedProcess[str], registry: Registry, name: str, error: str) -> None:
    assert result.returncode == 1, result.stderr[-2000:]
    assert f"{registry.host}/{name}:a: {error}" in result.stdout, result.stdout
    assert registry.tags(name) == []
    assert "docker push" not in result.stderr


@DEBIAN
@pytest.mark.parametrize(
    ("on_build", "error"),
    [
        # The context's last argument; its qemu is swapped for another emulator before the build.
        (
            'for ctx; do :; done; cp /usr/bin/qemu-aarch64-static "$ctx/qemu-layer/usr/bin/qemu-arm-static"',
            "/usr/bin/qemu-arm-static in the image is not the qemu that was copied in",
        ),
        # The Dockerfile (after -f) loses its COPY line before the build.
        (
            'prev=; for arg; do [ "$prev" = -f ] && sed -i "/^COPY/d" "$arg"; prev=$arg; done',
            "/usr/bin/qemu-arm-static is missing from the image",
        ),
    ],
    ids=["different", "missing"],
)
def test_qemu_different_or_missing_in_the_image_is_refused(
    host_binfmt: str,
    registry: Registry,
    armhf_base: str,
    user_env: dict[str, str],
    tmp_path: Path,
    on_build: str,
    error: str,
) -> None:
    env = {**user_env, "PATH": f"{docker_shim(tmp_path, on_build)}:{user_env['PATH']}"}
    name = f"proof-{uuid.uuid4().hex[:6]}/qemu"
    result = build_a(armhf_base, registry, name, env, tmp_path)
    refused(result, registry, name, error)


@contextlib.contextmanager
def scratch_base(
    tmp_path: Path, armhf_base: str, built: str, copies: dict[str, str], scripts: dict[str, str | bytes] | None = None
) -> Iterator[str]:
    """An armhf image FROM scratch holding only busybox, under the names given
    (no shell unless asked), and the executable files given (path: text or bytes).
    Yields its name without the tag (a); afterwards it and ``built``, the image
    made from it, are removed."""
    ref = f"xcompile-test-{uuid.uuid4().hex[:8]}/noshell:a"
    context = tmp_path / "noshell"
    context.mkdir()
    lines = ["FROM scratch"] + [f"COPY --from={armhf_base}:a {src} {dst}" for dst, src in copies.items()]
    for number, (dst, text) in enumerate((scripts or {}).items()):
        if isinstance(text, bytes):
            (context / f"script{number}").write_bytes(text)
        else:
            (context / f"script{number}").write_text(text)
        (context / f"script{number}").chmod(0o755)
        lines.append(f"COPY script{number} {dst}")
    (context / "Dockerfile").write_text("\n".join(lines) + "\n")
    docker("build", "-q", "--platform", ARM.platform, "-t", ref, str(context))
    try:
        yield ref.rsplit(":", 1)[0]
    finally:
        docker("rmi", ref, built, check=False)


@BUILDS_HERE
def test_image_without_a_shell_is_proven_with_uname(
    host_binfmt: str, registry: Registry, armhf_base: str, user_env: dict[str, str], tmp_path: Path
) -> None:
    name = f"proof-{uuid.uuid4().hex[:6]}/noshell"
    with scratch_base(tmp_path, armhf_base, f"{registry.host}/{name}:a", {"/bin/uname": "/bin/busybox"}) as base:
        result = build_a(base, registry, name, user_env, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    # The image's own qemu runs its uname: no shell, no python3, and no binfmt entry needed.
    assert "--entrypoint /usr/bin/qemu-arm-static" in result.stderr and " /bin/uname -m" in result.stderr
    assert registry.tags(name) == ["a"]


@DEBIAN
def test_image_with_nothing_to_run_is_refused(
    host_binfmt: str, registry: Registry, armhf_base: str, user_env: dict[str, str], tmp_path: Path
) -> None:
    name = f"proof-{uuid.uuid4().hex[:6]}/nothing"
    with scratch_base(tmp_path, armhf_base, f"{registry.host}/{name}:a", {"/bin/busybox": "/bin/busybox"}) as base:
        result = build_a(base, registry, name, user_env, tmp_path)
    nothing = "the image has none of /usr/local/bin/python3, /usr/bin/python3, /bin/uname, /usr/bin/uname"
    refused(result, registry, name, f"{nothing} to prove that it runs")


@DEBIAN
def test_a_proof_run_that_does_not_end_fails_its_image_and_leaves_no_container(
    host_binfmt: str, registry: Registry, armhf_base: str, user_env: dict[str, str], tmp_path: Path
) -> None:
    # An image whose `uname` never ends (an ARM loop), run by its qemu as the
    # container's PID 1, which ignores the SIGTERM that the stopped `docker run` passes on.
    shell = {"/bin/busybox": "/bin/busybox", "/bin/sh": "/bin/busybox"}
    hangs: dict[str, str | bytes] = {"/bin/uname": arm_loop()}
    name = f"proof-{uuid.uuid4().hex[:6]}/hangs"
    built = f"{registry.host}/{name}:a"
    with scratch_base(tmp_path, armhf_base, built, shell, hangs) as base:
        result = build_a(base, registry, name, user_env, tmp_path, "--proof-timeout", "5", timeout=120)
        containers = docker("ps", "-a", "--filter", f"ancestor={built}", "-q").stdout.split()
    refused(result, registry, name, "the proof's emulated run of the image did not end: timed out after 5 s")
    assert " /bin/uname -m" in result.stderr and "+ docker rm --force xcompile-proof-" in result.stderr
    assert containers == []


@BUILDS_HERE
def test_the_proof_is_one_inspect_and_one_run(
    host_binfmt: str, registry: Registry, armhf_base: str, user_env: dict[str, str], tmp_path: Path
) -> None:
    name = f"proof-{uuid.uuid4().hex[:6]}/one"
    result = build_a(armhf_base, registry, name, user_env, tmp_path)
    docker("rmi", f"{registry.host}/{name}:a", check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    commands = [line.split("+ ", 1)[1] for line in result.stderr.splitlines() if line.startswith("[a] + docker ")]
    # The proof is what follows the build (before it, the name's old image ID is looked up).
    commands = commands[next(i for i, command in enumerate(commands) if command.startswith("docker build")) :]
    built = f"{registry.host}/{name}:a"
    verbs = [command.split()[1] for command in commands if command.split()[-1] == built or f" {built} " in command]
    assert verbs.count("run") == 1 and verbs.count("image") == 1, commands
    assert "create" not in verbs and "cp" not in verbs  # qemu's bytes were read natively
