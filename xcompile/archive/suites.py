"""One run's view of a Debian archive's suites: each suite's Release and Packages index, read at most once.

A pin is looked for in every suite the mirror serves (``Suites.offers``): the
release suites (oldstable, stable, testing, unstable, and the archive's own)
and each codename's ``-updates`` and ``-backports``. An index is downloaded
when first needed and kept for the run, however many packages are looked up
in it; while a suite's InRelease names the index the cache knows, the
paragraphs the cache holds of it stand in for it (debcache.Record). Only a
run that succeeds records what it verified (``Suites.commit``).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import requests

from xcompile.archive import pkgindex
from xcompile.archive import release as debarchive
from xcompile.archive.cache import Cache, Record
from xcompile.archive.download import (
    MAX_RETRY_AFTER,
    ProgressCallback,
    cache_writes,
    download_file,
    fetch_bytes,
    make_session,
)
from xcompile.archive.release import Archive, Release
from xcompile.archive.transfer import Expected
from xcompile.errors import DownloadError, QemuUnavailable, ReleaseExpired, UsageError, VerificationError
from xcompile.host.elf import BY_DEBIAN, host_debian_arch
from xcompile.host.platforms import Arch
from xcompile.system.runner import Runner

FIRST_PACKAGE = "qemu-user-static"
FALLBACK_PACKAGE = "qemu-user"
"""Where the archive no longer has qemu-user-static (forky on), the binaries are here."""
QEMU_PACKAGES = (FIRST_PACKAGE, FALLBACK_PACKAGE)
T = TypeVar("T")
S = TypeVar("S", bound="Suites")


@dataclass(frozen=True)
class Offer:
    """A qemu package version one suite of the mirror holds."""

    suite: str
    package: str
    version: str
    signer: str


class Suites:
    """One run's view of an archive's suites: their Releases and indexes, read once each."""

    def __init__(
        self,
        archive: Archive,
        cache: Cache,
        http: requests.Session,
        host: Arch,
        arch: str,
        timeout: float,
        progress: ProgressCallback | None,
        runner: Runner,
        keyring_dirs: tuple[Path, ...],
        offline: bool,
    ) -> None:
        self.archive, self.cache, self.http, self.host, self.arch = archive, cache, http, host, arch
        self.timeout, self.progress, self.runner, self.keyring_dirs = timeout, progress, runner, keyring_dirs
        self.offline = offline
        self.notes: list[str] = []
        self.passed_over: list[str] = []
        """The suites a search passed over: their Release had expired (``searched``)."""
        self.downloaded = False
        self._indexes: dict[str, Index] = {}

    @classmethod
    @contextlib.contextmanager
    def open(
        cls: type[S],
        archive: Archive,
        cache_dir: Path,
        host_arch: str | None,
        progress: ProgressCallback | None,
        session: requests.Session | None,
        timeout: float,
        runner: Runner | None,
        keyring_dirs: tuple[Path, ...],
        offline: bool,
    ) -> Iterator[S]:
        arch = host_arch or host_debian_arch()
        if arch not in BY_DEBIAN:
            msg = f"unknown Debian architecture {arch!r}"
            raise UsageError(msg, hint=f"use one of {', '.join(sorted(BY_DEBIAN))}")
        http = session if session is not None else make_session(max_wait=min(MAX_RETRY_AFTER, timeout))
        quiet = runner or Runner(lambda _line, _label: None)
        mirror = cls(
            archive,
            Cache(cache_dir, archive),
            http,
            BY_DEBIAN[arch],
            arch,
            timeout,
            progress,
            quiet,
            keyring_dirs,
            offline,
        )
        try:
            yield mirror
        finally:
            for index in mirror._indexes.values():
                index.close()
            if session is None:
                http.close()

    # --- suites -------------------------------------------------------------------

    def index(self, suite: str) -> Index | None:
        """The suite's verified index, read once per run; None where the mirror has no such
        suite (offline: where the cache knows none)."""
        if suite not in self._indexes:
            at = self.archive.at(suite)
            if self.offline:
                found = self._cached_index(at)
            else:
                last = self.cache.last_release(suite)
                release = debarchive.read_release(
                    self._optional, at, self.runner, self.keyring_dirs, last[1] if last else None
                )
                found = None if release is None else self._online_index(at, release)
            if found is None:
                return None
            self._indexes[suite] = found
            self._indexes.setdefault(found.record.codename, found)
        return self._indexes[suite]

    def commit(self, result: T) -> T:
        """Record what this run verified and learned, now that it succeeded: a refused or
        failed run leaves no trace in the cache."""
        for index in dict.fromkeys(self._indexes.values()):
            self.cache.save_record(index.record)
            if index.seen_release is not None:
                self.cache.save_release(index.at.suite, *index.seen_release)
        return result

    def _online_index(self, at: Archive, release: Release) -> Index:
        self.notes += release.notes
        name = f"main/binary-{self.arch}/Packages.xz"
        sha256, size = release.entry(name, at)
        record = self.cache.load_record(release.codename, self.arch)
        if record is None or record.packages_sha256 != sha256 or record.keys != at.keys:
            record = Record(self.cache.mirror, release.codename, self.arch, sha256, release.signer, at.keys)
        record.signer = release.signer
        # From the folder the Release came from: a mirror's dists/stable and
        # dists/<codename> can be out of step with each other.
        index = Index(self, at, f"{at.dists()}/{name}", size, record)
        index.seen_release = (release.codename, release.date)
        return index

    def _cached_index(self, at: Archive) -> Index | None:
        last = self.cache.last_release(at.suite)
        record = self.cache.load_record(last[0], self.arch) if last else None
        if record is None:
            return None
        if record.keys != at.keys:
            msg = f"the cached qemu for {at.shown} {at.suite} was verified with other keys than these"
            raise VerificationError(
                msg,
                hint="run once online with these keys (--keyring), or offline with the keys it was verified with",
            )
        if not record.signer and not at.allow_unsigned:
            # Cached from an unverified index: taken again only as it was taken then.
            msg = f"the cached qemu for {at.shown} {at.suite} came from an index whose signature was not verified"
            raise VerificationError(
                msg,
                hint="run online to verify it, or accept it with --allow-unsigned",
            )
        if not record.signer:
            self.notes.append(debarchive.UNSIGNED_NOTE.format(why="it was not verified when it was cached"))
        return Index(self, at, "", 0, record)

    def offers(self) -> list[Offer]:
        found: list[Offer] = []
        codenames: dict[str, None] = {}
        for name in (*debarchive.SYMBOLIC_SUITES, self.archive.suite):
            index = self.searched(name)
            if index is not None and index.record.codename not in codenames:
                codenames[index.record.codename] = None
                found += index.offers(index.record.codename)
        for codename in codenames:
            for suite in (f"{codename}-updates", f"{codename}-backports"):
                index = self.searched(suite)
                if index is not None:
                    found += index.offers(suite)
        return found

    def searched(self, suite: str) -> Index | None:
        """``index`` in a search across the mirror's suites, where a suite other than the archive's
        own whose Release has expired is passed over (and said) as one the mirror lacks would be:
        its versions are not to be trusted, and a mirror whose testing is stale (as the one this
        project's hosts use was in Dec 2026) must not stop a pin that bookworm holds. Passing over
        gives a replaying mirror nothing: it could as well answer 404."""
        try:
            return self.index(suite)
        except ReleaseExpired as err:
            if suite == self.archive.suite:
                raise
            self.passed_over.append(suite)
            self.notes.append(f"{err.message}; passed over in the search for the pinned qemu")
            return None

    def miss(self, what: str) -> QemuUnavailable:
        return QemuUnavailable(
            f"offline: no cached {what} for {self.archive.shown} {self.archive.suite} {self.arch} in {self.cache.root}",
            hint="run once without --offline",
        )

    def _optional(self, url: str) -> bytes | None:
        try:
            return fetch_bytes(self.http, url, timeout=self.timeout)
        except DownloadError as err:
            if err.status == 404:
                return None
            raise


class Index:
    """A suite's verified Packages.xz, downloaded when first needed and scanned once for every package
    asked for by then; ``record`` holds what earlier runs found in this same index."""

    def __init__(self, mirror: Suites, at: Archive, url: str, size: int, record: Record) -> None:
        self.mirror, self.at, self.raw_url, self.size, self.record = mirror, at, url, size, record
        self.url = at.shown + url.removeprefix(at.mirror) if url else f"{at.shown}/dists/{at.suite}"
        self.seen_release: tuple[str, datetime] | None = None
        self._stack = contextlib.ExitStack()
        self._path: Path | None = None

    def close(self) -> None:
        self._stack.close()

    def all(self, package: str) -> list[dict[str, str]]:
        """Every paragraph of ``package`` for this arch in the index."""
        if package not in self.record.paragraphs:
            wanted = {package, *QEMU_PACKAGES, "qemu-user-binfmt"} - set(self.record.paragraphs)
            self.record.paragraphs.update(pkgindex.scan(self._download(), wanted, self.mirror.arch, self.url))
        return self.record.paragraphs[package]

    def get(self, package: str, version: str | None = None) -> dict[str, str] | None:
        """The newest paragraph of ``package`` (of exactly ``version`` where given), None if there is none."""
        paras = [p for p in self.all(package) if version is None or p["Version"] == version]
        return pkgindex.newest(paras, self.url)

    def offers(self, suite: str) -> list[Offer]:
        return [
            Offer(suite, package, version, self.record.signer)
            for package in QEMU_PACKAGES
            for version in dict.fromkeys(p["Version"] for p in self.all(package))
        ]

    def _download(self) -> Path:
        """The index, downloaded on first use and kept for the run: a Depends that leads
        past the packages scanned first is looked up in the same copy."""
        if self._path is not None:
            return self._path
        if self.mirror.offline:
            msg = f"index for {self.mirror.arch}"
            raise self.mirror.miss(msg)
        if not self.record.signer:
            check_unverified_size(self.size, pkgindex.MAX_INDEX, self.url, "Release")
        folder = self.mirror.cache.root / "index"
        with cache_writes(folder):
            folder.mkdir(parents=True, exist_ok=True)
            path = Path(self._stack.enter_context(tempfile.TemporaryDirectory(dir=folder))) / "Packages.xz"
        expected = Expected("Packages.xz", self.size, self.record.packages_sha256, source="Release")
        download_file(
            self.mirror.http, self.raw_url, path, expected, timeout=self.mirror.timeout, progress=self.mirror.progress
        )
        self._path = path
        return path


def check_unverified_size(size: int, cap: int, url: str, source: str) -> None:
    """An unverified index's size is the mirror's word, and the download would take it as its
    bound: beyond what a qemu package (or an index) can be, it is refused before the download."""
    if size > cap:
        msg = (
            f"{url}: the {source}, not verified, says {size} bytes; more than xcompile takes unverified ({cap} at most)"
        )
        raise VerificationError(
            msg,
            hint="use a signed mirror",
        )
