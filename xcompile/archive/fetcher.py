"""A static qemu from a Debian archive, trusted only as far as the archive's signed chain reaches (archive/release.py).

Two layouts hold the binaries. Up to bookworm, ``qemu-user-static`` holds
``usr/bin/qemu-arm-static`` as a file. From trixie on that package is
transitional: ``qemu-arm-static`` is a link to ``qemu-arm``, and the file is
in ``qemu-user``, a package it depends on. Where a suite has no
``qemu-user-static`` at all (forky, sid, trixie-backports), the search
starts at ``qemu-user`` with ``usr/bin/qemu-arm``. Every emulator wanted is
read out of a package in **one pass** over its data member (archive/debfile.py),
however many there are; a link is followed inside the package, and a path
the package lacks is looked for in the packages it depends on, each fetched
through the same chain.

A pin (``version``: an exact Debian version, or an upstream prefix such as
``7.2``) is looked for in every suite the mirror serves (``offers``): the
release suites and their ``-updates`` and ``-backports``; each suite's index
is read at most once per run, and not at all while its InRelease is the one
the cache knows. Nothing here prints: messages come back in
``FetchResult.notes`` and progress goes to the ``progress`` callback.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import requests

from xcompile.archive import debfile, pins, pkgindex, trust
from xcompile.archive.cache import Binary, Cache
from xcompile.archive.download import MAX_BINARY, ProgressCallback, cache_writes, cached, download_file
from xcompile.archive.pkgindex import Deb
from xcompile.archive.release import Archive, missing_suite
from xcompile.archive.suites import (
    FALLBACK_PACKAGE,
    FIRST_PACKAGE,
    QEMU_PACKAGES,
    Index,
    Offer,
    Suites,
    check_unverified_size,
)
from xcompile.archive.transfer import Expected
from xcompile.errors import PackageMissing, UsageError, VerificationError
from xcompile.host.elf import check_static
from xcompile.host.platforms import Arch
from xcompile.system.runner import Runner

__all__ = ["Archive", "FetchResult", "Offer", "fetch_all", "offers", "pick"]

MAX_LINKS = 8
MAX_PACKAGES = 8
"""How many packages the search from qemu-user-static through Depends may read."""
_CHUNK = 1 << 20


@dataclass(frozen=True)
class FetchResult:
    """A verified static qemu in the cache."""

    path: Path
    sha256: str
    package: str
    version: str
    codename: str
    downloaded: bool
    signer: str
    """Who signed the Release ("" when it was taken unverified with --allow-unsigned)."""
    notes: tuple[str, ...] = ()


def fetch_all(
    binaries: list[str],
    archive: Archive,
    cache_dir: Path,
    *,
    pin: str | None = None,
    offline: bool = False,
    host_arch: str | None = None,
    progress: ProgressCallback | None = None,
    session: requests.Session | None = None,
    timeout: float = 30.0,
    runner: Runner | None = None,
    keyring_dirs: tuple[Path, ...] = trust.HOST_KEYRING_DIRS,
) -> list[FetchResult]:
    """``usr/bin/<binary>`` for each of ``binaries``, from ``archive``'s suite or the cache, in that order.

    ``pin``: the qemu to take, an exact Debian version or an upstream prefix,
    from whichever suite of the mirror holds it (``offers``, ``pick``); the
    archive's suite then only adds itself to those searched.
    ``timeout`` bounds connecting, each read, and each wait a mirror asks for.
    With ``offline``, nothing is fetched: the last run for this mirror and
    suite must have left the binaries (or their .deb) in the cache. ``runner``
    runs gpgv (a silent one when None).
    """
    for binary in binaries:
        if not re.fullmatch(r"qemu-[A-Za-z0-9_]+-static", binary):
            msg = f"{binary!r} is not a static qemu binary name"
            raise UsageError(msg, hint="expected qemu-<arch>-static, e.g. qemu-arm-static")
    with _Mirror.open(archive, cache_dir, host_arch, progress, session, timeout, runner, keyring_dirs, offline) as m:
        if pin is None:
            return m.commit(m.fetch(binaries, archive.suite, None))
        chosen = pick(m.offers(), pin, archive.shown, m.passed_over)
        return m.commit(m.fetch(binaries, chosen.suite, chosen.version))


def offers(
    archive: Archive,
    cache_dir: Path,
    *,
    offline: bool = False,
    session: requests.Session | None = None,
    timeout: float = 30.0,
    runner: Runner | None = None,
    keyring_dirs: tuple[Path, ...] = trust.HOST_KEYRING_DIRS,
) -> tuple[list[Offer], list[str]]:
    """Every qemu package version in every suite the mirror serves, oldest suite first; and
    the suites passed over, whose Release had expired."""
    with _Mirror.open(archive, cache_dir, None, None, session, timeout, runner, keyring_dirs, offline) as mirror:
        found = mirror.offers()
        return mirror.commit(found), list(mirror.passed_over)


def pick(found: list[Offer], pin: str, where: str, passed_over: Sequence[str] = ()) -> Offer:
    """The newest offer that satisfies ``pin`` (pins.satisfies, the rule PATH and apt follow too), or
    PackageMissing listing what there is (and the suites ``passed_over``, whose Release had expired)."""
    fits = [offer for offer in found if pins.satisfies(offer.version, pin)]
    if not fits:
        have = sorted({offer.version for offer in found}, key=lambda v: pkgindex.version_of(v, where))
        expired = f" ({', '.join(passed_over)} passed over: expired)" if passed_over else ""
        msg = f"no suite of {where} holds qemu {pin}; it has {', '.join(have) or 'no qemu at all'}{expired}"
        raise PackageMissing(
            msg,
            hint="pin one of those (an exact version, or a prefix such as 7.2), or use another mirror",
        )
    return max(fits, key=lambda offer: pkgindex.version_of(offer.version, where))


class _Mirror(Suites):
    """An archive's suites, and the packages and binaries fetched from them."""

    def fetch(self, binaries: list[str], suite: str, version: str | None) -> list[FetchResult]:
        index = self.index(suite)
        if index is None:
            raise self.miss(", ".join(binaries)) if self.offline else missing_suite(self.archive.at(suite))
        record = index.record
        results: dict[str, Binary] = {}
        paths: dict[str, Path] = {}
        for binary in binaries:
            known = record.binaries.get(binary)
            if known is not None and (version is None or known.deb.version == version):
                path = self.cache.cached_binary(binary, known, self.host) or self._again(known, binary, record.signer)
                results[binary], paths[binary] = known, path
        missing = [binary for binary in binaries if binary not in results]
        if missing:
            for binary, (found, path) in _Resolve(self, index, version).run(missing).items():
                results[binary], paths[binary] = found, path
                record.binaries[binary] = found
        return [
            FetchResult(
                paths[b],
                results[b].sha256,
                results[b].deb.package,
                results[b].deb.version,
                record.codename,
                self.downloaded,
                record.signer,
                tuple(self.notes),
            )
            for b in binaries
        ]

    def _again(self, known: Binary, binary: str, signer: str) -> Path:
        """A damaged cached binary, extracted again from its .deb (re-verified, or downloaded)."""
        deb_path = self.deb(known.deb, signer)
        with _Extraction(self.cache, known.deb, self.host, {known.member: binary}) as taking:
            found = debfile.read_members(deb_path, [known.member], taking.write)
            if found[known.member].kind != "file":
                msg = f"{deb_path} no longer holds {known.member} as a file"
                raise VerificationError(msg)
            path, sha256 = taking.keep(known.member)
        if sha256 != known.sha256:
            msg = f"{binary} from {deb_path} is not the one recorded"
            raise VerificationError(msg)
        return path

    def deb(self, deb: Deb, signer: str) -> Path:
        """The verified .deb, from the cache or downloaded; ``signer`` "": its index was not verified."""
        kept = self.cache.cached_deb(deb)
        if kept is not None:
            return kept
        if self.offline:
            raise self.miss(deb.package)
        if not signer:
            check_unverified_size(deb.size, MAX_BINARY, f"{self.archive.shown}/{deb.filename}", "Packages")
        with cached(self.cache.deb(deb.sha256)) as part:
            expected = Expected(deb.filename.rsplit("/", 1)[-1], deb.size, deb.sha256, source="Packages")
            url = f"{self.archive.mirror}/{deb.filename}"
            download_file(self.http, url, part, expected, timeout=self.timeout, progress=self.progress)
        self.downloaded = True
        return self.cache.deb(deb.sha256)


class _Resolve:
    """From qemu-user-static (or qemu-user) through links and Depends, until each binary is a file."""

    def __init__(self, mirror: _Mirror, index: Index, version: str | None) -> None:
        self.mirror, self.index, self.version = mirror, index, version

    def run(self, binaries: list[str]) -> dict[str, tuple[Binary, Path]]:
        start = FIRST_PACKAGE
        if self.index.get(FIRST_PACKAGE, self.version) is None:
            start = FALLBACK_PACKAGE
        pending = {b: f"usr/bin/{b if start == FIRST_PACKAGE else b.removesuffix('-static')}" for b in binaries}
        done: dict[str, tuple[Binary, Path]] = {}
        queue, seen = [start], [start]
        while pending and queue:
            name = queue.pop(0)
            para = self.index.get(name, self.version if name in QEMU_PACKAGES else None)
            if para is None:
                continue
            got = self._take(Deb.of(para, self.index.url), pending)
            done.update(got)
            for binary in got:
                pending.pop(binary)
            for dep in pkgindex.depends(para) if pending else ():
                if dep not in seen and len(seen) < MAX_PACKAGES:
                    seen.append(dep)
                    queue.append(dep)
        if pending:
            members = ", ".join(f"usr/bin/{binary}" for binary in sorted(pending))
            msg = f"{self.index.url}: no package holds {members} (looked in {', '.join(sorted(seen))})"
            raise PackageMissing(
                msg,
                hint="check the binary name, or use a suite that carries it",
            )
        return done

    def _take(self, deb: Deb, pending: dict[str, str]) -> dict[str, tuple[Binary, Path]]:
        """The pending binaries this package holds as files, in one pass (more only for a link to a path
        not asked for); ``pending`` gets the link targets of those it holds as links to elsewhere."""
        path = self.mirror.deb(deb, self.index.record.signer)
        done: dict[str, tuple[Binary, Path]] = {}
        for _ in range(MAX_LINKS):
            # A link to a path not asked for (trixie's qemu-arm-static -> qemu-arm) costs another
            # pass, over this package only: the transitional package that has such links is 77 kB.
            targets = {member: b for b, member in pending.items() if b not in done}
            with _Extraction(self.mirror.cache, deb, self.mirror.host, targets) as taking:
                found = debfile.read_members(path, list(targets), taking.write)
                again = False
                for binary, member in list(pending.items()):
                    if binary in done:
                        continue
                    member, kind = _follow(found, member)
                    pending[binary] = member
                    if kind == "file":
                        kept, sha256 = taking.keep(member)
                        done[binary] = (Binary(deb, member, sha256), kept)
                    again = again or kind == "unread"
            if not again:
                return done
        msg = f"{deb.filename}: more than {MAX_LINKS} links from {', '.join(sorted(pending))}"
        raise VerificationError(msg)


def _follow(found: dict[str, debfile.Found], member: str) -> tuple[str, str]:
    """Follow links among what one pass found: (path, "file" | "missing" | "unread")."""
    for _ in range(MAX_LINKS):
        if member not in found:
            return member, "unread"
        seen = found[member]
        if seen.kind != "link":
            return member, seen.kind
        member = seen.target
    return member, "unread"


class _NotKept(Exception):
    """A part file the pass wrote but nobody kept: raised through its context to remove it."""


class _Extraction:
    """The files one pass hands over, each written to a part file in the cache, hashed and
    checked on the way; only those ``keep`` names are put in place."""

    def __init__(self, cache: Cache, deb: Deb, host: Arch, targets: dict[str, str]) -> None:
        self.cache, self.deb, self.host, self.targets = cache, deb, host, targets
        self.label = deb.filename.rsplit("/", 1)[-1]
        self._parts: dict[str, tuple[contextlib.ExitStack, Path, str]] = {}

    def __enter__(self) -> _Extraction:
        return self

    def __exit__(self, *exc: object) -> None:
        for stack, _, _ in self._parts.values():  # not kept: the part files go
            # A real exception unwinds the part's context the way a failure does: the part file is
            # removed and nothing is put in place. Whatever the unwinding raises is dropped with it.
            with contextlib.suppress(Exception), stack:
                raise _NotKept
        self._parts.clear()

    def write(self, member: str, source: IO[bytes], size: int) -> None:
        label = f"{member} from {self.label}"
        if size > MAX_BINARY:
            msg = f"{label}: {size} bytes, more than a static qemu can be ({MAX_BINARY} at most)"
            raise VerificationError(msg)
        stack = contextlib.ExitStack()
        part = stack.enter_context(cached(self.cache.binary(self.deb.sha256, self.targets[member]), mode=0o755))
        self._parts[member] = (stack, part, "")
        digest, written = hashlib.sha256(), 0
        with cache_writes(part), open(part, "wb") as out:
            while block := source.read(_CHUNK):
                out.write(block)
                digest.update(block)
                written += len(block)
            out.flush()
            os.fsync(out.fileno())
        if written != size:
            msg = f"{label}: {written} of {size} bytes in the package"
            raise VerificationError(msg)
        check_static(part, self.host, label)
        self._parts[member] = (stack, part, digest.hexdigest())

    def keep(self, member: str) -> tuple[Path, str]:
        """Put ``member``'s file in place as its binary; its path and SHA256."""
        stack, _, sha256 = self._parts.pop(member)
        final = self.cache.binary(self.deb.sha256, self.targets[member])
        stack.close()  # on a failure here the part file is already gone: ``cached`` removes it
        return final, sha256
