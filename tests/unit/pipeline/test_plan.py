"""The plan from a config and the host's registrations, and which docker versions need experimental."""

from __future__ import annotations

from pathlib import Path

import pytest

from xcompile import engine
from xcompile.host import binfmt, emulation, platforms
from xcompile.pipeline.plan import plan
from xcompile.settings.config import Config, load

ARM = platforms.get("arm32v7")


def config(tmp_path: Path, **switches: object) -> Config:
    settings, _ = load(switches, {}, tmp_path, Path("/home/u"))
    return settings


def entry(interpreter: str, flags: str) -> binfmt.Entry:
    return binfmt.Entry(ARM.binfmt_name, True, interpreter, flags, 0, "7f", "ff")


def test_one_arch_keeps_the_originals_names(tmp_path: Path) -> None:
    the_plan = plan(config(tmp_path), {})
    assert [i.name for i in the_plan.images] == [
        f"brewblox/rpi-python:{t}" for t in ("3.6", "3.6-slim", "3.7", "3.7-slim")
    ]
    assert [i.base for i in the_plan.images] == [f"arm32v7/python:{t}" for t in ("3.6", "3.6-slim", "3.7", "3.7-slim")]
    assert the_plan.manifests == ()
    assert the_plan.images[0].dockerfile == (
        "FROM arm32v7/python:3.6\n# qemu-layer/ holds qemu-arm-static at /usr/bin/qemu-arm-static\nCOPY qemu-layer/ /\n"
    )


def test_several_arches_get_suffixed_tags_and_a_manifest_list(tmp_path: Path) -> None:
    the_plan = plan(config(tmp_path, arches=["armhf", "aarch64"], tags=["3.9"]), {})
    assert [(i.name, i.base, i.platform) for i in the_plan.images] == [
        ("brewblox/rpi-python:3.9-arm32v7", "arm32v7/python:3.9", "linux/arm/v7"),
        ("brewblox/rpi-python:3.9-arm64v8", "arm64v8/python:3.9", "linux/arm64/v8"),
    ]
    (manifest,) = the_plan.manifests
    assert manifest.name == "brewblox/rpi-python:3.9" and manifest.images == the_plan.images
    assert plan(config(tmp_path, arches=["armhf", "aarch64"], manifest=False), {}).manifests == ()
    assert plan(config(tmp_path, arches=["armhf", "aarch64"], push=False), {}).manifests == ()


def test_per_arch_base_and_namespace_pattern(tmp_path: Path) -> None:
    settings, _ = load(
        {"arches": ["arm32v6", "arm64v8"], "base": "mirror.local/{namespace}/py"},
        {"XCOMPILE_BASE_ARM64V8": "other/py64"},
        tmp_path,
        Path("/home/u"),
    )
    assert [settings.base_for(a) for a in settings.targets] == ["mirror.local/arm32v6/py", "other/py64"]


@pytest.mark.parametrize(
    ("interpreter", "flags", "extra"),
    [
        ("/usr/libexec/qemu-binfmt/arm-binfmt-P", "PF", ()),  # F: the kernel holds it open
        ("/usr/bin/qemu-arm-static", "", ()),  # already where the image has it
        ("/usr/local/bin/qemu-arm-static", "", ("/usr/local/bin/qemu-arm-static",)),
        ("/usr/libexec/qemu-binfmt/arm-binfmt-P", "P", ("/usr/libexec/qemu-binfmt/arm-binfmt-P",)),
        ("/opt/wrapper", "P", ()),  # someone else's wrapper: qemu cannot stand in
    ],
)
def test_extra_qemu_paths_follow_the_hosts_registration(
    tmp_path: Path, interpreter: str, flags: str, extra: tuple[str, ...]
) -> None:
    host = emulation.assess(ARM, entry(interpreter, flags), mounted=True, machine="x86_64")
    (image, *_) = plan(config(tmp_path), {"arm32v7": host}).images
    assert image.extra_qemu_paths == extra
    # The recipe (the template's hash) changes with where qemu goes.
    assert f"qemu-arm-static at {', '.join(('/usr/bin/qemu-arm-static', *extra))}\n" in image.dockerfile_template


@pytest.mark.parametrize(
    ("client", "needed"), [("18.09.7", True), ("19.03.15", True), ("20.10.24", False), ("28.2.2", False), (None, True)]
)
def test_experimental_only_for_old_clients(client: str | None, needed: bool) -> None:
    assert engine.needs_experimental(client) is needed
