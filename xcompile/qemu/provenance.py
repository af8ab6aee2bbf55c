"""Which Debian package an image's qemu claims to be, and that package's binary, by xcompile's own signed chain.

The labels say where the qemu came from (recipe.QEMU_SOURCE) and which
version it is (recipe.QEMU_VERSION). A download names its package and exact
Debian version; a qemu from apt names its Debian version; one from PATH
names it where its ``--version`` does ("... (Debian 1:7.2+dfsg-7+deb12u18+b3)").
That version is the pin: the binary is fetched as `xcompile qemu` fetches it
(fetcher.fetch_all: the Release's signature, the index's hash, the package's
hash), for the CPU the image's emulator is built for, and its SHA256 is what
the image's file must have. A qemu from a URL names no package: it cannot be
verified, only its SHA256 read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from xcompile.errors import CannotTell, PackageMissing, XcompileError
from xcompile.host.platforms import Arch
from xcompile.registry import recipe
from xcompile.settings.config import Config
from xcompile.system.runner import Runner

if TYPE_CHECKING:  # the archive's modules (requests, python-debian) load only where one is read
    from xcompile.archive import fetcher

_SAID_BY_QEMU = re.compile(r"\(Debian ([0-9][^\s()]*)\)")


@dataclass(frozen=True)
class Claim:
    """What the labels say of the qemu: a Debian version to check, and how it came in."""

    version: str | None
    """An exact Debian version; None where the labels name none (a URL, or no labels)."""
    came: str
    """"download", "apt", "path" or "url"; "unknown" where the label says nothing."""


@dataclass(frozen=True)
class Origin:
    """The package binary that the signed chain gives for a claim."""

    package: str
    version: str
    arch: str
    codename: str
    signer: str
    sha256: str


def claim(labels: Mapping[str, str]) -> Claim:
    source = labels.get(recipe.QEMU_SOURCE, "unknown")
    said = labels.get(recipe.QEMU_VERSION, "")
    words = source.split()
    if words[:1] == ["debian"] and len(words) == 4:
        return Claim(words[3], "download")
    if words[:1] == ["apt"] and len(words) == 3:
        return Claim(words[2], "apt")
    if words[:1] == ["path"]:
        found = _SAID_BY_QEMU.search(said)
        return Claim(found.group(1) if found else None, "path")
    return Claim(None, "url" if "://" in source else "unknown")


def fetch(binary: str, host: Arch, version: str, config: Config, runner: Runner) -> Origin:
    """The signed chain's ``binary`` of qemu ``version`` for ``host``'s CPU; CannotTell where the
    mirror cannot give it (unreachable, no suite serves that version, or a chain that does not hold)."""
    from xcompile.archive import fetcher
    from xcompile.qemu.settle import apt_mirror

    mirror = config.mirror or apt_mirror(runner)
    if mirror is None:
        msg = f"no Debian mirror to fetch {binary} {version} from"
        raise CannotTell(msg, hint="give one with --mirror URL")
    keyrings = (config.keyring,) if config.keyring else ()
    archive = fetcher.Archive(mirror, config.suite, keyrings, config.allow_unsigned)
    try:
        found = _cached(archive, binary, host, version, config, runner) or fetcher.fetch_all(
            [binary], archive, config.cache_dir, pin=version, host_arch=host.debian_arch, offline=config.offline,
            runner=runner)  # fmt: skip
    except PackageMissing:
        raise _not_served(archive, version, config, runner) from None
    except XcompileError as err:  # unreachable, a chain that does not hold, a cache that cannot be written
        msg = f"cannot fetch qemu {version} from {archive.shown}: {err.message}"
        raise CannotTell(msg, hint=err.hint) from None
    one = found[0]
    if not one.signer:
        msg = f"{archive.shown}: its Release is not signed by a key given (--allow-unsigned)"
        raise CannotTell(msg, hint="verify needs a signed archive: give its key with --keyring FILE")
    return Origin(one.package, one.version, host.debian_arch, one.codename, one.signer, one.sha256)


def _cached(
    archive: fetcher.Archive, binary: str, host: Arch, version: str, config: Config, runner: Runner
) -> list[fetcher.FetchResult] | None:
    """The binary as the cache holds it from an earlier fetch through the same chain, checked with the
    same keys (debcache.Record.keys); None where it holds none. A package the chain once gave stays proof
    after the archive moves on, and a warm cache spares reading every suite's Release again."""
    from xcompile.archive import fetcher

    try:
        return fetcher.fetch_all([binary], archive, config.cache_dir, pin=version, host_arch=host.debian_arch,
                                offline=True, runner=runner)  # fmt: skip
    except XcompileError:
        return None


def _not_served(archive: fetcher.Archive, version: str, config: Config, runner: Runner) -> CannotTell:
    """Which suites were searched for ``version``, and where it can still be had."""
    from xcompile.archive import fetcher

    try:
        offers, _ = fetcher.offers(archive, config.cache_dir, offline=config.offline, runner=runner)
        suites = ", ".join(dict.fromkeys(offer.suite for offer in offers)) or "none with qemu"
    except XcompileError:
        suites = "its suites"
    msg = f"qemu {version} is in no suite {archive.shown} serves (searched: {suites})"
    return CannotTell(msg, hint="a snapshot mirror of the archive from when it was served can: --mirror URL")
