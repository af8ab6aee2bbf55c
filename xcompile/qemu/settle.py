"""Step 1: settle on a static qemu for each emulator the targets need, and say which one it is.

Sources, tried in this order by ``auto``: PATH, apt (qemu-user-static), and
a verified download (a Debian archive, or a direct URL with its SHA256).
With a pin (``qemu_version``: an exact Debian version, or an upstream prefix
such as ``7.2``), a qemu on PATH or from apt whose version differs is never
used silently: ``path`` and ``apt`` refuse, ``auto`` says so and downloads
the pinned one. Every emulator the download needs comes from one fetch, so
a package is read once for all of them.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from xcompile.archive import pins
from xcompile.errors import CommandFailed, QemuUnavailable, XcompileError
from xcompile.host import elf, platforms
from xcompile.host.platforms import Arch
from xcompile.settings.config import Config
from xcompile.system import files
from xcompile.system.runner import Runner
from xcompile.system.terminal import Say
from xcompile.urls import redact

# The archive's modules (requests, python-debian) load only where qemu is
# downloaded: every run pays their import otherwise.
if TYPE_CHECKING:
    from xcompile.archive import download, fetcher

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
    version: str = ""
    """The Debian version, or the first line of its --version; "" where unknown (a dry run)."""
    source: str = ""
    """Where it came from, for the image's label: "debian trixie qemu-user 1:10.0.13+ds-0+deb13u1",
    "apt qemu-user-static 1:7.2+dfsg-7+deb12u18+b3", "path /usr/bin/qemu-arm-static", or a URL."""
    notes: tuple[str, ...] = ()
    """Warnings on the way, for the user."""


def ensure_all(
    arches: tuple[Arch, ...],
    runner: Runner,
    config: Config,
    say: Say,
    progress: download.ProgressCallback | None = None,
) -> list[Qemu]:
    """A qemu for each emulator the arches need, saying where each came from."""
    wanted = platforms.one_per_emulator(arches)
    found: dict[str, Qemu] = {}
    fetch: list[Arch] = []
    notes: dict[str, tuple[str, ...]] = {}
    for arch in wanted:
        local, why = _local(arch, runner, config)
        if local is not None:
            found[arch.qemu_binary] = local
        else:
            fetch.append(arch)
            notes[arch.qemu_binary] = why
    for one in _download(fetch, runner, config, progress):
        found[one.binary] = replace(one, notes=(*notes[one.binary], *one.notes))
    said: set[str] = set()
    for arch in wanted:
        one = found[arch.qemu_binary]
        for note in one.notes:
            if note not in said:  # one fetch's note (a suite passed over) is said once, not once per emulator
                said.add(note)
                say(f"warning: {note}", None)
        say(f"qemu: {one.path} ({one.how})", None)
    return [found[arch.qemu_binary] for arch in wanted]


def ensure(arch: Arch, runner: Runner, config: Config, progress: download.ProgressCallback | None = None) -> Qemu:
    """``ensure_all`` of one arch, saying nothing (its notes are on the result)."""
    local, why = _local(arch, runner, config)
    if local is not None:
        return local
    fetched = _download([arch], runner, config, progress)[0]
    return replace(fetched, notes=(*why, *fetched.notes))


def _local(arch: Arch, runner: Runner, config: Config) -> tuple[Qemu | None, tuple[str, ...]]:
    """The emulator from PATH or apt, as the source and the pin allow; else None and why not (notes)."""
    source, pin = config.qemu_source, config.qemu_version
    if source == "download":
        return None, ()
    if source in ("auto", "path"):
        found = runner.which(arch.qemu_binary)
        if found is not None:
            other = _for_another_cpu(found, config.qemu_host_arch)
            if other is not None and source == "path":
                raise QemuUnavailable(other, hint=f"put a static qemu built for {config.qemu_host} first on PATH,"
                                      " or use --qemu-source download")  # fmt: skip
            if other is not None:
                return _not_local(arch, runner, config, (f"{other}; set aside",))
            _check_on_path(found, config.qemu_host_arch)
            version, notes = version_of(found, runner)
            if pin is None or pins.satisfies(version, pin):
                how = "found on PATH" + (f", {version}" if version else "")
                return Qemu(arch.qemu_binary, found, how, version, f"path {found}", notes), ()
            differs = f"{found} on PATH is {version}, not the pinned {pin}"
            if source == "path":
                raise QemuUnavailable(differs, hint="put the pinned qemu first on PATH, or use --qemu-source download")
            return _not_local(arch, runner, config, (f"{differs}; not used",))
        if source == "path":
            msg = f"{arch.qemu_binary} is not on PATH"
            raise QemuUnavailable(
                msg,
                hint="install qemu-user-static, or use --qemu-source apt or download",
            )
    if source == "apt":
        other = _apt_builds_for_another(config)
        if other is not None:
            raise QemuUnavailable(other, hint="use --qemu-source download (or auto)")
        return _apt_install(arch, runner, pin), ()
    return _not_local(arch, runner, config, ())


def _not_local(
    arch: Arch, runner: Runner, config: Config, notes: tuple[str, ...]
) -> tuple[Qemu | None, tuple[str, ...]]:
    """``auto`` past PATH: apt where it can work here (and has the pin), else (or when it fails) the download."""
    can_download = bool(config.offline or config.qemu_url or config.mirror or apt_mirror(runner))
    other = _apt_builds_for_another(config)
    if other is not None and not config.offline and apt_usable(runner):
        notes = (*notes, f"{other}; downloading {arch.qemu_binary} instead")
    elif not config.offline and apt_usable(runner):
        try:
            return _apt_install(arch, runner, config.qemu_version), notes
        except XcompileError as err:
            if not can_download:
                raise
            return None, (*notes, f"apt could not provide {arch.qemu_binary} ({err}); downloading it instead")
    if not can_download:
        msg = f"{arch.qemu_binary} is not on PATH, this host has no usable apt-get, and no Debian mirror is configured"
        raise QemuUnavailable(
            msg,
            hint="give a mirror with --mirror URL (or XCOMPILE_MIRROR, or `mirror =` in the config file),"
            " or put a static qemu on PATH",
        )
    return None, notes


def version_of(path: Path, runner: Runner) -> tuple[str, tuple[str, ...]]:
    """The first line of ``path --version`` ("" where not asked, a dry run, or where it says
    nothing), and a note where it failed: such a binary is no qemu, and the proof will say so."""
    try:
        out = runner.ask(path, "--version", timeout=30)
    except CommandFailed as err:
        return "", (f"{path} --version failed ({err.last_words}): it may not be qemu",)
    return (out or "").strip().partition("\n")[0], ()


def _for_another_cpu(found: Path, qemu_host: Arch) -> str | None:
    """Why a qemu on PATH is not for the qemu host's CPU (one line), or None where it is, or is no ELF
    file (``_check_on_path`` says what is wrong with it then)."""
    try:
        built = elf.built_for(found.resolve())
    except OSError:
        return None
    if built is None or (built.elf_machine == qemu_host.elf_machine and built.elf_class == qemu_host.elf_class):
        return None
    return f"{found} on PATH is built for {built.name}, not for the qemu host {qemu_host.name}"


def _apt_builds_for_another(config: Config) -> str | None:
    """apt installs the qemu built for this machine: why that is not the qemu host's, or None."""
    try:
        here = platforms.host()
    except QemuUnavailable:
        return f"apt installs qemu for this machine, not for the qemu host {config.qemu_host}"
    if here.debian_arch == config.qemu_host_arch.debian_arch:
        return None
    return f"apt installs qemu built for this machine ({here.name}), not for the qemu host {config.qemu_host}"


def _check_on_path(found: Path, qemu_host: Arch) -> None:
    """A qemu on PATH goes into every image: it must be a static ELF for the qemu host."""
    try:
        elf.check_static(found.resolve(), qemu_host, f"{found} (on PATH)")
    except OSError as err:
        msg = f"{found} (on PATH) cannot be read: {err.strerror or err}"
        raise QemuUnavailable(msg) from err
    except XcompileError as err:
        raise QemuUnavailable(
            err.message,
            hint="put Debian's qemu-user-static (or another static build) first on PATH, or use --qemu-source download",
        ) from err


# --- apt -------------------------------------------------------------------


def apt_usable(runner: Runner) -> bool:
    return runner.which("apt-get") is not None and (os.geteuid() == 0 or runner.which("sudo") is not None)


def _apt_install(arch: Arch, runner: Runner, pin: str | None) -> Qemu:
    if runner.which("apt-get") is None:
        msg = f"{arch.qemu_binary} is not on PATH and this host has no apt-get"
        raise QemuUnavailable(
            msg,
            hint="install a static qemu (e.g. your distribution's qemu-user-static) and put it on PATH",
        )
    sudo: tuple[str, ...] = ()
    if os.geteuid() != 0:
        if runner.which("sudo") is None:
            msg = f"{arch.qemu_binary} is not on PATH, and installing it with apt needs root"
            raise QemuUnavailable(
                msg,
                hint="run as root, install sudo, or put a static qemu on PATH",
            )
        sudo = ("sudo",)
    notes: list[str] = []
    try:
        runner.stream(*sudo, "apt-get", "update", label="qemu", terminal=bool(sudo))
    except CommandFailed as err:
        # One unreachable or mid-sync index fails the whole update, while
        # the lists apt already has usually still hold qemu-user-static.
        notes.append(f"apt-get update failed ({err}); trying with the package lists apt already has")
    candidates = {pkg: apt_candidate(runner, pkg) for pkg in APT_PACKAGES}
    first = candidates[APT_PACKAGES[0]]
    if first == "":
        msg = f"apt has no {APT_PACKAGES[0]} package on this release"
        raise QemuUnavailable(
            msg,
            hint="check the apt sources, or put a static qemu on PATH",
        )
    if pin is not None and first is not None and not pins.satisfies(first, pin):
        msg = f"apt would install {APT_PACKAGES[0]} {first}, not the pinned {pin}"
        raise QemuUnavailable(msg)
    # Unknown (a dry run asks nothing) counts as there: the plan shows the install.
    wanted = [pkg for pkg, there in candidates.items() if there != ""]
    runner.stream(*sudo, "apt-get", "install", "-y", *wanted, label="qemu", terminal=bool(sudo))
    if first is None:
        return Qemu(arch.qemu_binary, APT_BIN_DIR / arch.qemu_binary, "to be installed with apt", notes=tuple(notes))
    path = runner.which(arch.qemu_binary) or APT_BIN_DIR / arch.qemu_binary
    if not path.is_file():
        msg = f"apt installed {APT_PACKAGES[0]}, but {arch.qemu_binary} is still missing"
        raise QemuUnavailable(msg)
    return Qemu(arch.qemu_binary, path, "installed with apt", first, f"apt {APT_PACKAGES[0]} {first}", tuple(notes))


def apt_candidate(runner: Runner, package: str) -> str | None:
    """The version apt would install ("" where it has none); None: not asked (a dry run)."""
    policy = runner.ask("apt-cache", "policy", package, label="qemu")
    if policy is None:
        return None
    match = re.search(r"^\s*Candidate:\s*(\S+)", policy, re.MULTILINE)
    return "" if match is None or match.group(1) == "(none)" else match.group(1)


# --- download --------------------------------------------------------------


def apt_mirror(runner: Runner) -> str | None:
    # A host's apt sources count only where it has apt to use them.
    from xcompile.host import aptsources

    return aptsources.debian_mirror() if runner.which("apt-get") else None


def _download(
    arches: list[Arch], runner: Runner, config: Config, progress: download.ProgressCallback | None
) -> list[Qemu]:
    """The emulators from a URL each, or all from one fetch from the Debian archive."""
    if not arches:
        return []
    if config.qemu_url and config.qemu_sha256:
        return [_fetch_direct(arch, runner, config, progress) for arch in arches]
    mirror = config.mirror or apt_mirror(runner)
    if mirror is None:
        msg = f"no Debian mirror to download {arches[0].qemu_binary} from"
        raise QemuUnavailable(
            msg,
            hint="give one with --mirror URL, XCOMPILE_MIRROR, or `mirror =` in the config file",
        )
    from xcompile.archive import fetcher

    archive = fetcher.Archive(mirror, config.suite, (config.keyring,) if config.keyring else (), config.allow_unsigned)
    binaries = [arch.qemu_binary for arch in arches]
    results = runner.look(
        lambda: fetcher.fetch_all(
            binaries,
            archive,
            config.cache_dir,
            pin=config.qemu_version,
            offline=config.offline,
            host_arch=config.qemu_host_arch.debian_arch,
            progress=progress,
            runner=runner,
        )
    )
    if results is None:  # not fetched (a dry run): the plan names where from
        where = f"{archive.shown} ({config.suite})" if config.qemu_version is None else archive.shown
        pinned = f", qemu {config.qemu_version}" if config.qemu_version else ""
        return [
            Qemu(b, config.cache_dir / "bin" / "SHA256" / b, f"to be downloaded from {where}{pinned}") for b in binaries
        ]
    return [_from_archive(result, archive, binary) for result, binary in zip(results, binaries, strict=True)]


def _from_archive(result: fetcher.FetchResult, archive: fetcher.Archive, binary: str) -> Qemu:
    trust = f"signed by {result.signer}" if result.signer else "signature NOT verified"
    where = "downloaded from" if result.downloaded else "cached from"
    how = f"{where} {archive.shown} ({result.codename}, {result.package} {result.version}, {trust})"
    source = f"debian {result.codename} {result.package} {result.version}"
    return Qemu(binary, result.path, how, result.version, source, result.notes)


def _fetch_direct(arch: Arch, runner: Runner, config: Config, progress: download.ProgressCallback | None) -> Qemu:
    url, sha256 = str(config.qemu_url), str(config.qemu_sha256)
    shown = redact(url)
    final = config.cache_dir / "url" / sha256 / arch.qemu_binary
    fetched = runner.look(lambda: _fetch_url(arch, config.qemu_host_arch, url, sha256, final, config.offline, progress))
    if fetched is None:
        return Qemu(arch.qemu_binary, final, f"to be downloaded from {shown}", source=shown)
    version, notes = version_of(final, runner)
    if config.qemu_version is not None and not pins.satisfies(version, config.qemu_version):
        msg = f"{shown} is {version or 'a qemu that says no version'}, not the pinned {config.qemu_version}"
        raise QemuUnavailable(msg)
    return Qemu(arch.qemu_binary, final, fetched, version, shown, notes)


def _fetch_url(
    arch: Arch,
    host: Arch,
    url: str,
    sha256: str,
    final: Path,
    offline: bool,
    progress: download.ProgressCallback | None,
) -> str:
    """``url`` into the cache at ``final`` (unless it is there); how it was had, in words.
    It must be a static ELF for ``host``, the qemu host."""
    from xcompile.archive import download, transfer

    shown = redact(url)
    if final.is_file() and files.sha256_of(final) == sha256:
        elf.check_static(final, host, shown)  # cached for another qemu host, maybe
        return f"cached from {shown}"
    if offline:
        msg = f"offline: {shown} is not in the cache ({final})"
        raise QemuUnavailable(msg, hint="run once without --offline")
    with contextlib.closing(download.make_session()) as session, download.cached(final, mode=0o755) as part:
        expected = transfer.Expected(arch.qemu_binary, sha256=sha256, source="--qemu-sha256")
        download.download_file(session, url, part, expected, timeout=30.0, progress=progress)
        elf.check_static(part, host, shown)
    return f"downloaded from {shown} (SHA256 checked)"


def copy_to(found: Qemu, folder: Path, runner: Runner) -> Path:
    """Copy the binary into ``folder``: whole, or not at all (a private temp file there, renamed into
    place, so a planted symlink is never written through and two runs at once never clobber each other)."""
    final = folder / found.binary
    try:
        with runner.replacing(final, mode=0o755) as part:
            runner.run("cp", found.path, part)
    except OSError as err:
        msg = f"cannot write {final}: {err.strerror or err}"
        raise QemuUnavailable(msg) from err
    return final
