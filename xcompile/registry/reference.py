"""Docker image reference grammar (distribution/reference): names, tags, digests, and a reference split into them.

Every name and tag is checked here before anything runs, so that a tag such
as ``3.7;rm -rf /`` or ``../x`` never reaches a command line or a file name.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket

from xcompile.errors import UsageError

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_DOMAIN_ONLY = re.compile(_DOMAIN)
_NAME = re.compile(rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
_TAG = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_NAME_MAX = 255
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
"""A content digest as xcompile takes one: sha256, lower-case hex (``NAME@DIGEST``, a manifest's)."""


def check_tag(tag: str, *, suffix: str = "") -> str:
    """``suffix`` is what the image's tag adds to the user's (``-<arch>``)."""
    if not _TAG.fullmatch(tag):
        msg = f"invalid tag {_show(tag)}"
        raise UsageError(
            msg,
            hint="a tag is 1-128 of letters, digits, '_', '.' and '-', not starting with '.' or '-'",
        )
    if suffix and not _TAG.fullmatch(tag + suffix):
        msg = f"tag {_show(tag)} is too long for several arches: with {suffix!r} it is {len(tag + suffix)} characters"
        raise UsageError(
            msg,
            hint="a tag is at most 128 characters",
        )
    return tag


def check_name(name: str, *, what: str = "repository") -> str:
    """A repository name without tag or digest, e.g. ``localhost:5000/team/app``."""
    if ":" in name.rsplit("/", 1)[-1] or "@" in name:
        msg = f"invalid {what} {_show(name)}: give the name without a tag or digest"
        raise UsageError(
            msg,
            hint="tags are set with --tag",
        )
    first, _, rest = name.partition("/")
    # Docker reads an uppercase first component as a registry host; a user
    # who typed 'Team/app' almost surely meant a repository, so refuse it.
    looks_like_host = "." in first or ":" in first or first == "localhost"
    if rest and looks_like_host and not _DOMAIN_ONLY.fullmatch(first):
        # 'exa_mple.com/app' matches as a path, but docker reads it as a host
        # (it has a dot) and refuses the '_'.
        msg = f"invalid {what} {_show(name)}: {_show(first)} is not a valid registry host"
        raise UsageError(
            msg,
            hint="a host is letters, digits, '-' and '.', with an optional :port",
        )
    if len(name) > _NAME_MAX or not _NAME.fullmatch(name) or (rest and not looks_like_host and first != first.lower()):
        msg = f"invalid {what} {_show(name)}"
        raise UsageError(
            msg,
            hint="use lowercase path components like 'team/app', optionally after 'host[:port]/'",
        )
    return name


def split_name(name: str, command: str) -> tuple[str, str]:
    """NAME[:TAG|@DIGEST], as a command (``command``: its name, for the error) is given an image:
    the repository and the tag or digest, each checked; the tag defaults to latest."""
    if "@" in name:
        repo, _, tag = name.partition("@")
    else:
        last = name.rsplit("/", 1)[-1]
        repo, tag = (name.rsplit(":", 1)) if ":" in last else (name, "latest")
    try:
        check_name(repo, what="image")
        if "@" not in name:
            check_tag(tag)
    except UsageError as err:
        msg = f"{command}: {err.message}"
        raise UsageError(msg, hint=err.hint) from None
    if "@" in name and not DIGEST.fullmatch(tag):  # never a path or a tag in the registry's URL
        msg = f"{command}: invalid digest {tag[:80]!r} in {name[:200]!r}"
        raise UsageError(msg, hint="a digest is sha256: and 64 lower-case hex digits")
    return repo, tag


HUB_NAMES = ("docker.io", "index.docker.io")
"""What Docker Hub is called in an image name, as docker reads names: ``docker.io/team/app``
is ``team/app``. Only there is a one-part name an official image (``python`` is
``library/python``); elsewhere it is itself."""
HUB_API = "index.docker.io"
"""Where Docker Hub answers the registry API under either name (docker.io itself serves a web page)."""


def registry_host(repo: str) -> str | None:
    """The registry part of a repository name; None for Docker Hub, however it is written."""
    first, _, rest = repo.partition("/")
    looks_like_host = rest and ("." in first or ":" in first or first == "localhost")
    return first if looks_like_host and first not in HUB_NAMES else None


def hub_path(repo: str) -> str:
    """A Docker Hub repository without the Hub's name, if it was written: ``docker.io/team/app`` is ``team/app``."""
    for hub in HUB_NAMES:
        if repo.startswith(f"{hub}/"):
            return repo.removeprefix(f"{hub}/")
    return repo


def is_loopback(host: str) -> bool:
    """Whether ``host`` (name[:port]) is this machine, as the docker daemon judges the
    registries it talks plain HTTP to without any insecure-registry setting: by the
    addresses the name resolves to, any in 127.0.0.0/8 or ::1. So `LOCALHOST`, an
    /etc/hosts alias and `[0:0:0:0:0:0:0:1]` are, as `localhost` and `127.0.0.1` are."""
    name = host[1:].partition("]")[0] if host.startswith("[") else host.partition(":")[0]
    return _resolves_to_loopback(name.lower())


@functools.lru_cache(maxsize=64)
def _resolves_to_loopback(name: str) -> bool:
    try:
        found = {str(info[4][0]) for info in socket.getaddrinfo(name, None)}
    except (OSError, UnicodeError, ValueError):  # not a name this host resolves: the name as an address, if it is one
        found = {name}
    return any(_loopback_address(address) for address in found)


def _loopback_address(text: str) -> bool:
    try:
        address = ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def plain_http(name: str, insecure: bool | None = None) -> bool:
    """Whether pushing or pulling ``name`` speaks plain HTTP: as configured
    (``insecure``), else for loopback registries only, as the docker daemon decides."""
    if insecure is not None:
        return insecure
    host = registry_host(name)
    return host is not None and is_loopback(host)


def _show(value: str) -> str:
    return repr(value if len(value) <= 60 else value[:57] + "...")
