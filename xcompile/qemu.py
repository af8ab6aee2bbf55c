"""Step 1: settle on a static qemu for the target.

Sources, tried in this order by ``auto``: PATH, apt (qemu-user-static), and
a verified download (a Debian archive, or a direct URL with its SHA256).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from xcompile import elf, files, platforms
from xcompile.config import Config
from xcompile.errors import CommandFailed, QemuUnavailable, XcompileError
from xcompile.platforms import Arch
from xcompile.runner import Runner
from xcompile.urls import redact

# The archive's modules (requests, python-debian) load only where qemu is not
# on PATH: every run pays their import otherwise (issue 8's fixed cost).
if TYPE_CHECKING:
    from xcompile import download

# Debian 12 has no package named "qemu" (the original script asked for it and
# died there), so only packages that exist are asked for, and only the first
# is required: binfmt-support just registers the emulators with the kernel.
APT_PACKAGES = ("qemu-user-static", "binfmt-support")
APT_BIN_DIR = Path("/usr/bin")


@dataclass(frozen=True)
class Qemu:
    binary: str
    """Its name, e.g. qemu-arm-static."""
    path: Path
    how: str
    """How it was found, for the user: "found on PATH", "installed with apt", ..."""
    notes: tuple[str, ...] = ()
    """Warnings on the way, for the user."""


def ensure(arch: Arch, runner: Runner, config: Config, progress: download.ProgressCallback | None = None) -> Qemu:
    source = config.qemu_source
    if source in ("auto", "path"):
        found = runner.which(arch.qemu_binary)
        if found is not None:
            _check_on_path(found)
            return Qemu(arch.qemu_binary, found, "found on PATH")
        if source == "path":
            raise QemuUnavailable(
                f"{arch.qemu_binary} is not on PATH",
                hint="install qemu-user-static, or use --qemu-source apt or download",
            )
    if source == "apt":
        return _apt_install(arch, runner)
    if source == "download":
        return _download(arch, runner, config, progress, config.mirror or _apt_mirror(runner))
    # auto: apt where it can work here, else (or when it fails) the download.
    mirror = config.mirror or _apt_mirror(runner)
    can_download = bool(config.offline or config.qemu_url or mirror)
    apt_failed: tuple[str, ...] = ()
    if not config.offline and _apt_usable(runner):
        try:
            return _apt_install(arch, runner)
        except XcompileError as err:
            if not can_download:
                raise
            apt_failed = (f"apt could not provide {arch.qemu_binary} ({err}); downloading it instead",)
    elif not can_download:
        raise QemuUnavailable(
            f"{arch.qemu_binary} is not on PATH, this host has no usable apt-get, and no Debian mirror is configured",
            hint="give a mirror with --mirror URL (or XCOMPILE_MIRROR, or `mirror =` in the config file),"
            " or put a static qemu on PATH",
        )
    fetched = _download(arch, runner, config, progress, mirror)
    return Qemu(fetched.binary, fetched.path, fetched.how, (*apt_failed, *fetched.notes))


def _check_on_path(found: Path) -> None:
    """A qemu on PATH goes into every image: it must be a static ELF for this host."""
    try:
        elf.check_static(found.resolve(), platforms.host(), f"{found} (on PATH)")
    except OSError as err:
        raise QemuUnavailable(f"{found} (on PATH) cannot be read: {err.strerror or err}") from err
    except XcompileError as err:
        raise QemuUnavailable(
            err.message,
            hint="put Debian's qemu-user-static (or another static build) first on PATH, or use --qemu-source download",
        ) from err


# --- apt -------------------------------------------------------------------


def _apt_usable(runner: Runner) -> bool:
    return runner.which("apt-get") is not None and (os.geteuid() == 0 or runner.which("sudo") is not None)


def _apt_install(arch: Arch, runner: Runner) -> Qemu:
    notes: list[str] = []
    if runner.which("apt-get") is None:
        raise QemuUnavailable(
            f"{arch.qemu_binary} is not on PATH and this host has no apt-get",
            hint="install a static qemu (e.g. your distribution's qemu-user-static) and put it on PATH",
        )
    sudo: tuple[str, ...] = ()
    if os.geteuid() != 0:
        if runner.which("sudo") is None:
            raise QemuUnavailable(
                f"{arch.qemu_binary} is not on PATH, and installing it with apt needs root",
                hint="run as root, install sudo, or put a static qemu on PATH",
            )
        sudo = ("sudo",)
    try:
        runner.stream(*sudo, "apt-get", "update", label="qemu", terminal=bool(sudo))
    except CommandFailed as err:
        # One unreachable or mid-sync index fails the whole update, while
        # the lists apt already has usually still hold qemu-user-static.
        notes.append(f"apt-get update failed ({err}); trying with the package lists apt already has")
    candidates = {pkg: _has_candidate(runner, pkg) for pkg in APT_PACKAGES}
    if candidates[APT_PACKAGES[0]] is False:
        raise QemuUnavailable(
            f"apt has no {APT_PACKAGES[0]} package on this release",
            hint="check the apt sources, or put a static qemu on PATH",
        )
    # Unknown (a dry run asks nothing) counts as there: the plan shows the install.
    wanted = [pkg for pkg, there in candidates.items() if there is not False]
    runner.stream(*sudo, "apt-get", "install", "-y", *wanted, label="qemu", terminal=bool(sudo))
    if candidates[APT_PACKAGES[0]] is None:
        return Qemu(arch.qemu_binary, APT_BIN_DIR / arch.qemu_binary, "to be installed with apt", tuple(notes))
    path = runner.which(arch.qemu_binary) or APT_BIN_DIR / arch.qemu_binary
    if not path.is_file():
        raise QemuUnavailable(f"apt installed {APT_PACKAGES[0]}, but {arch.qemu_binary} is still missing")
    return Qemu(arch.qemu_binary, path, "installed with apt", tuple(notes))


def _has_candidate(runner: Runner, package: str) -> bool | None:
    """Whether apt can install ``package``; None: not asked (a dry run)."""
    policy = runner.ask("apt-cache", "policy", package, label="qemu")
    if policy is None:
        return None
    match = re.search(r"^\s*Candidate:\s*(\S+)", policy, re.MULTILINE)
    return match is not None and match.group(1) != "(none)"


# --- download --------------------------------------------------------------


def _apt_mirror(runner: Runner) -> str | None:
    # A host's apt sources count only where it has apt to use them.
    from xcompile import aptsources

    return aptsources.debian_mirror() if runner.which("apt-get") else None


def _download(
    arch: Arch, runner: Runner, config: Config, progress: download.ProgressCallback | None, mirror: str | None
) -> Qemu:
    if config.qemu_url and config.qemu_sha256:
        return _fetch_direct(arch, runner, config, progress)
    if mirror is None:
        raise QemuUnavailable(
            f"no Debian mirror to download {arch.qemu_binary} from",
            hint="give one with --mirror URL, XCOMPILE_MIRROR, or `mirror =` in the config file",
        )
    from xcompile import debian

    archive = debian.Archive(
        mirror,
        config.suite,
        keyrings=(config.keyring,) if config.keyring else (),
        allow_unsigned=config.allow_unsigned,
    )
    result = runner.look(
        lambda: debian.fetch_qemu(
            arch.qemu_binary, archive, config.cache_dir, offline=config.offline, progress=progress, runner=runner
        )
    )
    if result is None:  # not fetched (a dry run): the plan names where from
        return Qemu(
            arch.qemu_binary,
            config.cache_dir / "bin" / "SHA256" / arch.qemu_binary,
            f"to be downloaded from {archive.shown} ({config.suite})",
        )
    trust = f"signed by {result.signer}" if result.signer else "signature NOT verified"
    where = "downloaded from" if result.downloaded else "cached from"
    how = f"{where} {archive.shown} ({result.codename}, {result.package} {result.version}, {trust})"
    return Qemu(arch.qemu_binary, result.path, how, result.notes)


def _fetch_direct(arch: Arch, runner: Runner, config: Config, progress: download.ProgressCallback | None) -> Qemu:

    url, sha256 = str(config.qemu_url), str(config.qemu_sha256)
    shown = redact(url)
    final = config.cache_dir / "url" / sha256 / arch.qemu_binary
    fetched = runner.look(lambda: _fetch_url(arch, url, sha256, final, config.offline, progress))
    return Qemu(arch.qemu_binary, final, fetched or f"to be downloaded from {shown}")


def _fetch_url(
    arch: Arch, url: str, sha256: str, final: Path, offline: bool, progress: download.ProgressCallback | None
) -> str:
    """``url`` into the cache at ``final`` (unless it is there); how it was had, in words."""
    from xcompile import download

    shown = redact(url)
    host = platforms.host()
    if final.is_file() and files.sha256_of(final) == sha256:
        return f"cached from {shown}"
    if offline:
        raise QemuUnavailable(f"offline: {shown} is not in the cache ({final})", hint="run once without --offline")
    with contextlib.closing(download.make_session()) as session, download.cached(final, mode=0o755) as part:
        download.download_file(
            session,
            url,
            part,
            timeout=30.0,
            sha256=sha256,
            what=arch.qemu_binary,
            source="--qemu-sha256",
            progress=progress,
        )
        elf.check_static(part, host, shown)
    return f"downloaded from {shown} (SHA256 checked)"


def ensure_all(
    arches: tuple[Arch, ...],
    runner: Runner,
    config: Config,
    say: Callable[[str], None],
    progress: download.ProgressCallback | None = None,
) -> list[Qemu]:
    """``ensure`` once per emulator the arches need, saying where each came from."""
    found = []
    for arch in platforms.one_per_emulator(arches):
        one = ensure(arch, runner, config, progress)
        for note in one.notes:
            say(f"warning: {note}")
        say(f"qemu: {one.path} ({one.how})")
        found.append(one)
    return found


def copy_to(found: Qemu, folder: Path, runner: Runner) -> Path:
    """Copy the binary into ``folder``: whole, or not at all.

    Through a private temp file made there (mkstemp), so a planted symlink is
    never written through, and two runs at once each rename a whole file of
    their own into place.
    """
    final = folder / found.binary
    try:
        with runner.replacing(final, mode=0o755) as part:
            runner.run("cp", found.path, part)
    except OSError as err:
        raise QemuUnavailable(f"cannot write {final}: {err.strerror or err}") from err
    return final
