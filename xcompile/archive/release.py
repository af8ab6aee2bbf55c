"""A Debian archive's signed Release, checked link by link; its Packages paragraphs are archive/pkgindex.py's.

The chain, each link checked before the next is used::

    dists/<suite>/InRelease      signed by a trusted key (xcompile.archive.trust), fresh, not older than last time
      -> SHA256 + size of main/binary-<arch>/Packages.xz
        -> Filename, SHA256 + size of each .deb it names (archive/pkgindex.py reads, archive/fetcher.py fetches)

A snapshot archive (its URL ends in a timestamped folder, ``.../20250520T000000Z``)
is judged as of that time: its old Date is what it should have, and a
Valid-Until that passed since is no sign of a stale mirror.
"""

from __future__ import annotations

import email.utils
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from debian.deb822 import Release as Deb822Release

from xcompile.archive import trust
from xcompile.errors import DownloadError, PackageMissing, ProgramMissing, ReleaseExpired, UsageError, VerificationError
from xcompile.system.runner import Runner
from xcompile.urls import redact

SYMBOLIC_SUITES = ("oldstable", "stable", "testing", "unstable")
"""The names every Debian mirror serves; each is a release, whose codename names its -updates and -backports."""
# A Release's Date may be this far ahead of our clock (apt allows none by default,
# but a host's clock a few minutes slow should not break the download).
DATE_SKEW = timedelta(minutes=10)
UNSIGNED_NOTE = "the archive's signature is NOT verified (--allow-unsigned): {why}; the mirror chooses the qemu"
SUITE_NAME = re.compile(r"[a-z][a-z0-9.-]*")
_SNAPSHOT = re.compile(r"/(\d{8}T\d{6}Z)(?=/|$)")

DEFAULT_SUITE = "stable"  # whatever the archive's stable is; the cache is keyed by the codename it names


@dataclass(frozen=True)
class Archive:
    """A Debian archive to fetch from: its URL, a suite (name or codename), and whose keys count.

    ``keyrings`` empty means xcompile's bundled Debian keys plus the host's
    (see :mod:`xcompile.archive.trust`); given, they replace both.
    """

    mirror: str
    suite: str = DEFAULT_SUITE
    keyrings: tuple[Path, ...] = ()
    allow_unsigned: bool = False

    def __post_init__(self) -> None:
        hint = "give the archive's base URL, e.g. http://HOST/debian"
        if not re.fullmatch(r"https?://[^/\s]+(/\S*)?", self.mirror):
            msg = f"mirror {redact(self.mirror)!r} is not an http(s) URL"
            raise UsageError(msg, hint=hint)
        if "?" in self.mirror or "#" in self.mirror:
            msg = f"mirror {redact(self.mirror)}: a query or fragment cannot be part of an archive's base URL"
            raise UsageError(msg, hint=hint)
        object.__setattr__(self, "mirror", self.mirror.rstrip("/"))
        if not SUITE_NAME.fullmatch(self.suite):
            msg = f"suite {self.suite!r} is not a Debian suite name"
            raise UsageError(
                msg,
                hint="use a name (stable, oldstable, testing) or a codename (bookworm, trixie)",
            )
        for ring in self.keyrings:
            if not ring.is_file():
                msg = f"keyring {ring} does not exist"
                raise UsageError(msg)

    @property
    def shown(self) -> str:
        """The mirror as messages and cache records may show it: no credentials, no query."""
        return redact(self.mirror)

    def dists(self) -> str:
        return f"{self.mirror}/dists/{self.suite}"

    def at(self, suite: str) -> Archive:
        """The same archive and keys, another suite."""
        return Archive(self.mirror, suite, self.keyrings, self.allow_unsigned)

    @property
    def keys(self) -> str:
        """Which keys judge signatures: "default" (bundled and the host's) or the SHA256 of the given keyrings."""
        if not self.keyrings:
            return "default"
        digest = hashlib.sha256()
        for ring in self.keyrings:
            digest.update(ring.read_bytes())
        return f"sha256:{digest.hexdigest()}"

    @property
    def as_of(self) -> datetime | None:
        """The time a snapshot archive shows (from its URL), or None for a live mirror."""
        found = _SNAPSHOT.search(self.mirror)
        if found is None:
            return None
        return datetime.strptime(found.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class Release:
    """A suite's Release, as its signature covers it."""

    fields: Deb822Release
    codename: str
    date: datetime
    signer: str
    """Who signed it ("" when taken unverified with --allow-unsigned)."""
    notes: tuple[str, ...] = ()

    def entry(self, name: str, archive: Archive) -> tuple[str, int]:
        """The SHA256 and size the Release gives for ``name`` (main/binary-amd64/Packages.xz)."""
        for entry in self.fields.get("SHA256", []):
            if entry.get("name") == name:
                sha256, size = str(entry.get("sha256", "")).lower(), str(entry.get("size", ""))
                if re.fullmatch(r"[0-9a-f]{64}", sha256) and size.isdigit():
                    return sha256, int(size)
        msg = f"{archive.shown}/dists/{archive.suite}/Release lists no SHA256 for {name}"
        raise PackageMissing(
            msg,
            hint="this suite may not carry the architecture; check the suite name",
        )


Fetch = Callable[[str], "bytes | None"]
"""GET a small file of the archive; None for a 404."""


def read_release(
    get: Fetch, archive: Archive, runner: Runner, keyring_dirs: tuple[Path, ...], last: datetime | None
) -> Release | None:
    """The suite's Release, verified and judged fresh; None where the archive has no such suite.

    ``last`` is the Date of the newest Release seen before for this mirror and suite.
    """
    base = archive.dists()
    inrelease = get(f"{base}/InRelease")
    if inrelease is not None:
        text, signer, notes = _verified(get, archive, runner, keyring_dirs, inrelease, None, f"{base}/InRelease")
    else:
        plain = get(f"{base}/Release")
        if plain is None:
            return None
        signature = get(f"{base}/Release.gpg")
        if signature is None:
            why = f"{redact(base)}/Release is not signed (no InRelease, no Release.gpg)"
            text, signer, notes = plain, "", _unverified(archive, why)
        else:
            text, signer, notes = _verified(get, archive, runner, keyring_dirs, plain, signature, f"{base}/Release.gpg")
    fields = Deb822Release(text)
    where = f"{archive.shown}/dists/{archive.suite}/Release"
    codename = str(fields.get("Codename") or archive.suite)
    if not SUITE_NAME.fullmatch(codename):
        msg = f"{where} names the codename {codename!r}, which is not a Debian suite name"
        raise VerificationError(msg)
    # A valid signature on another suite's Release (an old one, say) must not
    # pass for this one: apt checks Codename/Suite for the same reason.
    if archive.suite not in {fields.get("Suite", ""), codename}:
        msg = f"{where} describes suite {fields.get('Suite', '?')!r} ({codename}), not {archive.suite}"
        raise VerificationError(
            msg,
            hint="the mirror serves the wrong suite, or is replaying an old one",
        )
    date = _check_fresh(fields, archive, where, last)
    return Release(fields, codename, date, signer, notes)


def missing_suite(archive: Archive) -> DownloadError:
    """The archive has no such suite: neither InRelease nor Release."""
    return DownloadError(
        f"{archive.shown}/dists/{archive.suite}/InRelease",
        "HTTP 404, and there is no Release either",
        status=404,
        hint="check the mirror URL and the suite name (e.g. stable, oldstable, bookworm, trixie)",
    )


def _verified(
    get: Fetch,
    archive: Archive,
    runner: Runner,
    keyring_dirs: tuple[Path, ...],
    signed: bytes,
    signature: bytes | None,
    url: str,
) -> tuple[bytes, str, tuple[str, ...]]:
    del get  # the signature came with the text
    rings = trust.keyrings(archive.keyrings, keyring_dirs)
    try:
        text, signer = trust.verify(runner, rings, signed, signature)
    except ProgramMissing as err:
        if not archive.allow_unsigned:
            raise
        return _cleartext(signed) if signature is None else signed, "", _unverified(archive, str(err))
    except VerificationError as err:
        why = f"{redact(url)}: {err.message}"
        if not archive.allow_unsigned:
            raise VerificationError(
                why,
                hint="the mirror is tampered with, or the keys are not the archive's; give the right ones with"
                " --keyring, or take it unverified with --allow-unsigned",
                detail=err.detail,
            ) from err
        return _cleartext(signed) if signature is None else signed, "", _unverified(archive, why)
    return text, str(signer), ()


def _unverified(archive: Archive, why: str) -> tuple[str, ...]:
    if not archive.allow_unsigned:
        raise VerificationError(why, hint="use a signed mirror, or accept it unverified with --allow-unsigned")
    return (UNSIGNED_NOTE.format(why=why),)


def _cleartext(inrelease: bytes) -> bytes:
    """The text of a clearsigned file whose signature could not be checked (RFC 4880 §7)."""
    lines = inrelease.split(b"\n")
    try:
        start = lines.index(b"") + 1 if lines[0].startswith(b"-----BEGIN PGP SIGNED") else 0
        end = next(i for i, line in enumerate(lines) if line.startswith(b"-----BEGIN PGP SIGNATURE"))
    except (ValueError, StopIteration, IndexError):
        return inrelease
    return b"\n".join(line[2:] if line.startswith(b"- ") else line for line in lines[start:end])


def _release_time(fields: Deb822Release, key: str, where: str) -> datetime | None:
    value = fields.get(key)
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(str(value))
    except (TypeError, ValueError) as err:
        msg = f"{where}: unreadable {key} {str(value)[:60]!r}"
        raise VerificationError(msg) from err
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _check_fresh(fields: Deb822Release, archive: Archive, where: str, last: datetime | None) -> datetime:
    """Refuse a Release that has expired, is dated ahead of us, or is older than one seen before."""
    now = archive.as_of or datetime.now(timezone.utc)
    said = f"as of the snapshot's {now:%Y-%m-%d %H:%M} UTC" if archive.as_of else "now"
    date = _release_time(fields, "Date", where)
    if date is None:
        msg = f"{where} has no Date"
        raise VerificationError(msg, hint="a Release without a Date cannot be checked for replay")
    if date > now + DATE_SKEW:
        msg = f"{where} is dated {date:%Y-%m-%d %H:%M} UTC, in the future ({said})"
        raise VerificationError(
            msg,
            hint="check this machine's clock; otherwise the mirror is not to be trusted",
        )
    until = _release_time(fields, "Valid-Until", where)
    if until is not None and until < now:
        msg = f"{where} expired on {until:%Y-%m-%d %H:%M} UTC (Valid-Until)"
        raise ReleaseExpired(
            msg,
            hint="the mirror is stale or replaying an old Release; use an up-to-date mirror",
        )
    if last is not None and last > date:
        msg = (
            f"{where} is dated {date:%Y-%m-%d %H:%M} UTC, older than the one seen before "
            f"({last:%Y-%m-%d %H:%M} UTC): a rollback"
        )
        raise VerificationError(
            msg,
            hint="the mirror is stale or replaying an old Release; use an up-to-date mirror",
        )
    return date
