"""Docker's name, tag and digest grammar, and when a registry speaks plain HTTP."""

from __future__ import annotations

import pytest

from xcompile import registry
from xcompile.errors import UsageError
from xcompile.registry.reference import check_name, check_tag, plain_http, split_name


@pytest.mark.parametrize("tag", ["3.7", "3.7-slim", "latest", "v1.2_3", "A" * 128, "_x"])
def test_good_tags(tag: str) -> None:
    assert check_tag(tag) == tag


@pytest.mark.parametrize("tag", ["3.7;rm -rf /", "../x", "", "-x", ".x", "a b", "a/b", "A" * 129, "tag\n", "é"])
def test_bad_tags(tag: str) -> None:
    with pytest.raises(UsageError) as err:
        check_tag(tag)
    assert err.value.exit_code == 2
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "name",
    [
        "brewblox/rpi-python",
        "python",
        "a__b/c--d",
        "localhost/x",
        "localhost:5000/a/b",
        "127.0.0.1:5000/a",
        "registry.example.org/team/app",
        "[::1]:5000/a",
        "Registry.Example:443/a",
    ],
)
def test_good_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "a//b", "/a", "a/", "x/../y", "Team/app", "UPPER", "a b", "a/b:tag", "a/b@sha256:00", "a/-b", "a" * 256],
)
def test_bad_names(name: str) -> None:
    with pytest.raises(UsageError):
        check_name(name)


@pytest.mark.parametrize(
    ("name", "insecure", "plain"),
    [
        ("127.0.0.1:5000/a", None, True),
        ("localhost:5000/a/b", None, True),
        ("registry.example.org/a", None, False),
        ("brewblox/rpi-python", None, False),
        ("registry.example.org/a", True, True),
        ("127.0.0.1:5000/a", False, False),
        ("LOCALHOST:5000/a", None, True),
        ("127.1.2.3:5000/a", None, True),
        ("[::1]:5000/a", None, True),
        ("[0:0:0:0:0:0:0:1]:5000/a", None, True),
        ("[::2]:5000/a", None, False),
        ("10.0.0.1:5000/a", None, False),
        ("[0:0:0:0:0:0:0:1]:5000/a", False, False),
    ],
)
def test_plain_http_where_configured_else_for_loopback_only(name: str, insecure: bool | None, plain: bool) -> None:
    """Loopback is judged by address, as the docker daemon judges its implicit insecure
    registries (127.0.0.0/8 and ::1): however the name is written."""
    assert plain_http(name, insecure) is plain


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("python:3.7", "library/python"),  # Docker Hub's official images, however Hub is named
        ("docker.io/python:3.7", "library/python"),
        ("index.docker.io/python:3.7", "library/python"),
        ("arm32v7/python:3.7", "arm32v7/python"),
        ("127.0.0.1:5000/rpi-python:3.7", "rpi-python"),  # another registry's one-part name is itself
        ("registry.example/rpi-python:3.7", "rpi-python"),
        ("localhost/rpi:3.7", "rpi"),
        ("127.0.0.1:5000/team/rpi-python@sha256:" + "0" * 64, "team/rpi-python"),
    ],
)
def test_the_registry_path_of_a_name_is_docker_s(name: str, path: str) -> None:
    assert registry.split(name)[0] == path


def test_docker_hub_is_one_registry_however_it_is_named() -> None:
    """`docker.io/team/app` is `team/app` on Docker Hub, as docker reads it: read at the
    Hub's API host (docker.io itself serves a web page), with the engine's address as the
    helpers' key. Under podman, whose key for the Hub is `docker.io`, the API host is the same."""
    docker_hub = "https://index.docker.io/v1/"  # what `docker info` gives as IndexServerAddress
    for names in (["team/app"], ["docker.io/team/app"], ["index.docker.io/team/app", "team/app"]):
        (found,) = registry.for_repos(names, insecure=None, hub_address=lambda: docker_hub)
        assert (found.name, found.url, found.server) == ("Docker Hub", "https://index.docker.io", docker_hub)
    (podman,) = registry.for_repos(["docker.io/team/app"], insecure=None, hub_address=lambda: "docker.io")
    assert (podman.host, podman.url, podman.server) == ("docker.io", "https://index.docker.io", "docker.io")
    assert not plain_http("docker.io/team/app") and registry.split("docker.io/team/app:1") == ("team/app", "1")


@pytest.mark.parametrize(
    ("given", "split"),
    [
        ("team/app", ("team/app", "latest")),
        ("localhost:5000/team/app:3.7", ("localhost:5000/team/app", "3.7")),
        ("team/app@sha256:" + "a" * 64, ("team/app", "sha256:" + "a" * 64)),
    ],
)
def test_an_image_reference_splits_into_its_name_and_its_tag_or_digest(given: str, split: tuple[str, str]) -> None:
    assert split_name(given, "inspect") == split


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ("team/app:3.7;rm", "verify: invalid tag"),
        ("Team/app", "verify: invalid image"),
        ("team/app@x", "verify: invalid digest"),
    ],
)
def test_a_bad_reference_is_refused_in_the_words_of_the_command_given_it(given: str, said: str) -> None:
    with pytest.raises(UsageError) as err:
        split_name(given, "verify")
    assert err.value.message.startswith(said) and err.value.exit_code == 2
