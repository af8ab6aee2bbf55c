"""A static qemu from a Debian archive, trusted only as far as the archive's signed chain reaches.

The chain, each link checked before the next is used::

    dists/<suite>/InRelease      signed by a trusted key (xcompile.trust), fresh, not older than last time
      -> SHA256 + size of main/binary-<arch>/Packages.xz
        -> SHA256 + size of each .deb it names
          -> usr/bin/qemu-<x>-static: a static ELF for this machine, its SHA256 recorded

Two layouts hold the binary (issue 7). Up to bookworm, ``qemu-user-static``
holds ``usr/bin/qemu-arm-static`` as a file. From trixie on that package is
transitional: ``qemu-arm-static`` is a link to ``qemu-arm``, and the file is
in ``qemu-user``, a package it depends on. So a link is followed inside the
package, and a path the package lacks is looked for in the packages it
depends on, each fetched through the same chain. Where the archive has no
``qemu-user-static`` at all (forky, sid), the search starts at ``qemu-user``
with ``usr/bin/qemu-arm``, the name trixie's links point to.

The cache (``cache_dir``)::

    debs/<sha256>.deb               a verified package
    bin/<deb sha256>/<binary>       the extracted binary, mode 0755, re-hashed on every use
    index/<codename>_<arch>_<tag>.json
                                    what the last online run resolved for this mirror
                                    (``tag`` hashes the mirror URL, without credentials)
    release/<suite>_<tag>.json      the newest Release seen for this mirror and suite name:
                                    its codename and Date, against rollbacks, and for --offline

Nothing here prints: messages for the user come back in ``FetchResult.notes``
and progress goes to the ``progress`` callback.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import json
import lzma
import os
import re
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO, Any

import requests
from debian.deb822 import PkgRelation, Release
from debian.debian_support import Version

from . import debpkg, files, trust
from .download import (
    MAX_BINARY,
    MAX_RETRY_AFTER,
    ProgressCallback,
    cache_writes,
    cached,
    download_file,
    fetch_bytes,
    make_session,
)
from .elf import BY_DEBIAN, check_static, host_debian_arch
from .errors import (
    DownloadError,
    PackageMissing,
    ProgramMissing,
    QemuUnavailable,
    UsageError,
    VerificationError,
)
from .platforms import Arch
from .runner import Runner
from .urls import redact

DEFAULT_SUITE = "stable"
FIRST_PACKAGE = "qemu-user-static"
# Where the archive no longer has qemu-user-static (forky on), the binaries are here.
FALLBACK_PACKAGE = "qemu-user"
# A Release's Date may be this far ahead of our clock (apt allows none by default,
# but a host's clock a few minutes slow should not break the download).
DATE_SKEW = timedelta(minutes=10)
# Bounds on what a mirror can make us read: the largest real paragraph (trixie
# amd64) is about 76 kB, the largest Packages about 60 MB.
MAX_PARAGRAPH = 1 << 20
MAX_INDEX = 512 << 20
MAX_LINKS = 8
UNSIGNED_NOTE = "the archive's signature is NOT verified (--allow-unsigned): {why}; the mirror chooses the qemu"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Archive:
    """A Debian archive to fetch from: its URL, a suite (name or codename), and whose keys count.

    ``keyrings`` empty means xcompile's bundled Debian keys plus the host's
    (see :mod:`xcompile.trust`); given, they replace both.
    """

    mirror: str
    suite: str = DEFAULT_SUITE
    keyrings: tuple[Path, ...] = ()
    allow_unsigned: bool = False

    def __post_init__(self) -> None:
        if not re.fullmatch(r"https?://[^/\s]+(/\S*)?", self.mirror):
            raise UsageError(
                f"mirror {redact(self.mirror)!r} is not an http(s) URL",
                hint="give the archive's base URL, e.g. http://HOST/debian",
            )
        if "?" in self.mirror or "#" in self.mirror:
            raise UsageError(
                f"mirror {redact(self.mirror)}: a query or fragment cannot be part of an archive's base URL",
                hint="give the archive's base URL, e.g. http://HOST/debian",
            )
        object.__setattr__(self, "mirror", self.mirror.rstrip("/"))
        if not re.fullmatch(r"[a-z][a-z0-9.-]*", self.suite):
            raise UsageError(
                f"suite {self.suite!r} is not a Debian suite name",
                hint="use a name (stable, oldstable, testing) or a codename (bookworm, trixie)",
            )
        for ring in self.keyrings:
            if not ring.is_file():
                raise UsageError(f"keyring {ring} does not exist")

    @property
    def shown(self) -> str:
        """The mirror as messages and cache records may show it: no credentials, no query."""
        return redact(self.mirror)

    def dists(self) -> str:
        return f"{self.mirror}/dists/{self.suite}"


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


@dataclass(frozen=True)
class _Deb:
    """One package of a verified Packages index."""

    package: str
    version: str
    filename: str
    size: int
    sha256: str


@dataclass(frozen=True)
class _Binary:
    """Where a binary was found, and the SHA256 it had when it was extracted."""

    deb: _Deb
    member: str
    sha256: str


@dataclass
class _Record:
    """What the last online run resolved for one (mirror, codename, arch)."""

    mirror: str
    codename: str
    arch: str
    packages_sha256: str
    signer: str
    binaries: dict[str, _Binary] = field(default_factory=dict)
    paragraphs: dict[str, dict[str, str] | None] = field(default_factory=dict)
    """The index's paragraphs of the packages looked at (None: not in the index), so that
    another binary from the same index needs no second download of it."""


# --- the cache --------------------------------------------------------------------------------


class _Cache:
    def __init__(self, root: Path, archive: Archive) -> None:
        self.root = root
        self.tag = hashlib.sha256(archive.shown.encode()).hexdigest()[:16]
        self.mirror = archive.shown

    def deb(self, sha256: str) -> Path:
        return self.root / "debs" / f"{sha256}.deb"

    def binary(self, deb_sha256: str, name: str) -> Path:
        return self.root / "bin" / deb_sha256 / name

    def _index_path(self, codename: str, arch: str) -> Path:
        return self.root / "index" / f"{codename}_{arch}_{self.tag}.json"

    def _release_path(self, suite: str) -> Path:
        return self.root / "release" / f"{suite}_{self.tag}.json"

    def load_record(self, codename: str, arch: str) -> _Record | None:
        data = _read_json(self._index_path(codename, arch))
        try:
            record = _Record(
                mirror=data["mirror"],
                codename=data["codename"],
                arch=data["arch"],
                packages_sha256=data["packages_sha256"],
                signer=data["signer"],
                binaries={
                    name: _Binary(_Deb(**b["deb"]), b["member"], b["sha256"]) for name, b in data["binaries"].items()
                },
                paragraphs=dict(data["paragraphs"]),
            )
        except (KeyError, TypeError, AttributeError):
            return None  # no record, or one from another version: resolve again
        return record if (record.mirror, record.codename, record.arch) == (self.mirror, codename, arch) else None

    def save_record(self, record: _Record) -> None:
        _write_json(self._index_path(record.codename, record.arch), asdict(record))

    def last_release(self, suite: str) -> tuple[str, datetime] | None:
        """The codename and Date of the newest Release seen for ``suite`` on this mirror."""
        data = _read_json(self._release_path(suite))
        try:
            if data["mirror"] != self.mirror:
                return None
            return str(data["codename"]), datetime.fromtimestamp(float(data["date"]), timezone.utc)
        except (KeyError, TypeError, ValueError, OverflowError):
            return None

    def save_release(self, suite: str, codename: str, date: datetime) -> None:
        record = {"mirror": self.mirror, "suite": suite, "codename": codename, "date": date.timestamp()}
        _write_json(self._release_path(suite), record)

    def cached_binary(self, name: str, found: _Binary, arch: Arch) -> Path | None:
        """The extracted binary, if it is still byte for byte what was recorded."""
        path = self.binary(found.deb.sha256, name)
        if not path.is_file():
            return None
        if files.sha256_of(path) != found.sha256:
            with cache_writes(path):
                path.unlink(missing_ok=True)  # damaged: never handed out
            return None
        check_static(path, arch, str(path))
        return path

    def cached_deb(self, deb: _Deb) -> Path | None:
        """The cached .deb, re-hashed; a damaged one is removed."""
        path = self.deb(deb.sha256)
        if not path.is_file():
            return None
        if files.sha256_of(path) != deb.sha256:
            with cache_writes(path):
                path.unlink(missing_ok=True)
            return None
        return path


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_json(final: Path, data: dict[str, Any]) -> None:
    with cached(final) as part, cache_writes(part):
        part.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


# --- the fetch --------------------------------------------------------------------------------


def fetch_qemu(
    binary: str,
    archive: Archive,
    cache_dir: Path,
    *,
    offline: bool = False,
    host_arch: str | None = None,
    progress: ProgressCallback | None = None,
    session: requests.Session | None = None,
    timeout: float = 30.0,
    runner: Runner | None = None,
    keyring_dirs: tuple[Path, ...] = trust.HOST_KEYRING_DIRS,
) -> FetchResult:
    """``usr/bin/<binary>`` (e.g. qemu-arm-static) for this host, from ``archive`` or the cache.

    ``timeout`` bounds connecting, each read, and each wait a mirror asks
    for. With ``offline``, nothing is fetched: the last run for this mirror
    and suite must have left the binary (or its .deb) in the cache.
    ``runner`` runs gpgv (a silent one when None).
    """
    if not re.fullmatch(r"qemu-[A-Za-z0-9_]+-static", binary):
        raise UsageError(
            f"{binary!r} is not a static qemu binary name", hint="expected qemu-<arch>-static, e.g. qemu-arm-static"
        )
    arch = host_arch or host_debian_arch()
    if arch not in BY_DEBIAN:
        raise UsageError(f"unknown Debian architecture {arch!r}", hint=f"use one of {', '.join(sorted(BY_DEBIAN))}")
    cache = _Cache(cache_dir, archive)
    http = session if session is not None else make_session(max_wait=min(MAX_RETRY_AFTER, timeout))
    try:
        fetch = _Fetch(
            archive,
            cache,
            http,
            BY_DEBIAN[arch],
            arch,
            timeout,
            progress,
            runner or Runner(lambda line, label: None),
            keyring_dirs,
            offline,
        )
        return _fetch_offline(fetch, binary) if offline else fetch.run(binary)
    finally:
        if session is None:
            http.close()


def _fetch_offline(fetch: _Fetch, binary: str) -> FetchResult:
    """From the cache alone: the record of the last run for this mirror and suite, and its files."""
    archive, cache = fetch.archive, fetch.cache
    last = cache.last_release(archive.suite)
    record = cache.load_record(last[0], fetch.arch) if last else None
    if record is None:
        raise fetch.miss(binary)
    if not record.signer and not archive.allow_unsigned:
        # Cached from an unverified index: taken again only as it was taken then.
        raise VerificationError(
            f"the cached {binary} for {archive.shown} {archive.suite} came from an index whose signature was"
            " not verified",
            hint="run online to verify it, or accept it with --allow-unsigned",
        )
    found = record.binaries.get(binary)
    path = cache.cached_binary(binary, found, fetch.host) if found else None
    if found is not None and path is None:
        path = fetch.from_deb(found, binary)
    if found is None or path is None:
        # Another binary of a package already in the cache (qemu-aarch64-static after qemu-arm-static).
        index = _Index(fetch, "", record.packages_sha256, 0, record.paragraphs)
        found, path = fetch.resolve(index, binary)
        record.binaries[binary] = found
        cache.save_record(record)
    notes = () if record.signer else (UNSIGNED_NOTE.format(why="it was not verified when it was cached"),)
    return FetchResult(
        path, found.sha256, found.deb.package, found.deb.version, record.codename, False, record.signer, notes
    )


class _Fetch:
    """One online fetch: the Release, the index, then the packages until the binary is found."""

    def __init__(
        self,
        archive: Archive,
        cache: _Cache,
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
        self.downloaded = False

    def miss(self, binary: str) -> QemuUnavailable:
        return QemuUnavailable(
            f"offline: no cached {binary} for {self.archive.shown} {self.archive.suite} {self.arch}"
            f" in {self.cache.root}",
            hint="run once without --offline",
        )

    def run(self, binary: str) -> FetchResult:
        release, signer = self._release()
        codename = str(release.get("Codename") or self.archive.suite)
        date = _check_fresh(release, self.archive, self.cache)
        index_name = f"main/binary-{self.arch}/Packages.xz"
        index_sha256, index_size = _release_entry(release, index_name, self.archive)
        record = self.cache.load_record(codename, self.arch)
        if record is None or record.packages_sha256 != index_sha256:
            record = _Record(self.cache.mirror, codename, self.arch, index_sha256, signer)
        record.signer = signer
        found = record.binaries.get(binary)
        path = self.cache.cached_binary(binary, found, self.host) if found else None
        if found is not None and path is None:
            path = self.from_deb(found, binary)
        if found is None or path is None:
            # From the folder the Release came from: a mirror's dists/stable and
            # dists/<codename> can be out of step with each other.
            index = _Index(self, f"{self.archive.dists()}/{index_name}", index_sha256, index_size, record.paragraphs)
            try:
                found, path = self.resolve(index, binary)
            finally:
                index.close()
            record.binaries[binary] = found
        # Recorded only now: a refused or failed run leaves no trace in the cache.
        self.cache.save_record(record)
        self.cache.save_release(self.archive.suite, codename, date)
        return FetchResult(
            path,
            found.sha256,
            found.deb.package,
            found.deb.version,
            codename,
            self.downloaded,
            signer,
            tuple(self.notes),
        )

    # --- the signed Release ---

    def _release(self) -> tuple[Release, str]:
        """The suite's Release, as its signature covers it, and who signed it ("" if unverified)."""
        base = self.archive.dists()
        inrelease = self._optional(f"{base}/InRelease")
        if inrelease is not None:
            signed, signature, url = inrelease, None, f"{base}/InRelease"
        else:
            release = self._optional(f"{base}/Release")
            if release is None:
                raise DownloadError(
                    redact(f"{base}/InRelease"),
                    "HTTP 404, and there is no Release either",
                    status=404,
                    hint="check the mirror URL and the suite name (e.g. stable, oldstable, bookworm, trixie)",
                )
            signed, signature, url = release, self._optional(f"{base}/Release.gpg"), f"{base}/Release.gpg"
            if signature is None:
                return self._unverified(release, f"{redact(base)}/Release is not signed (no InRelease, no Release.gpg)")
        rings = trust.keyrings(self.archive.keyrings, self.keyring_dirs)
        try:
            text, signer = trust.verify(self.runner, rings, signed, signature)
        except ProgramMissing as err:
            if not self.archive.allow_unsigned:
                raise
            return self._unverified(_cleartext(signed) if signature is None else signed, f"{err}")
        except VerificationError as err:
            why = f"{redact(url)}: {err.message}"
            if not self.archive.allow_unsigned:
                raise VerificationError(
                    why,
                    hint="the mirror is tampered with, or the keys are not the archive's; give the right ones with"
                    " --keyring, or take it unverified with --allow-unsigned",
                    detail=err.detail,
                ) from err
            return self._unverified(_cleartext(signed) if signature is None else signed, why)
        return Release(text), str(signer)

    def _unverified(self, text: bytes, why: str) -> tuple[Release, str]:
        if not self.archive.allow_unsigned:
            raise VerificationError(why, hint="use a signed mirror, or accept it unverified with --allow-unsigned")
        self.notes.append(UNSIGNED_NOTE.format(why=why))
        return Release(text), ""

    def _optional(self, url: str) -> bytes | None:
        try:
            return fetch_bytes(self.http, url, timeout=self.timeout)
        except DownloadError as err:
            if err.status == 404:
                return None
            raise

    # --- the packages ---

    def resolve(self, index: _Index, binary: str) -> tuple[_Binary, Path]:
        """Follow links and Depends from qemu-user-static until ``usr/bin/<binary>`` is a file."""
        start = FIRST_PACKAGE
        member = f"usr/bin/{binary}"
        if index.get(FIRST_PACKAGE) is None:
            start, member = FALLBACK_PACKAGE, f"usr/bin/{binary.removesuffix('-static')}"
        queue, seen = [start], set()
        hops = 0
        while queue:
            name = queue.pop(0)
            if name in seen:
                continue
            seen.add(name)
            para = index.get(name)
            if para is None:
                continue
            deb = _deb_from_entry(para, index.url)
            deb_path = self._deb(deb)
            while hops < MAX_LINKS:
                hops += 1
                holder = _Holder(self.cache, deb, binary, self.host)
                found = debpkg.read_member(deb_path, member, holder.write)
                if found.kind == "file":
                    return _Binary(deb, member, holder.sha256), holder.publish()
                if found.kind == "missing":
                    queue += [dep for dep in _depends(para) if dep not in seen]
                    break
                member = found.target  # a link: look again, in this package first
            else:
                raise VerificationError(f"{deb.filename}: more than {MAX_LINKS} links from usr/bin/{binary}")
        raise PackageMissing(
            f"{index.url}: no package holds usr/bin/{binary} (looked in {', '.join(sorted(seen))})",
            hint="check the binary name, or use a suite that carries it",
        )

    def _deb(self, deb: _Deb) -> Path:
        kept = self.cache.cached_deb(deb)
        if kept is not None:
            return kept
        if self.offline:
            raise self.miss(deb.package)
        dest = self.cache.deb(deb.sha256)
        with cached(dest) as part:
            download_file(
                self.http,
                f"{self.archive.mirror}/{deb.filename}",
                part,
                timeout=self.timeout,
                size=deb.size,
                sha256=deb.sha256,
                what=deb.filename.rsplit("/", 1)[-1],
                source="Packages",
                progress=self.progress,
            )
        self.downloaded = True
        return dest

    def from_deb(self, found: _Binary, binary: str) -> Path:
        """A damaged cached binary, extracted again from its .deb (re-verified, or downloaded)."""
        deb_path = self._deb(found.deb)
        path, sha256 = _extract(self.cache, deb_path, found.deb, found.member, binary, self.host)
        if sha256 != found.sha256:
            raise VerificationError(f"{binary} from {deb_path} is not the one recorded")
        return path


def _cleartext(inrelease: bytes) -> bytes:
    """The text of a clearsigned file whose signature could not be checked (RFC 4880 §7)."""
    lines = inrelease.split(b"\n")
    try:
        start = lines.index(b"") + 1 if lines[0].startswith(b"-----BEGIN PGP SIGNED") else 0
        end = next(i for i, line in enumerate(lines) if line.startswith(b"-----BEGIN PGP SIGNATURE"))
    except (ValueError, StopIteration, IndexError):
        return inrelease
    return b"\n".join(line[2:] if line.startswith(b"- ") else line for line in lines[start:end])


class _Holder:
    """Writes the binary to a part file in the cache, hashing and checking it on the way."""

    def __init__(self, cache: _Cache, deb: _Deb, name: str, host: Arch) -> None:
        self.final = cache.binary(deb.sha256, name)
        self.host = host
        self.label = f"{name} from {deb.filename.rsplit('/', 1)[-1]}"
        self.sha256 = ""
        self._parts = contextlib.ExitStack()
        self.part: Path | None = None

    def write(self, source: IO[bytes], size: int) -> None:
        if size > MAX_BINARY:
            raise VerificationError(
                f"{self.label}: {size} bytes, more than a static qemu can be ({MAX_BINARY} at most)"
            )
        self.part = self._parts.enter_context(cached(self.final, mode=0o755))
        digest = hashlib.sha256()
        written = 0
        with cache_writes(self.part), open(self.part, "wb") as out:
            while block := source.read(_CHUNK):
                out.write(block)
                digest.update(block)
                written += len(block)
            out.flush()
            os.fsync(out.fileno())
        try:
            if written != size:
                raise VerificationError(f"{self.label}: {written} of {size} bytes in the package")
            check_static(self.part, self.host, self.label)
        except BaseException:
            self._parts.__exit__(*sys.exc_info())  # the part file goes, nothing is put in place
            raise
        self.sha256 = digest.hexdigest()

    def publish(self) -> Path:
        assert self.part is not None
        self._parts.close()
        return self.final


def _extract(cache: _Cache, deb_path: Path, deb: _Deb, member: str, name: str, host: Arch) -> tuple[Path, str]:
    holder = _Holder(cache, deb, name, host)
    found = debpkg.read_member(deb_path, member, holder.write)
    if found.kind != "file":
        raise VerificationError(f"{deb_path} no longer holds {member} as a file")
    return holder.publish(), holder.sha256


def _depends(para: dict[str, Any]) -> list[str]:
    """The package names of Pre-Depends and Depends, in order, alternatives included."""
    names: list[str] = []
    for key in ("Pre-Depends", "Depends"):
        if not para.get(key, "").strip():
            continue
        for alternatives in PkgRelation.parse_relations(para[key]):
            names += [str(alt["name"]) for alt in alternatives]
    return names


# --- the Release ------------------------------------------------------------------------------


def _release_entry(release: Release, name: str, archive: Archive) -> tuple[str, int]:
    # A valid signature on another suite's Release (an old one, say) must not
    # pass for this one: apt checks Codename/Suite for the same reason.
    where = f"{archive.shown}/dists/{archive.suite}/Release"
    if archive.suite not in {release.get("Suite", ""), release.get("Codename", "")}:
        raise VerificationError(
            f"{where} describes suite {release.get('Suite', '?')} ({release.get('Codename', '?')}),"
            f" not {archive.suite}",
            hint="the mirror serves the wrong suite, or is replaying an old one",
        )
    for entry in release.get("SHA256", []):
        if entry.get("name") == name:
            sha256, size = str(entry.get("sha256", "")).lower(), str(entry.get("size", ""))
            if re.fullmatch(r"[0-9a-f]{64}", sha256) and size.isdigit():
                return sha256, int(size)
    raise PackageMissing(
        f"{where} lists no SHA256 for {name}",
        hint="this suite may not carry the architecture; check the suite name",
    )


def _release_time(release: Release, key: str, where: str) -> datetime | None:
    value = release.get(key)
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(str(value))
    except (TypeError, ValueError) as err:
        raise VerificationError(f"{where}: unreadable {key} {value!r}") from err
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _check_fresh(release: Release, archive: Archive, cache: _Cache) -> datetime:
    """Refuse a Release that has expired, is dated ahead of us, or is older than one seen before."""
    where = f"{archive.shown}/dists/{archive.suite}/Release"
    now = datetime.now(timezone.utc)
    date = _release_time(release, "Date", where)
    if date is None:
        raise VerificationError(f"{where} has no Date", hint="a Release without a Date cannot be checked for replay")
    if date > now + DATE_SKEW:
        raise VerificationError(
            f"{where} is dated {date:%Y-%m-%d %H:%M} UTC, in the future",
            hint="check this machine's clock; otherwise the mirror is not to be trusted",
        )
    until = _release_time(release, "Valid-Until", where)
    if until is not None and until < now:
        raise VerificationError(
            f"{where} expired on {until:%Y-%m-%d %H:%M} UTC (Valid-Until)",
            hint="the mirror is stale or replaying an old Release; use an up-to-date mirror",
        )
    last = cache.last_release(archive.suite)
    if last is not None and last[1] > date:
        raise VerificationError(
            f"{where} is dated {date:%Y-%m-%d %H:%M} UTC, older than the one seen before "
            f"({last[1]:%Y-%m-%d %H:%M} UTC): a rollback",
            hint="the mirror is stale or replaying an old Release; use an up-to-date mirror",
        )
    return date


# --- the index --------------------------------------------------------------------------------


class _Index:
    """The verified Packages.xz of one suite and arch, downloaded when first needed and scanned on demand.

    ``known`` holds paragraphs already found in this same index (the cache
    record's); what it lacks makes the index come down once.
    """

    def __init__(
        self, fetch: _Fetch, url: str, sha256: str, size: int, known: dict[str, dict[str, str] | None]
    ) -> None:
        self.fetch, self.raw_url, self.sha256, self.size = fetch, url, sha256, size
        self.url = redact(url)
        self._stack = contextlib.ExitStack()
        self._path: Path | None = None
        self._found = known

    def close(self) -> None:
        self._stack.close()

    def _download(self) -> Path:
        if self.fetch.offline:
            raise self.fetch.miss(f"index for {self.fetch.arch}")
        if self._path is None:
            fetch = self.fetch
            folder = fetch.cache.root / "index"
            with cache_writes(folder):
                folder.mkdir(parents=True, exist_ok=True)
                path = Path(self._stack.enter_context(tempfile.TemporaryDirectory(dir=folder))) / "Packages.xz"
            download_file(
                fetch.http,
                self.raw_url,
                path,
                timeout=fetch.timeout,
                size=self.size,
                sha256=self.sha256,
                what="Packages.xz",
                source="Release",
                progress=fetch.progress,
            )
            self._path = path
        return self._path

    def get(self, package: str) -> dict[str, str] | None:
        """The newest paragraph of ``package`` for this arch (or ``all``), None if there is none."""
        if package not in self._found:
            wanted = {package, FIRST_PACKAGE, FALLBACK_PACKAGE, "qemu-user-binfmt"} - set(self._found)
            self._found.update(dict.fromkeys(wanted))
            for name, para in _scan(self._download(), wanted, self.fetch.arch, self.url):
                best = self._found.get(name)
                if best is None or Version(para["Version"]) > Version(best["Version"]):
                    self._found[name] = para
        return self._found[package]


def _scan(xz_path: Path, packages: Iterable[str], arch: str, url: str) -> list[tuple[str, dict[str, str]]]:
    """The paragraphs of ``packages`` in a Packages.xz, without parsing the other 60 000.

    python-debian takes about 11 s to parse a whole main Packages; a regex
    finds the few paragraphs we need. Reading in blocks keeps the 60 MB of
    uncompressed index out of memory; a paragraph or an index beyond
    MAX_PARAGRAPH / MAX_INDEX is refused, so a mirror cannot make us read
    without end.
    """
    names = b"|".join(re.escape(p.encode()) for p in packages)
    pattern = re.compile(rb"^Package:[ \t]*(" + names + rb")[ \t]*$", re.MULTILINE)
    found: list[tuple[str, dict[str, str]]] = []

    def scan(region: bytes) -> None:
        for match in pattern.finditer(region):
            start = region.rfind(b"\n\n", 0, match.start())
            start = 0 if start < 0 else start + 2
            end = region.find(b"\n\n", match.end())
            para = _parse_paragraph(region[start:] if end < 0 else region[start:end])
            if para.get("Architecture") in (arch, "all") and "Version" in para:
                found.append((match.group(1).decode(), para))

    total = 0
    try:
        with lzma.open(xz_path, "rb") as stream:
            pending = b""
            while block := stream.read(_CHUNK):
                total += len(block)
                if total > MAX_INDEX:
                    raise VerificationError(f"{url}: more than {MAX_INDEX >> 20} MiB uncompressed; refused")
                pending += block
                cut = pending.rfind(b"\n\n")
                if cut >= 0:
                    scan(pending[: cut + 1])
                    pending = pending[cut + 2 :]
                if len(pending) > MAX_PARAGRAPH:
                    raise VerificationError(f"{url}: a paragraph larger than {MAX_PARAGRAPH >> 10} KiB; refused")
            scan(pending)
    except (lzma.LZMAError, EOFError) as err:
        raise VerificationError(f"{url}: not a valid xz file ({err})") from err
    return found


# Only what the resolution reads is kept in the cache record.
_FIELDS = ("Package", "Version", "Architecture", "Pre-Depends", "Depends", "Filename", "Size", "SHA256")


def _parse_paragraph(raw: bytes) -> dict[str, str]:
    """The fields of one paragraph that the resolution reads."""
    fields: dict[str, str] = {}
    key = ""
    for line in raw.decode("utf-8", "replace").splitlines():
        if line[:1] in (" ", "\t"):
            if key:
                fields[key] += "\n" + line
            continue
        key, sep, value = line.partition(":")
        if not sep:
            key = ""
            continue
        fields[key] = value.strip()
    return {k: v for k, v in fields.items() if k in _FIELDS}


def _deb_from_entry(entry: dict[str, Any], url: str) -> _Deb:
    package = str(entry.get("Package", ""))
    filename = str(entry.get("Filename", ""))
    sha256 = str(entry.get("SHA256", "")).lower()
    size = str(entry.get("Size", ""))
    parts = filename.split("/")
    if (
        not filename.endswith(".deb")
        or filename.startswith("/")
        or "\\" in filename
        or any(p in ("", ".", "..") for p in parts)
    ):
        raise VerificationError(f"{url}: {package} has an unusable Filename {filename!r}")
    if not re.fullmatch(r"[0-9a-f]{64}", sha256) or not size.isdigit():
        raise VerificationError(
            f"{url}: {package} {entry.get('Version')} lacks a SHA256 or Size",
            hint="without them the .deb cannot be verified; use another mirror",
        )
    return _Deb(package=package, version=str(entry["Version"]), filename=filename, size=int(size), sha256=sha256)
