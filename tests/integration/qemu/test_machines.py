"""Issue 26: the qemu inside is for the machine that will use the image (``--qemu-host``), not
for the machine that builds it. Builds on this x86_64 host for arm64 hosts, with a signed archive
on 127.0.0.1 serving the real amd64 and arm64 qemu-user-static .debs, and prove the aarch64 qemu
through the host's qemu-aarch64 entry."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sysconfig
import tarfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO, Registry, docker, run_xcompile
from debian_archive import (
    QEMU,
    Archive,
    GpgKey,
    deb_fields,
    file_handler,
    key_fixture,
    real_deb,
    real_package,
)
from hostbinfmt import host_state, replaced
from pytest_httpserver import HTTPServer

from integration.test_e2e import layer_file
from xcompile.host import binfmt, elf, platforms
from xcompile.registry import recipe

ARM, ARM64, AMD64 = platforms.get("arm32v7"), platforms.get("arm64v8"), platforms.get("amd64")
SUITE = "bookworm"
EM_AARCH64, EM_X86_64 = 183, 62


# --- integration -------------------------------------------------------------------

key = key_fixture("Qemu Host Archive")


@dataclasses.dataclass
class Mirror:
    url: str
    keyring: Path


def two_arches(root: Path, key: GpgKey) -> None:
    """A signed bookworm under ``root`` with the real qemu-user-static of amd64 and of arm64."""
    for arch in ("amd64", "arm64"):
        deb = real_deb(QEMU, arch)
        archive = Archive(root, suite=SUITE, arch=arch)
        archive.add(deb, package=QEMU, version=deb_fields(deb)["Version"], arch=arch)
        archive.write(key)  # arm64 last: its Release lists both Packages files


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory, key: GpgKey) -> Iterator[Mirror]:
    """bookworm's real qemu-user-static for amd64 and for arm64, signed."""
    root = tmp_path_factory.mktemp("mirror")
    two_arches(root, key)
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.expect_request(re.compile("^/debian/")).respond_with_handler(file_handler(root))
    server.start()
    yield Mirror(server.url_for("/debian"), key.keyring)
    server.stop()


def nested_aarch64(tmp_path: Path) -> binfmt.Entry:
    """qemu-aarch64 with F, at trixie's qemu-aarch64 (10.0): bookworm's (7.2), as the outer qemu of a
    32-bit guest's qemu, fails ("Unable to reserve 0xfffff000 bytes of virtual address space")."""
    deb = real_package("trixie", "qemu-user").deb
    tar = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as opened:
        member = opened.extractfile("./usr/bin/qemu-aarch64")
        assert member is not None
        target = tmp_path / "qemu-aarch64"
        target.write_bytes(member.read())
    target.chmod(0o755)
    return binfmt.entry_for(ARM64, str(target), fix_binary=True)


def _elf_machine(data: bytes) -> int:
    assert data[:4] == b"\x7fELF", data[:16]
    return int(struct.unpack_from("<H", data, 18)[0])


def _labels(registry: Registry, name: str, manifest: dict[str, object]) -> dict[str, str]:
    config = manifest["config"]
    assert isinstance(config, dict)
    return dict(json.loads(registry.blob(name, config["digest"]))["config"]["Labels"])


def from_mirror(mirror: Mirror) -> list[str]:
    """The switches that download qemu from the test ``mirror``, trusting its key."""
    return ["--mirror", mirror.url, "--suite", SUITE, "--keyring", str(mirror.keyring)]


def _one_line_error(stderr: str) -> str:
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("xcompile: error:")]
    assert len(errors) == 1 and stderr.strip().splitlines()[-1] == errors[0], stderr
    return errors[0]


def downstream_runs(image: str, tmp_path: Path) -> str:
    """A downstream FROM ``image`` with a RUN step builds, and its RUN saw armv7l; the tag it made."""
    downstream = tmp_path / "downstream"
    downstream.mkdir()
    (downstream / "Dockerfile").write_text(f"FROM {image}\nRUN uname -m > /machine\n")
    tag = f"{image.rpartition(':')[0]}:downstream"
    made = docker("build", "--platform", ARM.platform, "-t", tag, str(downstream), check=False)
    assert made.returncode == 0, made.stderr[-2000:]
    ran = docker("run", "--rm", "--platform", ARM.platform, "--entrypoint", "/bin/cat", tag, "/machine", check=False)
    assert (ran.returncode, ran.stdout.strip()) == (0, "armv7l"), ran.stderr
    return tag


def test_built_for_arm64_hosts_on_this_x86_64_host(
    registry: Registry, armhf_base: str, mirror: Mirror, user_env: dict[str, str], tmp_path: Path
) -> None:
    name = f"qhost-{uuid.uuid4().hex[:8]}/rpi"
    repo = f"{registry.host}/{name}"
    env = {**user_env, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    reported = ["--report", str(tmp_path / "report.json")]
    args = ["--base", armhf_base, "--repo", repo, "--tag", "a", *from_mirror(mirror), *reported]
    host_qemu = shutil.which("qemu-arm-static")
    assert host_qemu, "the host's qemu-user-static is on PATH (ci/provision.sh)"
    # qemu-aarch64 with F runs the aarch64 qemu; qemu-arm without F looks inside.
    with host_state("seed/none"), replaced(nested_aarch64(tmp_path)):
        built = run_xcompile("build", "--qemu-host", "arm64v8", *args, cwd=tmp_path, env=env)
        assert built.returncode == 0, built.stdout + built.stderr[-1500:]
        assert (
            f"xcompile: warning: {host_qemu} on PATH is built for amd64, not for the qemu host arm64v8; set aside"
        ) in built.stderr
        assert (
            "xcompile: qemu host: arm64v8; the proof runs its qemu nested: the engine's amd64 machine runs"
            " the arm64v8 qemu through its qemu-aarch64 (flags F)"
        ) in built.stderr
        _, manifest = registry.manifest(name, "a")
        shipped = layer_file(registry, name, manifest, "usr/bin/qemu-arm-static")
        assert shipped is not None and _elf_machine(shipped) == EM_AARCH64
        assert _labels(registry, name, manifest)[recipe.QEMU_HOST] == "arm64v8"
        report = json.loads((tmp_path / "report.json").read_text())["images"][0]
        assert report["qemu"]["host"] == "arm64v8" and report["ran"].startswith(
            "through the shipped qemu-arm-static, run nested: the engine's amd64 machine"
        )
        assert built.stdout.splitlines()[1].endswith(" for arm64v8")
        inspected = run_xcompile("inspect", f"{repo}:a", cwd=tmp_path, env=env)
        assert re.search(r"qemu host\W+arm64v8", inspected.stdout), inspected.stdout + inspected.stderr

        # A downstream FROM with a RUN step: the kernel finds qemu-arm (no F) at the image's
        # /usr/bin/qemu-arm-static, an aarch64 program, which it runs through qemu-aarch64 (F).
        tag = downstream_runs(f"{repo}:a", tmp_path)
        docker("rmi", tag)  # a child would keep the image the rebuild replaces

        # Back to the default qemu host: the registry's image differs in that, and says so.
        again = run_xcompile("build", *args, cwd=tmp_path, env=env)
        assert again.returncode == 0, again.stderr[-3000:]
        assert "; building" in again.stderr and "qemu host arm64v8 -> amd64" in again.stderr
        _, manifest = registry.manifest(name, "a")
        shipped = layer_file(registry, name, manifest, "usr/bin/qemu-arm-static")
        assert shipped is not None and _elf_machine(shipped) == EM_X86_64


def test_no_entry_for_the_qemu_hosts_cpu_stops_before_any_build(
    registry: Registry, armhf_base: str, mirror: Mirror, user_env: dict[str, str], tmp_path: Path
) -> None:
    name = f"qhost-{uuid.uuid4().hex[:8]}/rpi"
    image = ["--base", armhf_base, "--repo", f"{registry.host}/{name}", "--tag", "a"]
    args = [*image, *from_mirror(mirror), "--qemu-host", "arm64v8"]
    with host_state("seed/none"):
        refused = run_xcompile("build", *args, cwd=tmp_path, env=user_env)
    assert refused.returncode == 3, refused.stderr
    assert _one_line_error(refused.stderr) == (
        "xcompile: error: the qemu for the qemu host arm64v8 cannot run on the engine's amd64 machine, so the"
        " proof cannot run it: it has no binfmt entry qemu-aarch64"
        " — run `xcompile doctor --fix --qemu-host arm64v8`: it registers qemu-aarch64 with F"
    )
    assert "docker build" not in refused.stderr and "+ cp " not in refused.stderr
    assert name not in registry.catalog()


@contextlib.contextmanager
def remote_docker() -> Iterator[str]:
    """This machine's daemon as a remote one: DOCKER_HOST=tcp://127.0.0.1:P, relayed to its unix
    socket here. xcompile cannot read a tcp:// engine's binfmt entries, as for any other machine."""
    listener = socket.create_server(("127.0.0.1", 0))

    def relay(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(1 << 16):
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)  # docker's attach half-closes: pass that on, no more

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = listener.accept()
                daemon = socket.socket(socket.AF_UNIX)
                daemon.connect("/var/run/docker.sock")
                for pair in ((client, daemon), (daemon, client)):
                    threading.Thread(target=relay, args=pair, daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"tcp://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


def probe_images() -> list[str]:
    return docker("images", "-q", "--filter", "reference=xcompile-probe-*").stdout.split()


@pytest.mark.parametrize("runs", [False, True], ids=["no-entry-there", "nested-there"])
def test_a_remote_engines_machine_is_asked_before_any_build(
    runs: bool, registry: Registry, armhf_base: str, mirror: Mirror, user_env: dict[str, str], tmp_path: Path
) -> None:
    """An engine behind DOCKER_HOST=tcp://…: its binfmt entries cannot be read from here, so the
    shipped qemu is run there, in an image that holds it alone, before any build. Where it does not
    start, exit 3 and nothing built; where it does, the run goes on and says how it was told."""
    name = f"qhost-{uuid.uuid4().hex[:8]}/rpi"
    image = ["--base", armhf_base, "--repo", f"{registry.host}/{name}", "--tag", "a"]
    args = [*image, *from_mirror(mirror), "--qemu-host", "arm64v8"]
    entry = nested_aarch64(tmp_path) if runs else None
    with host_state("seed/none"), replaced(entry) if entry else contextlib.nullcontext(), remote_docker() as host:
        env = {**user_env, "DOCKER_HOST": host, "XDG_CACHE_HOME": str(tmp_path / "cache")}
        ran = run_xcompile("build", *args, cwd=tmp_path, env=env)
    assert probe_images() == []
    if runs:
        assert ran.returncode == 0, ran.stderr[-3000:]
        assert "(its binfmt entries are not read from here: DOCKER_HOST is tcp://…" in ran.stderr
        assert "; it ran there)" in ran.stderr
        assert registry.tags(name) == ["a"]
        return
    assert ran.returncode == 3, ran.stderr[-3000:]
    line = _one_line_error(ran.stderr)
    assert line.startswith(
        "xcompile: error: the qemu for the qemu host arm64v8 does not start on the engine's amd64 machine"
        " (DOCKER_HOST is tcp://…, not a local unix socket), so the proof could not run it: "
    ), line
    assert line.endswith(
        " — register qemu-aarch64 with F there (`xcompile doctor --fix --qemu-host arm64v8` on that machine)"
    ), line
    assert "docker build" not in ran.stderr
    assert name not in registry.catalog()


def test_a_qemu_on_path_for_another_cpu_is_refused_in_a_real_run(
    registry: Registry, armhf_base: str, user_env: dict[str, str], tmp_path: Path
) -> None:
    folder = tmp_path / "bin"
    folder.mkdir()
    aarch64 = subprocess.run(
        ["dpkg-deb", "--fsys-tarfile", str(real_deb(QEMU, "arm64"))], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(aarch64)) as tar:
        member = tar.extractfile("./usr/bin/qemu-arm-static")
        assert member is not None
        (folder / "qemu-arm-static").write_bytes(member.read())
    (folder / "qemu-arm-static").chmod(0o755)
    env = {**user_env, "PATH": f"{folder}:{user_env['PATH']}"}
    image = ["--base", armhf_base, "--repo", f"{registry.host}/qhost/x", "--tag", "a"]
    refused = run_xcompile("build", *image, "--qemu-source", "path", cwd=tmp_path, env=env)
    assert refused.returncode == 3, refused.stderr
    assert _one_line_error(refused.stderr) == (
        f"xcompile: error: {folder}/qemu-arm-static on PATH is built for arm64v8, not for the qemu host amd64"
        " — put a static qemu built for amd64 first on PATH, or use --qemu-source download"
    )
    assert "docker build" not in refused.stderr


def test_an_outer_qemu_too_old_to_nest_is_named(
    registry: Registry, armhf_base: str, mirror: Mirror, user_env: dict[str, str], tmp_path: Path
) -> None:
    """Debian 12's qemu-aarch64 (7.2) as the engine machine's entry: the nested qemu-arm cannot
    reserve its 32-bit guest's 4 GiB there, and the proof says what to change."""
    image = ["--base", armhf_base, "--repo", f"{registry.host}/qhost/old", "--tag", "a"]
    args = [*image, *from_mirror(mirror), "--qemu-host", "arm64v8", "--no-push"]
    env = {**user_env, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    with host_state("seed/debian"):
        failed = run_xcompile("build", *args, cwd=tmp_path, env=env)
    assert failed.returncode == 1, failed.stderr[-2000:]
    assert (
        "the image's own qemu (/usr/bin/qemu-arm-static) cannot reserve its guest's address space:" in failed.stdout
    ), failed.stdout


def test_doctor_names_the_missing_entry_and_fix_registers_it_with_f(user_env: dict[str, str], tmp_path: Path) -> None:
    with host_state("seed/none"):
        before = run_xcompile("doctor", "--no-push", "--qemu-host", "arm64v8", cwd=tmp_path, env=user_env)
        line = next(line for line in before.stdout.splitlines() if "qemu host" in line)
        assert line.startswith("fail  qemu host") and "it has no binfmt entry qemu-aarch64" in line, before.stdout
        assert "xcompile and the engine run on this x86_64 machine" in line
        fixed = run_xcompile("doctor", "--no-push", "--fix", "--qemu-host", "arm64v8", cwd=tmp_path, env=user_env)
        entry = binfmt.read("qemu-aarch64")
        assert entry is not None and entry.enabled and entry.fix_binary, fixed.stderr
        assert elf.built_for(Path(entry.interpreter).resolve()) is AMD64  # this machine's qemu, not the qemu host's
        after = run_xcompile("doctor", "--no-push", "--qemu-host", "arm64v8", cwd=tmp_path, env=user_env)
        line = next(line for line in after.stdout.splitlines() if "qemu host" in line)
        assert line.startswith("pass  qemu host") and "run nested" in line, after.stdout


def arm64_python() -> Path:
    """An aarch64 Python 3.11 root (ci/make-arm64-python.sh, run by ci/provision.sh)."""
    root = Path(os.environ.get("XCOMPILE_TEST_CACHE") or "/var/cache/xcompile-test") / "arm64-python"
    if not (root / "usr/bin/python3.11").is_file():
        subprocess.run(["bash", str(REPO / "ci/make-arm64-python.sh"), str(root)], check=True)
    return root


def test_xcompile_as_an_aarch64_program_ships_qemu_for_x86_64_hosts(
    registry: Registry, armhf_base: str, user_env: dict[str, str], tmp_path: Path
) -> None:
    """xcompile itself run as an aarch64 process (qemu-aarch64-static -L, explicitly: no binfmt entry
    plays a part), the docker socket shared: what it ships is for the default qemu host, amd64."""
    root, qemu_aarch64 = arm64_python(), shutil.which("qemu-aarch64-static")
    assert qemu_aarch64, "qemu-user-static is installed (ci/provision.sh)"
    # The tests' own pure-Python dependencies (plumbum, requests, python-debian): the x86_64
    # extension modules there are not loaded by an aarch64 Python, which takes their .py fallbacks.
    env = {**user_env, "PYTHONPATH": f"{REPO}:{sysconfig.get_paths()['purelib']}"}
    aarch64 = [qemu_aarch64, "-L", str(root), str(root / "usr/bin/python3.11")]
    code = "import platform; print(platform.machine())"
    machine = subprocess.run([*aarch64, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert machine.stdout.strip() == "aarch64"
    name = f"qhost-{uuid.uuid4().hex[:8]}/rpi"
    repo = f"{registry.host}/{name}"
    with host_state("seed/none"):  # the x86_64 CI host: qemu-arm without F, nothing else
        built = subprocess.run(
            [*aarch64, "-m", "xcompile", "build", "--base", armhf_base, "--repo", repo, "--tag", "a"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert built.returncode == 0, built.stdout + built.stderr[-2000:]
        assert "the proof runs its qemu natively (the engine's machine is amd64)" in built.stderr
        _, manifest = registry.manifest(name, "a")
        shipped = layer_file(registry, name, manifest, "usr/bin/qemu-arm-static")
        assert shipped is not None and _elf_machine(shipped) == EM_X86_64
        assert _labels(registry, name, manifest)[recipe.QEMU_HOST] == "amd64"
        downstream_runs(f"{repo}:a", tmp_path)
        # doctor, run as that aarch64 program, shows both machines and judges the entries by the engine's
        doctor = subprocess.run(
            [*aarch64, "-m", "xcompile", "doctor", "--no-push"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
        )
    line = next(line for line in doctor.stdout.splitlines() if "qemu host" in line)
    assert re.match(r"pass  qemu host +xcompile runs on aarch64; the engine's machine is amd64", line), doctor.stdout
    assert not [line for line in doctor.stdout.splitlines() if line.startswith("fail")], doctor.stdout
    assert "images carry qemu for amd64, run natively" in line
    arm = next(line for line in doctor.stdout.splitlines() if "binfmt arm32v7" in line)
    assert "qemu-arm -> /usr/bin/qemu-arm-static without F" in arm, doctor.stdout  # x86_64: fine for the engine


def test_trial_carries_the_qemu_host(armhf_base: str, mirror: Mirror, user_env: dict[str, str], tmp_path: Path) -> None:
    env = {**user_env, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    trial = ["trial", "7.2", "--qemu-host", "arm64v8", "--qemu-source", "download"]
    args = [*trial, *from_mirror(mirror), "--base", armhf_base, "--tag", "a"]
    with host_state("seed/none"):
        refused = run_xcompile(*args, cwd=tmp_path, env=env)
        assert refused.returncode == 3 and "no binfmt entry qemu-aarch64" in _one_line_error(refused.stderr)
        with replaced(nested_aarch64(tmp_path)):
            tried = run_xcompile(*args, cwd=tmp_path, env=env)
    assert tried.returncode == 0, tried.stdout + tried.stderr[-2000:]
    assert "xcompile: qemu host: arm64v8; the proof runs its qemu nested" in tried.stderr
    assert re.search(r"^a\s+pass ", tried.stdout, re.MULTILINE), tried.stdout
