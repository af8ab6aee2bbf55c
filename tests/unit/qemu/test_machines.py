"""Issue 26: the qemu inside is for the machine that will use the image (``--qemu-host``), not
for the machine that builds it. The pure parts: the setting, the engine's machine, how the shipped
qemu runs there, and what matrix and join carry of it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from debian_archive import (
    tiny_elf,
)
from hostbinfmt import debian_default, seed_world

from xcompile.engine.versions import _machine_arch
from xcompile.errors import ConfigError, EnvironmentProblem, QemuUnavailable
from xcompile.host import binfmt, elf, emulation, platforms
from xcompile.qemu import machines, settle
from xcompile.registry import recipe
from xcompile.settings.config import Config, load
from xcompile.system.runner import Runner

ARM, ARM64, AMD64 = platforms.get("arm32v7"), platforms.get("arm64v8"), platforms.get("amd64")
EM_AARCH64, EM_X86_64 = 183, 62


# --- unit -------------------------------------------------------------------------


def test_the_setting_names_a_row_whose_qemu_the_archive_has(tmp_path: Path) -> None:
    config, _ = load({}, {}, tmp_path, tmp_path)
    assert config.qemu_host == "amd64"
    config, _ = load({"qemu_host": "aarch64"}, {}, tmp_path, tmp_path)
    assert config.qemu_host_arch is ARM64
    config, _ = load({}, {"XCOMPILE_QEMU_HOST": "arm64"}, tmp_path, tmp_path)
    assert config.qemu_host == "arm64v8"
    (tmp_path / "setup.cfg").write_text("[xcompile]\nqemu_host = armhf\n")
    assert load({}, {}, tmp_path, tmp_path)[0].qemu_host == "arm32v7"
    with pytest.raises(ConfigError, match="--qemu-host: the archive has no static qemu built for mips64le"):
        load({"qemu_host": "mips64le"}, {}, tmp_path, tmp_path)
    with pytest.raises(ConfigError, match=r"^--qemu-host: unknown architecture 'sparc' — known: "):
        load({"qemu_host": "sparc"}, {}, tmp_path, tmp_path)


def test_elf_built_for_reads_the_cpu(tmp_path: Path) -> None:
    for debian_arch, row in (("arm64", ARM64), ("amd64", AMD64), ("armhf", ARM)):
        (tmp_path / debian_arch).write_bytes(tiny_elf(debian_arch))
        assert elf.built_for(tmp_path / debian_arch) is row
    (tmp_path / "text").write_text("#!/bin/sh\n")
    assert elf.built_for(tmp_path / "text") is None


class _OnPath(Runner):
    """A runner whose PATH holds one folder (the real lookup, with plumbum's PATH left alone)."""

    def __init__(self, folder: Path) -> None:
        super().__init__(lambda _line, _label: None)
        self.folder = folder

    def which(self, program: str) -> Path | None:
        found = self.folder / program
        return found if found.is_file() else None


def _path_with(tmp_path: Path, program: bytes) -> Runner:
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    (folder / "qemu-arm-static").write_bytes(program)
    (folder / "qemu-arm-static").chmod(0o755)
    return _OnPath(folder)


def test_a_qemu_on_path_for_another_cpu_is_refused_with_source_path(tmp_path: Path) -> None:
    runner = _path_with(tmp_path, tiny_elf("amd64"))
    config = Config(qemu_source="path", qemu_host="arm64v8", cache_dir=tmp_path / "cache")
    with pytest.raises(QemuUnavailable) as refused:
        settle.ensure(ARM, runner, config)
    assert refused.value.message == (
        f"{tmp_path}/bin/qemu-arm-static on PATH is built for amd64, not for the qemu host arm64v8"
    )
    assert refused.value.exit_code == 3


def test_a_qemu_on_path_for_another_cpu_is_set_aside_with_auto(tmp_path: Path) -> None:
    runner = _path_with(tmp_path, tiny_elf("arm64"))  # the default qemu host is amd64
    config = Config(qemu_source="auto", offline=True, cache_dir=tmp_path / "cache")
    found, notes = settle._local(ARM, runner, config)
    assert found is None
    assert notes == (
        f"{tmp_path}/bin/qemu-arm-static on PATH is built for arm64v8, not for the qemu host amd64; set aside",
    )


def test_apt_is_refused_for_another_qemu_host(tmp_path: Path) -> None:
    config = Config(qemu_source="apt", qemu_host="arm64v8", cache_dir=tmp_path)
    with pytest.raises(QemuUnavailable, match=r"apt installs qemu built for this machine \(amd64\), not for the"):
        settle.ensure(ARM, Runner(lambda _line, _label: None), config)


def test_a_change_of_qemu_host_is_a_difference_said_once() -> None:
    old = recipe.labels("b", "sha256:1", "aa", "T", qemu_version="7.2")
    new = recipe.labels("b", "sha256:1", "bb", "T", qemu_version="7.2", qemu_host="arm64v8")
    assert recipe.differences(new, old) == ["qemu host amd64 -> arm64v8"]
    assert recipe.differences(old, old) == []
    unlabelled = {k: v for k, v in old.items() if k != recipe.QEMU_HOST}
    assert recipe.differences(old, unlabelled) == ["qemu host amd64 (no label) -> amd64"]


LOCAL = machines.EngineMachine(AMD64, True, "here")


def test_how_the_shipped_qemu_runs() -> None:
    assert machines.how_shipped_qemu_runs(AMD64, LOCAL, None, mounted=True).startswith("natively")
    assert machines.how_shipped_qemu_runs(platforms.get("i386"), LOCAL, None, mounted=True).startswith("natively")
    nested = machines.how_shipped_qemu_runs(ARM64, LOCAL, debian_default(ARM64), mounted=True)
    assert nested == "nested: the engine's amd64 machine runs the arm64v8 qemu through its qemu-aarch64 (flags PF)"
    remote = machines.EngineMachine(AMD64, False, "DOCKER_HOST is tcp://…, not a local unix socket")
    assert "not read from here" in machines.how_shipped_qemu_runs(ARM64, remote, None, mounted=True)
    arm_machine = machines.EngineMachine(ARM64, True, "here")
    assert machines.how_shipped_qemu_runs(ARM64, arm_machine, None, mounted=False).startswith("natively")


@pytest.mark.parametrize(
    ("entry", "mounted", "state"),
    [
        (None, True, "it has no binfmt entry qemu-aarch64"),
        (seed_world(ARM64), True, "its binfmt entry qemu-aarch64 lacks the F flag"),
        (dataclasses.replace(debian_default(ARM64), enabled=False), True, "its binfmt entry qemu-aarch64 is disabled"),
        (None, False, "binfmt_misc is not mounted"),
    ],
)
def test_the_check_before_any_build_refuses_where_the_engine_cannot_run_the_shipped_qemu(
    entry: binfmt.Entry | None, mounted: bool, state: str
) -> None:
    with pytest.raises(EnvironmentProblem) as refused:
        machines.how_shipped_qemu_runs(ARM64, LOCAL, entry, mounted=mounted)
    assert refused.value.exit_code == 3
    assert refused.value.message.startswith(
        "the qemu for the qemu host arm64v8 cannot run on the engine's amd64 machine, so the proof cannot run it: "
        + state
    )
    assert refused.value.hint == "run `xcompile doctor --fix --qemu-host arm64v8`: it registers qemu-aarch64 with F"


def test_where_the_engine_runs(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    assert machines.engine_is_local("docker", {}, config)[0]
    assert machines.engine_is_local("docker", {"DOCKER_HOST": "unix:///run/docker.sock"}, config)[0]
    assert not machines.engine_is_local("docker", {"DOCKER_HOST": "tcp://10.0.0.2:2376"}, config)[0]
    assert not machines.engine_is_local("docker", {"DOCKER_CONTEXT": "desktop-linux"}, config)[0]
    config.write_text(json.dumps({"currentContext": "colima"}))
    assert not machines.engine_is_local("docker", {}, config)[0]
    assert not machines.engine_is_local("podman", {"CONTAINER_HOST": "ssh://core@vm/run/podman.sock"}, config)[0]
    assert machines.engine_is_local("podman", {}, config)[0]


def test_on_a_mac_the_engine_is_another_machine(tmp_path: Path) -> None:
    """Docker Desktop and podman machine answer on a local socket, from a Linux VM: /proc here
    (there is none on macOS) holds nothing of theirs, so the engine's machine is asked instead."""
    for engine in ("docker", "podman"):
        local, why = machines.engine_is_local(engine, {}, tmp_path / "config.json", system="darwin")
        assert (local, why) == (False, "this machine runs darwin, so the engine runs in a Linux VM")
    assert machines.engine_is_local("docker", {}, tmp_path / "config.json", system="linux")[0]


def test_the_engines_machine_is_what_the_engine_says() -> None:
    assert _machine_arch({"Arch": "arm64"}) == "arm64"
    assert _machine_arch({"OsArch": "linux/amd64"}) == "amd64"
    assert _machine_arch({}) is None
    assert machines.engine_machine("arm64", True, "").arch is ARM64


def test_join_refuses_a_part_built_for_another_qemu_host() -> None:
    from xcompile.commands import join
    from xcompile.engine import Platform
    from xcompile.registry import Remote

    part = join.Part(ARM64, "r/x:3.7-arm64v8")
    made = Remote(part.ref, "sha256:1", {recipe.QEMU_HOST: "arm64v8"}, Platform("linux", "arm64", "v8"))
    assert join._check(part, made, "arm64v8") == (made, None)
    assert join._check(part, made, "amd64") == (
        None,
        "r/x:3.7-arm64v8 carries qemu for the qemu host arm64v8, not amd64",
    )
    older = Remote(part.ref, "sha256:1", {}, Platform("linux", "arm64", "v8"))  # from before the label
    assert join._check(part, older, "amd64") == (older, None)


def test_matrix_cells_carry_the_qemu_host(tmp_path: Path) -> None:
    from xcompile.commands import matrix

    config, _ = load({"qemu_host": "arm64v8", "tags": "3.7", "arches": "arm32v7"}, {}, tmp_path, tmp_path)
    assert matrix.cells(config) == [{"tag": "3.7", "arch": "arm32v7", "only": "3.7/arm32v7", "qemu_host": "arm64v8"}]


def test_32_bit_arm_on_an_aarch64_engine_may_run_natively() -> None:
    """Debian's arm64 qemu-user-static registers no qemu-arm: an aarch64 machine that runs 32-bit ARM
    (GitHub's arm runners) runs arm/v7 natively, one that cannot (Apple M1-M4) does not; uname -m says
    aarch64 on both, so neither the check before any build nor the build's judgement refuses, and says so."""
    arm64_machine = machines.EngineMachine(ARM64, True, "here")
    said = machines.how_shipped_qemu_runs(ARM, arm64_machine, None, mounted=True)
    assert said == "natively, where the engine's arm64v8 machine runs arm32v7 programs (not all do)"
    seen = emulation.assess(ARM, None, mounted=True, machine="aarch64")
    assert seen.status == "warn" and not seen.native
    assert seen.note == (
        "arm32v7: no binfmt entry qemu-arm; images run natively only where this aarch64 machine runs"
        " linux/arm/v7 programs, and they see `uname -m` = aarch64"
    )
    assert emulation.assess(ARM, None, mounted=True, machine="x86_64").status == "fail"
