"""The proof at the cost of one run: what it runs, and every way it fails an image, judged on what
the engine gave (no engine here; tests/integration/pipeline/test_prove.py builds for real)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from xcompile import engine
from xcompile.errors import CommandFailed, ProofFailed
from xcompile.host import platforms
from xcompile.pipeline import judge

ARM = platforms.get("arm32v7")


# --- unit: the pure parts ------------------------------------------------------


def test_the_probe_reads_the_last_line() -> None:
    python = judge.PROBES[0]
    assert python.program == "/usr/local/bin/python3" and python.says == "python3"
    assert judge.read_probe(python, "armv7l\n") == judge.Machine("armv7l", python)
    assert judge.read_probe(judge.PROBES[-1], "") == judge.Machine("", judge.PROBES[-1])


@pytest.mark.parametrize(
    ("value", "probe", "error"),
    [
        ("armv7l", judge.PROBES[0], None),
        ("armv7l", judge.PROBES[-1], None),
        ("x86_64", judge.PROBES[-1], "`uname -m` in the image, run by its own qemu, printed 'x86_64', not 'armv7l'"),
        ("aarch64", judge.PROBES[0], "python3 in the image, run by its own qemu, printed 'aarch64', not 'armv7l'"),
        ("", judge.PROBES[0], "python3 in the image, run by its own qemu, printed '', not 'armv7l'"),
    ],
)
def test_check_machine(value: str, probe: judge.Probe, error: str | None) -> None:
    machine = judge.Machine(value, probe)
    if error is None:
        judge.check_machine(ARM, machine)
    else:
        with pytest.raises(ProofFailed, match=error.replace("(", r"\(").replace(")", r"\)")):
            judge.check_machine(ARM, machine)


def test_qemu_found_in_the_topmost_layer_and_hidden_by_a_whiteout(tmp_path: Path) -> None:
    top, middle, bottom = (tmp_path / name for name in ("top", "middle", "bottom"))
    for layer in (top, middle, bottom):
        (layer / "usr/bin").mkdir(parents=True)
    (bottom / "usr/bin/qemu-arm-static").write_bytes(b"old")
    (middle / "usr/bin/qemu-arm-static").write_bytes(b"new")
    assert judge.find_in_layers((top, middle, bottom), "/usr/bin/qemu-arm-static") == middle / "usr/bin/qemu-arm-static"
    os.mknod(top / "usr/bin/qemu-arm-static", 0o600 | 0o020000, os.makedev(0, 0))  # overlay's whiteout
    assert judge.find_in_layers((top, middle, bottom), "/usr/bin/qemu-arm-static") is None
    assert judge.find_in_layers((top, middle, bottom), "/usr/bin/nothing") is None


def test_check_qemu_inside_names_the_path() -> None:
    judge.check_qemu_inside(judge.QemuSeen("aa", (("/usr/bin/qemu-arm-static", "aa"),)))
    with pytest.raises(ProofFailed, match="/usr/bin/qemu-arm-static is missing from the image"):
        judge.check_qemu_inside(judge.QemuSeen("aa", (("/usr/bin/qemu-arm-static", None),)))
    with pytest.raises(ProofFailed, match="/x/q in the image is not the qemu that was copied in"):
        judge.check_qemu_inside(judge.QemuSeen("aa", (("/usr/bin/qemu-arm-static", "aa"), ("/x/q", "bb"))))


def test_inspect_without_layers_on_this_host() -> None:
    text = '[{"Id": "sha256:1", "Os": "linux", "Architecture": "arm", "Variant": "v7",'
    text += ' "Config": {"Labels": {"a": "b"}}, "GraphDriver": {"Name": "overlay2", "Data": {"UpperDir": "/nowhere"}}}]'
    config = judge.ImageConfig.from_inspect(text)
    assert (config.platform, config.id, config.labels, config.layer_dirs) == (
        "linux/arm/v7",
        "sha256:1",
        {"a": "b"},
        (),
    )
    assert judge.ImageConfig.from_inspect("").platform == ""


@pytest.mark.parametrize(
    ("stderr", "program", "lacks"),
    [
        ('exec: "/bin/sh": stat /bin/sh: no such file or directory: unknown', "/bin/sh", True),
        ('exec: "python3": executable file not found in $PATH: unknown', "python3", True),
        ("exec /bin/sh: exec format error", "/bin/sh", False),
        ("exec /bin/sh: no such file or directory", "/bin/sh", False),  # binfmt's emulator is missing
        # qemu as the entrypoint, on a program the image lacks (qemu 10.x)
        ("Error while loading /usr/bin/python3: No such file or directory", "/usr/bin/python3", True),
        ("qemu-arm-static: applet not found", "/usr/bin/python3", False),  # not qemu at all
    ],
)
def test_a_missing_program_is_told_from_a_missing_emulator(stderr: str, program: str, lacks: bool) -> None:
    failure = engine.classify(CommandFailed(["docker", "run"], 127, "", stderr), program)
    assert (failure.kind == "missing-program") is lacks


def test_the_layers_choose_one_program_to_run(tmp_path: Path) -> None:
    layer = tmp_path / "layer"
    (layer / "usr/bin").mkdir(parents=True)
    (layer / "bin").mkdir()
    with_layers = judge.ImageConfig("linux/arm/v7", layer_dirs=(layer,))
    assert judge.probes_for(judge.ImageConfig("linux/arm/v7")) == judge.PROBES  # layers unknown: each in turn
    assert judge.probes_for(with_layers) == ()  # nothing known to run
    (layer / "bin/uname").symlink_to("busybox")
    assert judge.probes_for(with_layers) == (judge.Probe("/bin/uname", ("-m",)),)  # one emulated run
    (layer / "usr/bin/python3").symlink_to("python3.11")
    (first,) = judge.probes_for(with_layers)
    assert first.program == "/usr/bin/python3" and first.args == ("-I", "-S", "-c", judge.MACHINE)
