"""`xcompile qemu --versions`: which qemu versions the mirror serves, suite by suite, and whose key signed each.

Read as a pin is resolved (fetcher.offers): the release suites and their
``-updates`` and ``-backports``, each index once, from the cache while its
InRelease is unchanged. Every emulator comes from the same packages, so each
emulator's table lists the same suites; the tables say so per emulator, as
the pin would take it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from xcompile.errors import QemuUnavailable
from xcompile.host import platforms
from xcompile.settings.config import Config
from xcompile.system.runner import Runner
from xcompile.system.terminal import printable

if TYPE_CHECKING:
    from xcompile.archive.fetcher import Archive, Offer

COLUMNS = ("suite", "package", "version", "signed by")


def offers(config: Config, runner: Runner) -> tuple[list[Offer], list[str]] | None:
    """Every qemu package version the configured mirror holds, and the suites passed over
    because their Release had expired (None: not asked, a dry run)."""
    from xcompile.archive import fetcher

    found = archive(config, runner)
    return runner.look(lambda: fetcher.offers(found, config.cache_dir, offline=config.offline, runner=runner))


def archive(config: Config, runner: Runner) -> Archive:
    """The configured mirror (else the host's apt's), as the settings say to trust it."""
    from xcompile.archive import fetcher
    from xcompile.qemu import settle

    mirror = config.mirror or settle.apt_mirror(runner)
    if mirror is None:
        msg = "no Debian mirror to list qemu versions from"
        raise QemuUnavailable(
            msg,
            hint="give one with --mirror URL, XCOMPILE_MIRROR, or `mirror =` in the config file",
        )
    return fetcher.Archive(mirror, config.suite, (config.keyring,) if config.keyring else (), config.allow_unsigned)


def table(found: list[Offer], arches: tuple[platforms.Arch, ...]) -> str:
    """A table for each emulator the targets need."""
    # Escaped before the widths are taken, so that a key's odd user id keeps the columns straight.
    rows = [tuple(map(printable, (o.suite, o.package, o.version, _signer(o.signer)))) for o in found]
    widths = [max(len(row[i]) for row in [COLUMNS, *rows]) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [COLUMNS, *rows]
    ]
    return "\n\n".join(f"{arch.qemu_binary}:\n" + "\n".join(lines) for arch in platforms.one_per_emulator(arches))


def as_json(found: list[Offer], arches: tuple[platforms.Arch, ...]) -> dict[str, Any]:
    rows = [{"suite": o.suite, "package": o.package, "version": o.version, "signer": o.signer} for o in found]
    return {arch.qemu_binary: rows for arch in platforms.one_per_emulator(arches)}


def passed_over(suites: list[str]) -> str | None:
    """The warning for the suites not listed, if any."""
    if not suites:
        return None
    whose = "its Release has" if len(suites) == 1 else "their Release files have"
    return f"not listed: {', '.join(suites)} ({whose} expired on the mirror: stale versions are not to be trusted)"


def _signer(signer: str) -> str:
    """The key's user id without its e-mail and fingerprint; "NOT verified" for none."""
    if not signer:
        return "NOT verified"
    name = signer.split(" <", 1)[0] if " <" in signer else signer.rsplit(" (", 1)[0]
    return name.strip() or signer
