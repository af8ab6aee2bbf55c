"""The proof proves the qemu that ships, and runs the user's own command.

Each test sets up the host's binfmt state it asserts in (host_binfmt), builds
with the real daemon and pushes to the real registry.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import uuid
from pathlib import Path

import pytest
from conftest import CACHE, Registry, run_xcompile, session_container_ids
from pytest_httpserver import HTTPServer

DEBIAN = pytest.mark.parametrize("host_binfmt", ["debian"], indirect=True)
SEED = pytest.mark.parametrize("host_binfmt", ["seed"], indirect=True)


def build(
    base: str, registry: Registry, name: str, env: dict[str, str], cwd: Path, *extra: str, tag: str = "a"
) -> subprocess.CompletedProcess[str]:
    return run_xcompile(
        "--base", base, "--repo", f"{registry.host}/{name}", "--tag", tag, *extra, env=env, cwd=cwd, timeout=300
    )


def static_busybox(tmp_path: Path) -> bytes:
    """A static x86_64 program that is not qemu: Debian's busybox-static for amd64."""
    (deb,) = sorted(CACHE.glob("busybox-static_*_amd64.deb"))[-1:]
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp_path / "bb")], check=True)
    return (tmp_path / "bb/bin/busybox").read_bytes()


@DEBIAN
def test_a_broken_qemu_that_ships_fails_under_a_healthy_f_entry(
    host_binfmt: str,
    registry: Registry,
    armhf_base: str,
    user_env: dict[str, str],
    tmp_path: Path,
    httpserver: HTTPServer,
) -> None:
    """With F the host's qemu would run the image anyway; the proof runs the shipped one, which is not qemu."""
    broken = static_busybox(tmp_path)
    httpserver.expect_request("/qemu-arm-static").respond_with_data(broken)
    url = httpserver.url_for("/qemu-arm-static")
    name = f"proof-{uuid.uuid4().hex[:6]}/broken"
    qemu = ["--qemu-source", "download", "--qemu-url", url, "--qemu-sha256", hashlib.sha256(broken).hexdigest()]
    result = build(armhf_base, registry, name, user_env, tmp_path, *qemu)
    assert result.returncode == 1, result.stderr[-2000:]
    assert (
        f"{registry.host}/{name}:a: the image's own qemu (/usr/bin/qemu-arm-static) does not run its /bin/uname:"
        " qemu-arm-static: applet not found"
    ) in result.stdout
    assert registry.tags(name) == [] and "docker push" not in result.stderr
    # The real qemu, under the same entry, passes.
    good = build(armhf_base, registry, name, user_env, tmp_path)
    assert good.returncode == 0, good.stderr[-2000:]
    assert registry.tags(name) == ["a"]


def project(folder: Path, registry: Registry, name: str, base: str, lines: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "setup.cfg").write_text(
        f"[xcompile]\nbase = {base}\nrepo = {registry.host}/{name}\ntags = a\nproof_timeout = 5\n{lines}"
    )
    return folder


@SEED
def test_a_failing_or_hanging_proof_command_fails_its_image_and_pushes_nothing(
    host_binfmt: str, registry: Registry, armhf_base: str, user_env: dict[str, str], tmp_path: Path
) -> None:
    name = f"proof-{uuid.uuid4().hex[:6]}/cmd"
    folder = project(tmp_path / "fails", registry, name, armhf_base, "proof_command = echo first; echo last; exit 3\n")
    report = tmp_path / "report.json"
    result = run_xcompile("--report", str(report), cwd=folder, env=user_env)
    assert result.returncode == 1, result.stderr[-2000:]
    assert (
        f"{registry.host}/{name}:a: the proof command `echo first; echo last; exit 3` exited 3;"
        " last output: first | last"
    ) in result.stdout
    assert registry.tags(name) == []
    (image,) = json.loads(report.read_text())["images"]  # the report keeps how the command ended
    assert image["status"] == "failed"
    assert (image["proof_command"]["command"], image["proof_command"]["exit"]) == ("echo first; echo last; exit 3", 3)
    hangs = project(tmp_path / "hangs", registry, name, armhf_base, "proof_command = /bin/busybox sleep 600\n")
    result = run_xcompile("--report", str(report), cwd=hangs, env=user_env, timeout=120)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "the proof command `/bin/busybox sleep 600` did not end: timed out after 5 s" in result.stdout
    (image,) = json.loads(report.read_text())["images"]
    assert image["proof_command"]["exit"] is None and image["proof_command"]["seconds"] >= 5
    assert "+ docker rm --force xcompile-proof-" in result.stderr
    assert session_container_ids("xcompile-proof-") == set()
    assert registry.tags(name) == []


@pytest.mark.parametrize(
    ("host_binfmt", "under"),
    [
        ("debian", "the host's qemu (qemu-arm version "),
        ("seed", "the shipped qemu (binfmt qemu-arm has no F flag: the kernel runs /usr/bin/qemu-arm-static in"),
    ],
    indirect=["host_binfmt"],
)
def test_a_passing_proof_command_is_recorded_with_the_qemu_that_ran_it(
    host_binfmt: str, under: str, registry: Registry, armhf_base: str, user_env: dict[str, str], tmp_path: Path
) -> None:
    name = f"proof-{uuid.uuid4().hex[:6]}/ok"
    folder = project(tmp_path / "p", registry, name, armhf_base, 'proof_command = test "$(uname -m)" = armv7l\n')
    report = tmp_path / "report.json"
    result = run_xcompile("--report", str(report), cwd=folder, env=user_env)
    assert result.returncode == 0, result.stderr[-2000:]
    (image,) = json.loads(report.read_text())["images"]
    run = image["proof_command"]
    assert (run["command"], run["exit"]) == ('test "$(uname -m)" = armv7l', 0)
    assert run["seconds"] > 0 and run["qemu"].startswith(under), run
    assert registry.tags(name) == ["a"]
    if host_binfmt == "debian":
        # F: the host's qemu ran it, and here that is the same file the image ships (PATH's qemu-arm-static).
        assert run["qemu"].endswith("binfmt qemu-arm with F: the same bytes as the shipped one)")
        assert f"{registry.host}/{name}:a: its proof command ran under the host's qemu" in result.stdout
    else:
        assert "its proof command ran under" not in result.stdout


@pytest.mark.parametrize("host_binfmt", ["debian"], indirect=True)
def test_a_per_arch_proof_command_applies_to_that_arch_only(
    host_binfmt: str, registry: Registry, armhf_base: str, arm64_base: str, user_env: dict[str, str], tmp_path: Path
) -> None:
    name = f"proof-{uuid.uuid4().hex[:6]}/arch"
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "setup.cfg").write_text(
        f"[xcompile]\nbase_arm32v7 = {armhf_base}\nbase_arm64v8 = {arm64_base}\narches = arm32v7 arm64v8\n"
        f"repo = {registry.host}/{name}\ntags = a\nkeep_going = true\n"
        "proof_command = uname -m\nproof_command_arm64v8 = exit 3\n"
    )
    result = run_xcompile(cwd=folder, env=user_env)
    assert result.returncode == 1, result.stderr[-2000:]
    rows = {row.split()[0]: row.split()[2] for row in result.stdout.splitlines()[1:3]}
    assert rows == {f"{registry.host}/{name}:a-arm32v7": "pushed", f"{registry.host}/{name}:a-arm64v8": "failed"}
    assert f"{registry.host}/{name}:a-arm64v8: the proof command `exit 3` exited 3" in result.stdout
    assert registry.tags(name) == ["a-arm32v7"]


@pytest.mark.parametrize("host_binfmt", ["none"], indirect=True)
def test_a_proof_command_needs_a_binfmt_entry_and_says_so(
    host_binfmt: str, registry: Registry, armhf_base: str, user_env: dict[str, str], tmp_path: Path
) -> None:
    """The machine probe needs no entry; a command that starts programs does."""
    name = f"proof-{uuid.uuid4().hex[:6]}/noentry"
    result = build(armhf_base, registry, name, user_env, tmp_path, "--proof-command", "true")
    assert result.returncode == 1, result.stderr[-2000:]
    assert "--entrypoint /usr/bin/qemu-arm-static" in result.stderr  # the probe ran, and passed
    assert (
        f"{registry.host}/{name}:a: the proof command `true` cannot start here: exec format error, so this host"
        " has no working binfmt entry for arm32v7"
    ) in result.stdout
    assert registry.tags(name) == []


@DEBIAN
@pytest.mark.parametrize("verbose", [False, True])
def test_secrets_in_a_failing_proof_command_and_its_output_reach_neither_the_screen_nor_the_report(
    verbose: bool, host_binfmt: str, registry: Registry, armhf_base: str, user_env: dict[str, str], tmp_path: Path
) -> None:
    """A token in a URL's userinfo or query, and an Authorization line the command prints, were written
    whole into the report's error and proof_command and onto the screen (issue 27)."""
    name = f"proof-{uuid.uuid4().hex[:6]}/secret"
    command = (
        "echo get https://tok:S3CRET-USER@example.invalid/x?token=S3CRET-QUERY && "
        "echo 'Authorization: token S3CRET-HEADER' && exit 4"
    )
    folder = project(tmp_path / "p", registry, name, armhf_base, f"proof_command = {command}\n")
    report = tmp_path / "report.json"
    result = run_xcompile(*(["-v"] if verbose else []), "--report", str(report), cwd=folder, env=user_env)
    assert result.returncode == 1, result.stderr[-2000:]
    shown = "echo get https://example.invalid/x && echo 'Authorization: <hidden>' && exit 4"
    said = "get https://example.invalid/x | Authorization: <hidden>"
    assert f"{registry.host}/{name}:a: the proof command `{shown}` exited 4; last output: {said}" in result.stdout
    assert "[a] Authorization: <hidden>" in result.stderr.splitlines()
    (image,) = json.loads(report.read_text())["images"]
    assert (image["proof_command"]["command"], image["proof_command"]["exit"]) == (shown, 4)
    assert image["error"] == f"the proof command `{shown}` exited 4; last output: {said}"
    for where in (report.read_bytes(), result.stdout.encode(), result.stderr.encode()):
        assert b"S3CRET" not in where and b"tok:" not in where
    assert registry.tags(name) == []
