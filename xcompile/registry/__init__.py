"""Where images go, and what a registry holds: one package for every registry concern.

- here: the ``Registry`` record, the one part-naming rule, and ``Remote``, a
  tag as the registry holds it;
- ``credentials``: a host's login, from docker's and podman's auth files;
- ``http``: the one way xcompile speaks HTTP to a registry (CAs, proxies, sizes);
- ``check``: before any build, can each registry take the push?
- ``reader``: what a registry holds under a tag, read without pulling;
- ``lists``: making and pushing manifest lists, and judging whether one is unchanged.

No registry host name is written here: Docker Hub's address comes from the engine,
and its names (docker.io, its API's host) from ``reference``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from xcompile.engine import Platform
from xcompile.registry import reference

LIST_TYPES = (
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
)
IMAGE_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
)
UNKNOWN_PLATFORM = Platform("unknown", "unknown")
"""What BuildKit (buildx >= 0.10) gives its attestation manifests in an index."""


@dataclass(frozen=True)
class Registry:
    name: str
    """What the user reads: the host, or "Docker Hub"."""
    host: str
    """host[:port], as credentials are keyed."""
    url: str
    """scheme://host[:port]"""
    login: str
    """The command that gives credentials, e.g. `docker login HOST`."""
    server: str = ""
    """What a credential helper is asked for, as docker asks it: Docker Hub's
    address as the engine gives it (``https://index.docker.io/v1/``); "" for the host."""

    @property
    def plain_http(self) -> bool:
        """Plain HTTP by configuration, or for a loopback host (see reference.plain_http)."""
        return self.url.startswith("http://")


@dataclass(frozen=True)
class Member:
    """One entry of a manifest list."""

    digest: str
    platform: Platform

    @property
    def is_attestation(self) -> bool:
        return self.platform == UNKNOWN_PLATFORM


@dataclass(frozen=True)
class Remote:
    """A tag (or digest) as the registry holds it: one image, or a list of them."""

    ref: str
    digest: str
    labels: Mapping[str, str] = field(default_factory=dict)
    """An image's config labels; empty for a list."""
    platform: Platform | None = None
    """An image's platform, from its config; None for a list."""
    members: tuple[Member, ...] | None = None
    """A list's entries; None for an image."""

    @property
    def is_list(self) -> bool:
        return self.members is not None

    @property
    def parts(self) -> frozenset[str]:
        """A list's member digests (empty for an image)."""
        return frozenset(member.digest for member in self.members or ())


def part_name(repo: str, tag: str, arch_name: str) -> str:
    """The one naming rule for a tag's image of one arch when a repo has several
    arches: what `build` pushes and what `join` looks for."""
    return f"{repo}:{tag}-{arch_name}"


def split(image_name: str) -> tuple[str, str]:
    """A full image name as the registry API names it: (repository path, tag or digest)."""
    if "@" in image_name:
        repo, _, tag = image_name.partition("@")
    else:
        repo, _, tag = image_name.rpartition(":")
    host = reference.registry_host(repo)
    path = repo[len(host) + 1 :] if host else reference.hub_path(repo)
    if "/" not in path and host is None:
        path = f"library/{path}"  # Docker Hub's official images; another registry's one-part name is itself
    return path, tag


def for_repos(
    repos: Iterable[str], *, insecure: bool | None, hub_address: Callable[[], str | None], program: str = "docker"
) -> list[Registry]:
    """The registries ``repos`` push to, once each. ``hub_address`` asks the
    engine for Docker Hub's address (only called when a repo has no host;
    None where it was not asked)."""
    found: dict[str, Registry] = {}
    for repo in repos:
        host = reference.registry_host(repo)
        if host is None:
            address = hub_address()
            if not address:
                continue  # not asked (a dry run): nothing to check there
            hub = urlsplit(address).netloc or address  # docker: https://index.docker.io/v1/; podman: docker.io
            api = reference.HUB_API if hub in reference.HUB_NAMES else hub
            found.setdefault(hub, Registry("Docker Hub", hub, f"https://{api}", f"`{program} login`", address))
            continue
        scheme = "http" if reference.plain_http(repo, insecure) else "https"
        found.setdefault(host, Registry(host, host, f"{scheme}://{host}", f"`{program} login {host}`"))
    return list(found.values())


def labels_of(config: object) -> dict[str, str] | None:
    """An image config's labels: {} where it holds none; None where they are
    not text by name, which docker's own ``map[string]string`` would refuse."""
    if not isinstance(config, Mapping):
        return {}
    inner = config.get("config")
    labels = inner.get("Labels") if isinstance(inner, Mapping) else None
    if labels is None:
        return {}
    if not isinstance(labels, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        return None
    return dict(labels)


def platform_of(data: object) -> Platform | None:
    """The platform an image config or a list entry's ``platform`` names; None where it names none."""
    if not isinstance(data, Mapping):
        return None
    os_, architecture, variant = (data.get(key) for key in ("os", "architecture", "variant"))
    if not isinstance(os_, str) or not isinstance(architecture, str):
        return None
    return Platform(os_, architecture, variant if isinstance(variant, str) and variant else None)
