"""The engine's local images: one inspect places every name, a base's digests, a base made for
another platform refused, and the survey of each image's platform."""

from __future__ import annotations

import pytest

from xcompile import engine
from xcompile.errors import BaseUnavailable
from xcompile.host import platforms
from xcompile.pipeline.plan import plan
from xcompile.pipeline.store import Local, Store, refuse_other_platform
from xcompile.pipeline.store import placed as _placed
from xcompile.settings.config import Config
from xcompile.system.runner import Runner


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
