"""The pure parts: the plan from a config and the host's registrations, the
architecture table, and which docker versions need experimental."""

from __future__ import annotations

from pathlib import Path

import pytest

from xcompile import engine
from xcompile.errors import BaseUnavailable, ConfigError
from xcompile.host import binfmt, emulation, platforms
from xcompile.pipeline.plan import plan
from xcompile.pipeline.store import Local, Store, refuse_other_platform
from xcompile.pipeline.store import placed as _placed
from xcompile.settings.config import Config, load
from xcompile.system.runner import Runner

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
    ("alias", "name"),
    [
        ("armhf", "arm32v7"),
        ("armel", "arm32v6"),
        ("aarch64", "arm64v8"),
        ("arm64", "arm64v8"),
        ("linux/arm", "arm32v7"),
        ("linux/arm64", "arm64v8"),
        ("ppc64el", "ppc64le"),
        ("mips64el", "mips64le"),
    ],
)
def test_aliases(alias: str, name: str) -> None:
    assert platforms.get(alias).name == name


def test_unknown_arch_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as err:
        platforms.get("sparc")
    assert "known: arm32v6, arm32v7, arm64v8, i386, ppc64le, s390x, riscv64, mips64le, amd64" in str(err.value)


@pytest.mark.integration  # reads the host's qemu-user-static
def test_binfmt_magic_matches_debians_registration() -> None:
    # The table's magic and mask are what Debian's qemu-user-static registers.
    conf = Path("/usr/lib/binfmt.d/qemu-arm.conf").read_text().strip()
    fields = conf.split(":")
    registered = binfmt.entry_for(ARM, "x", fix_binary=False)
    assert fields[4].encode().decode("unicode_escape").encode("latin-1").hex() == registered.magic
    assert fields[5].encode().decode("unicode_escape").encode("latin-1").hex() == registered.mask


@pytest.mark.parametrize(
    ("client", "needed"), [("18.09.7", True), ("19.03.15", True), ("20.10.24", False), ("28.2.2", False), (None, True)]
)
def test_experimental_only_for_old_clients(client: str | None, needed: bool) -> None:
    assert engine.needs_experimental(client) is needed


def test_one_inspect_places_every_name() -> None:
    """The store's survey: one `image inspect` of many names, read back per name
    (RepoTags show Docker Hub names without docker.io/library/)."""
    names = ["127.0.0.1:5000/x/rpi:3.7", "arm32v7/python:3.7", "docker.io/library/python:3", "gone/base:1", "odd:1"]
    base = "sha256:" + "a" * 64
    out = "\n".join(
        [
            '["arm32v7/python:3.7","arm32v7/python:latest"] ["arm32v7/python@sha256:' + "d" * 64 + f'"] {base}',
            '["python:3"] null sha256:' + "b" * 64,
        ]
    )
    missing = (
        "Error response from daemon: no such image: 127.0.0.1:5000/x/rpi:3.7: No such image: 127.0.0.1:5000/x/rpi:3.7\n"
        "Error: No such image: gone/base:1\n"
    )
    placed = _placed(names, out, missing)
    assert placed == {
        "arm32v7/python:3.7": Local(base, ("arm32v7/python@sha256:" + "d" * 64,)),
        "docker.io/library/python:3": Local("sha256:" + "b" * 64),
        "127.0.0.1:5000/x/rpi:3.7": None,
        "gone/base:1": None,
    }  # "odd:1" is neither found nor said missing: it is looked up on its own


@pytest.mark.parametrize(
    ("base", "digests", "wanted"),
    [
        ("docker.io/arm32v7/python:3.7", ["arm32v7/python@sha256:aa"], "sha256:aa"),
        ("python:3.7", ["localhost:5000/python@sha256:bb", "python@sha256:aa"], "sha256:aa"),  # not the mirror's
        ("python:3.7", ["docker.io/library/python@sha256:aa"], "sha256:aa"),
        ("xcompile-bench/python:3.7", ["localhost/xcompile-bench/python@sha256:cc"], "sha256:cc"),  # podman's
        ("team/app:1", ["other/app@sha256:dd"], "sha256:" + "e" * 64),  # none of its own: the local ID
    ],
)
def test_a_base_digest_is_its_own_names_as_docker_reads_names(base: str, digests: list[str], wanted: str) -> None:
    store = Store(Runner(lambda line, label: None), engine.DOCKER, lambda line, label: None, pull="never")
    image = plan(Config(base=base.rsplit(":", 1)[0], tags=(base.rsplit(":", 1)[1],)), {}).images[0]
    store.known = {base: Local("sha256:" + "e" * 64, tuple(digests))}
    assert store.newest_base(image) == wanted


@pytest.mark.parametrize(
    ("arch", "told", "refused"),
    [
        ("arm32v7", "linux/arm/v7", None),
        ("arm32v7", "linux/amd64/", "linux/amd64"),  # docker's inspect, no variant
        ("arm32v7", "linux/arm/v6", "linux/arm/v6"),
        ("arm32v7", "linux/arm/", "linux/arm"),  # an arm image that does not say v7
        ("arm64v8", "linux/arm64/", None),  # arm64's variant is optional
        ("arm64v8", "linux/arm/v7", "linux/arm/v7"),
        ("arm32v7", "linux/arm", None),  # podman 4 tells no variant: os and architecture are checked
        ("arm32v7", "linux/arm64", "linux/arm64"),
        ("arm32v7", None, None),  # not told (a dry run)
    ],
)
def test_a_base_made_for_another_platform_is_refused(arch: str, told: str | None, refused: str | None) -> None:
    image = plan(Config(base="team/base", tags=("a",), arches=(arch,)), {}).images[0]
    local = Local("sha256:" + "e" * 64, (), told)
    if refused is None:
        refuse_other_platform(image, local)
        return
    wanted = platforms.get(arch).platform
    with pytest.raises(BaseUnavailable, match=f"^base team/base:a on this host is {refused}, not {wanted} — "):
        refuse_other_platform(image, local)


def test_the_survey_reads_each_images_platform() -> None:
    line = '["team/base:a"] ["team/base@sha256:' + "d" * 64 + '"] ' + "e" * 64 + " linux/arm"
    assert _placed(["team/base:a"], line, "") == {
        "team/base:a": Local("sha256:" + "e" * 64, ("team/base@sha256:" + "d" * 64,), "linux/arm")
    }
