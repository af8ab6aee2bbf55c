"""A static qemu from a Debian archive, trusted only as far as the archive's signed chain reaches.

The chain, each link checked before the next is used::

    dists/<suite>/InRelease   signature checked with gpgv (when a keyring is there)
      -> SHA256 + size of main/binary-<arch>/Packages.xz
        -> SHA256 + size of pool/.../qemu-user-static_<version>_<arch>.deb
          -> usr/bin/<binary>: must be a static ELF for this machine

The cache (``cache_dir``), keyed by the .deb's SHA256 so that a new upload
never serves a stale binary::

    debs/<sha256>.deb                 the verified package
    bin/<sha256>/<binary>             the extracted binary, mode 0755
    index/<suite>_<arch>_<hash of mirror>.json
                                      what the last online run resolved, so that an
                                      unchanged index (or --offline) needs no
                                      Packages.xz download or parse

Errors: :class:`DownloadError` (exit 3), :class:`VerificationError` (exit 1),
:class:`CacheError` (exit 3) come from :mod:`xcompile.download`;
:class:`PackageMissing` (exit 3) is defined here; a bad mirror URL, suite,
binary name or keyring path is a :class:`~xcompile.errors.UsageError` (exit 2);
a missing ``gpgv`` is :class:`~xcompile.errors.ProgramMissing` (exit 3).

Nothing here prints: messages for the user come back in ``FetchResult.notes``
and progress goes to the ``progress`` callback.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import lzma
import os
import re
import shlex
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, BinaryIO
from urllib.parse import urlsplit

import requests
from debian.deb822 import Deb822, Packages, Release
from debian.debian_support import Version

from . import files
from .download import (
    ProgressCallback,
    ProgressEvent,
    cache_writes,
    download_file,
    fetch_bytes,
    make_session,
    part_file,
    publish,
)
from .elf import BY_DEBIAN, check_static, host_debian_arch
from .errors import (
    CacheError,
    CommandFailed,
    DownloadError,
    PackageMissing,
    ProgramMissing,
    QemuUnavailable,
    UsageError,
    VerificationError,
)
from .platforms import Arch
from .runner import Runner

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = [
    "ARCHIVE_KEYRING_DIR",
    "NO_KEYRING_NOTE",
    "CacheError",
    "DownloadError",
    "FetchResult",
    "PackageMissing",
    "ProgressEvent",
    "VerificationError",
    "fetch_qemu",
    "host_debian_arch",
    "mirror_from_apt_sources",
]

PACKAGE = "qemu-user-static"
ARCHIVE_KEYRING_DIR = Path("/usr/share/keyrings")
NO_KEYRING_NOTE = (
    "no Debian archive keyring found: the chain is checked for integrity only "
    "(install debian-archive-keyring, or pass a keyring, to check its signature)"
)
_CHUNK = 1 << 20


@dataclass(frozen=True)
class FetchResult:
    """A verified static qemu in the cache.

    ``downloaded`` is False when the .deb came from the cache; ``notes`` are
    one-line messages for the CLI to show (e.g. that no keyring was found).
    """

    path: Path
    deb_sha256: str
    version: str
    downloaded: bool
    verified_signature: bool
    notes: tuple[str, ...] = ()


# --- apt sources -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    types: tuple[str, ...]
    uris: tuple[str, ...]
    suites: tuple[str, ...]
    components: tuple[str, ...]
    signed_by: str = ""
    enabled: bool = True


def mirror_from_apt_sources(root: Path = Path("/")) -> str | None:
    """The first http(s) URI of an enabled ``deb`` source for Debian main, as apt reads them.

    apt's order: ``etc/apt/sources.list``, then ``sources.list.d/`` by name,
    one-line ``*.list`` and deb822 ``*.sources`` alike. An entry counts as
    Debian main when it has component ``main``, a release suite (no ``-`` or
    ``/``: not -security, -updates, -backports, whose mirrors lack the
    release's dists), and looks like Debian: a ``debian`` path segment in its
    URI or a ``debian-archive`` keyring in Signed-By. Third-party repositories
    also call their component "main", hence the last test.
    """
    apt = root / "etc" / "apt"
    candidates = [apt / "sources.list"]
    with contextlib.suppress(OSError):  # no sources.list.d is fine
        candidates += sorted(p for p in (apt / "sources.list.d").iterdir() if p.suffix in (".list", ".sources"))
    for path in candidates:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue  # a missing or unreadable file is apt's concern, not ours
        sources = _deb822_sources(text) if path.suffix == ".sources" else _one_line_sources(text)
        for source in sources:
            if not _is_debian_main(source):
                continue
            for uri in source.uris:
                if urlsplit(uri).scheme in ("http", "https"):
                    return uri.rstrip("/")
    return None


def _one_line_sources(text: str) -> Iterator[_Source]:
    for raw in text.splitlines():
        tokens = raw.split("#", 1)[0].split()
        if len(tokens) < 3:
            continue
        kind, rest = tokens[0], tokens[1:]
        options: dict[str, str] = {}
        if rest[0].startswith("["):
            # "[ arch=amd64 signed-by=/k.gpg ]" may be split into several tokens.
            opts: list[str] = []
            while rest:
                token = rest.pop(0)
                opts.append(token)
                if token.endswith("]"):
                    break
            for item in " ".join(opts).strip("[] ").split():
                key, _, value = item.partition("=")
                options[key.lower()] = value
        if len(rest) < 2:
            continue
        yield _Source(
            types=(kind,),
            uris=(rest[0],),
            suites=(rest[1],),
            components=tuple(rest[2:]),
            signed_by=options.get("signed-by", ""),
        )


def _deb822_sources(text: str) -> Iterator[_Source]:
    for para in Deb822.iter_paragraphs(text.splitlines(), use_apt_pkg=False):
        yield _Source(
            types=tuple(para.get("Types", "").split()),
            uris=tuple(para.get("URIs", "").split()),
            suites=tuple(para.get("Suites", "").split()),
            components=tuple(para.get("Components", "").split()),
            signed_by=para.get("Signed-By", ""),
            enabled=para.get("Enabled", "yes").strip().lower() != "no",
        )


def _is_debian_main(source: _Source) -> bool:
    if not source.enabled or "deb" not in source.types or "main" not in source.components:
        return False
    if not any("-" not in s and "/" not in s for s in source.suites):
        return False
    debian_path = any("debian" in urlsplit(u).path.split("/") for u in source.uris)
    return debian_path or "debian-archive" in source.signed_by


# --- the fetch --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Deb:
    """One qemu-user-static entry of a verified Packages index."""

    version: str
    filename: str
    size: int
    sha256: str


@dataclass(frozen=True)
class _Record:
    """What the last online run resolved for one (mirror, suite, arch)."""

    mirror: str
    suite: str
    arch: str
    packages_sha256: str
    deb: _Deb
    verified_signature: bool


class _Cache:
    def __init__(self, root: Path) -> None:
        self.root = root

    def deb(self, sha256: str) -> Path:
        return self.root / "debs" / f"{sha256}.deb"

    def binary(self, sha256: str, name: str) -> Path:
        return self.root / "bin" / sha256 / name

    def record_path(self, mirror: str, suite: str, arch: str) -> Path:
        tag = hashlib.sha256(mirror.encode()).hexdigest()[:16]
        return self.root / "index" / f"{suite.replace('/', '_')}_{arch}_{tag}.json"

    def load_record(self, mirror: str, suite: str, arch: str) -> _Record | None:
        path = self.record_path(mirror, suite, arch)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            record = _Record(
                mirror=data["mirror"],
                suite=data["suite"],
                arch=data["arch"],
                packages_sha256=data["packages_sha256"],
                deb=_Deb(**data["deb"]),
                verified_signature=bool(data["verified_signature"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None  # no record, or one from another version: resolve again
        if (record.mirror, record.suite, record.arch) != (mirror, suite, arch):
            return None
        return record

    def save_record(self, record: _Record) -> None:
        final = self.record_path(record.mirror, record.suite, record.arch)
        with part_file(final.parent, final.name) as part:
            with cache_writes(part):
                part.write_text(json.dumps(asdict(record), indent=2) + "\n", encoding="utf-8")
            publish(part, final)


def fetch_qemu(
    binary: str,
    *,
    mirror: str,
    suite: str,
    cache_dir: Path,
    host_arch: str | None = None,
    keyring: Path | None = None,
    offline: bool = False,
    progress: ProgressCallback | None = None,
    session: requests.Session | None = None,
    timeout: float = 30.0,
    keyring_dir: Path = ARCHIVE_KEYRING_DIR,
    runner: Runner | None = None,
) -> FetchResult:
    """Download (or take from the cache) ``usr/bin/<binary>`` of qemu-user-static for this host.

    ``keyring`` is a binary OpenPGP keyring to check the archive's signature
    with; without it, Debian's keyrings in ``keyring_dir`` are used when
    present, else only integrity is checked and a note says so. ``timeout``
    applies to connecting and to each read. With ``offline``, nothing is
    fetched: the last record for this mirror/suite/arch must be in the cache.
    ``runner`` runs gpgv (a silent one when None).
    """
    mirror = _check_mirror(mirror)
    _check_names(binary, suite)
    arch = host_arch or host_debian_arch()
    if arch not in BY_DEBIAN:
        raise UsageError(f"unknown Debian architecture {arch!r}", hint=f"use one of {', '.join(sorted(BY_DEBIAN))}")
    cache = _Cache(cache_dir)
    if offline:
        return _fetch_offline(cache, binary, mirror, suite, arch)

    notes: list[str] = []
    keyrings = _keyrings(keyring, keyring_dir)
    if not keyrings:
        notes.append(NO_KEYRING_NOTE)
    own_session = session is None
    http = make_session() if session is None else session
    try:
        gpgv_runner = runner or Runner(lambda line, label: None)
        release, verified = _fetch_release(http, mirror, suite, keyrings, timeout, gpgv_runner)
        index_name = f"main/binary-{arch}/Packages.xz"
        index_sha256, index_size = _release_entry(release, index_name, mirror, suite)
        record = cache.load_record(mirror, suite, arch)
        if record is not None and record.packages_sha256 == index_sha256:
            deb = record.deb  # same index as last time: no need to fetch and scan it again
        else:
            deb = _resolve_deb(
                http, cache, f"{mirror}/dists/{suite}/{index_name}", index_sha256, index_size, arch, timeout, progress
            )
        binary_path = cache.binary(deb.sha256, binary)
        downloaded = False
        if not binary_path.is_file():
            deb_path = cache.deb(deb.sha256)
            if deb_path.is_file():
                _check_cached_deb(deb_path, deb)
            else:
                _download_deb(http, mirror, deb, deb_path, timeout, progress)
                downloaded = True
            _extract_binary(deb_path, binary, binary_path, BY_DEBIAN[arch])
        else:
            check_static(binary_path, BY_DEBIAN[arch], str(binary_path))
        cache.save_record(_Record(mirror, suite, arch, index_sha256, deb, verified))
        return FetchResult(
            path=binary_path,
            deb_sha256=deb.sha256,
            version=deb.version,
            downloaded=downloaded,
            verified_signature=verified,
            notes=tuple(notes),
        )
    finally:
        if own_session:
            http.close()


def _fetch_offline(cache: _Cache, binary: str, mirror: str, suite: str, arch: str) -> FetchResult:
    record = cache.load_record(mirror, suite, arch)
    miss = (f"offline: no cached {binary} for {mirror} {suite} {arch} in {cache.root}", "run once without --offline")
    if record is None:
        raise QemuUnavailable(miss[0], hint=miss[1])
    binary_path = cache.binary(record.deb.sha256, binary)
    if not binary_path.is_file():
        deb_path = cache.deb(record.deb.sha256)
        if not deb_path.is_file():
            raise QemuUnavailable(miss[0], hint=miss[1])
        _check_cached_deb(deb_path, record.deb)
        _extract_binary(deb_path, binary, binary_path, BY_DEBIAN[arch])
    else:
        check_static(binary_path, BY_DEBIAN[arch], str(binary_path))
    notes = () if record.verified_signature else (NO_KEYRING_NOTE,)
    return FetchResult(
        path=binary_path,
        deb_sha256=record.deb.sha256,
        version=record.deb.version,
        downloaded=False,
        verified_signature=record.verified_signature,
        notes=notes,
    )


def _check_mirror(mirror: str) -> str:
    parts = urlsplit(mirror)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(
            f"mirror {mirror!r} is not an http(s) URL", hint="give the archive's base URL, e.g. http://HOST/debian"
        )
    return mirror.rstrip("/")


def _check_names(binary: str, suite: str) -> None:
    # Both end up in paths (the cache, the URL): no separators or dot-dot tricks.
    if not re.fullmatch(r"qemu-[A-Za-z0-9_]+-static", binary):
        raise UsageError(
            f"{binary!r} is not a static qemu binary name", hint="expected qemu-<arch>-static, e.g. qemu-arm-static"
        )
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9._-]+)?", suite) or ".." in suite:
        raise UsageError(f"suite {suite!r} is not a valid Debian suite name", hint="use the codename, e.g. bookworm")


def _keyrings(explicit: Path | None, keyring_dir: Path) -> tuple[Path, ...]:
    if explicit is not None:
        if not explicit.is_file():
            raise UsageError(f"keyring {explicit} does not exist")
        return (explicit,)
    main = keyring_dir / "debian-archive-keyring.gpg"
    if main.is_file():
        return (main,)
    # Without the combined keyring, the per-release ones; never the removed keys.
    return tuple(sorted(p for p in keyring_dir.glob("debian-archive-*.gpg") if "removed" not in p.name and p.is_file()))


def _fetch_release(
    session: requests.Session, mirror: str, suite: str, keyrings: Sequence[Path], timeout: float, runner: Runner
) -> tuple[Release, bool]:
    """The suite's Release, parsed from gpgv's output when there is a keyring."""
    base = f"{mirror}/dists/{suite}"
    inrelease = _fetch_optional(session, f"{base}/InRelease", timeout)
    with tempfile.TemporaryDirectory(prefix="xcompile-release-") as tmp:
        if inrelease is not None:
            if not keyrings:
                return Release(inrelease), False
            signed = Path(tmp) / "InRelease"
            signed.write_bytes(inrelease)
            return Release(_verified(runner, keyrings, f"{base}/InRelease", signed)), True
        release = _fetch_optional(session, f"{base}/Release", timeout)
        if release is None:
            raise DownloadError(
                f"{base}/InRelease",
                "HTTP 404, and there is no Release either",
                status=404,
                hint="check the mirror URL and the suite name (address it by codename, e.g. bookworm)",
            )
        if not keyrings:
            return Release(release), False
        signature = _fetch_optional(session, f"{base}/Release.gpg", timeout)
        if signature is None:
            raise VerificationError(
                f"{base}/Release is not signed (no InRelease, no Release.gpg)",
                hint="use a signed mirror, or pass a keyring that is meant for it",
            )
        data, sig = Path(tmp) / "Release", Path(tmp) / "Release.gpg"
        data.write_bytes(release)
        sig.write_bytes(signature)
        return Release(_verified(runner, keyrings, f"{base}/Release.gpg", sig, data)), True


def _verified(runner: Runner, keyrings: Sequence[Path], url: str, signed: Path, data: Path | None = None) -> bytes:
    """:func:`_gpgv`, with the URL in the error message."""
    try:
        return _gpgv(runner, keyrings, signed, data)
    except VerificationError as err:
        raise VerificationError(f"{url}: {err.message}", hint=err.hint, detail=err.detail) from err


def _fetch_optional(session: requests.Session, url: str, timeout: float) -> bytes | None:
    try:
        return fetch_bytes(session, url, timeout=timeout)
    except DownloadError as err:
        if err.status == 404:
            return None
        raise


def _gpgv(runner: Runner, keyring: Sequence[Path], signed_file: Path, data_file: Path | None = None) -> bytes:
    """Check ``signed_file`` (clearsigned, or a detached signature of ``data_file``); return what it signs.

    Accepted like apt does: at least one good signature by a key in the
    keyrings and no bad one. Debian signs each InRelease with several keys,
    and a keyring that lacks one of them makes gpgv exit 2 although another
    signature is good. An empty home keeps ~/.gnupg/trustedkeys out of it.
    """
    with tempfile.TemporaryDirectory(prefix="xcompile-gpgv-") as home:
        output = Path(home) / "verified"
        argv = ["gpgv", "--homedir", home, "--status-fd", "1"]
        for ring in keyring:
            argv += ["--keyring", str(ring.resolve())]
        if data_file is None:
            argv += ["--output", str(output), str(signed_file)]
        else:
            argv += [str(signed_file), str(data_file)]
        # Exit 1 is a bad signature, 2 a key missing from the keyring: both
        # are judged from the status lines below, not from the exit code.
        try:
            out = runner.run(*argv, timeout=60, ok_codes=(0, 1, 2))
        except ProgramMissing:
            raise ProgramMissing(
                "gpgv", hint="install gpgv (apt-get install gpgv) to check the archive's signature"
            ) from None
        except CommandFailed as err:
            raise VerificationError(f"gpgv failed: {err}", detail=err.details()) from None
        status = {
            line.split()[1] for line in out.splitlines() if line.startswith("[GNUPG:] ") and len(line.split()) > 1
        }
        if "GOODSIG" not in status or "BADSIG" in status:
            why = "bad signature" if "BADSIG" in status else "no good signature by a trusted key"
            raise VerificationError(
                f"{why} (keyring {', '.join(str(k) for k in keyring)})",
                hint="the mirror is tampered with, or the keyring is not the archive's",
                detail=f"command: {shlex.join(argv)}\nstatus:\n{out.rstrip()}",
            )
        return data_file.read_bytes() if data_file is not None else output.read_bytes()


def _release_entry(release: Release, name: str, mirror: str, suite: str) -> tuple[str, int]:
    # A valid signature on another suite's Release (an old one, say) must not
    # pass for this one: apt checks Codename/Suite for the same reason.
    names = {release.get("Suite", ""), release.get("Codename", "")}
    if suite not in names:
        raise VerificationError(
            f"{mirror}/dists/{suite}/Release describes suite {release.get('Suite', '?')} "
            f"({release.get('Codename', '?')}), not {suite}",
            hint="the mirror serves the wrong suite, or is replaying an old one",
        )
    for entry in release.get("SHA256", []):
        if entry.get("name") == name:
            sha256, size = str(entry.get("sha256", "")).lower(), str(entry.get("size", ""))
            if re.fullmatch(r"[0-9a-f]{64}", sha256) and size.isdigit():
                return sha256, int(size)
    raise PackageMissing(
        f"{mirror}/dists/{suite}/Release lists no SHA256 for {name}",
        hint="this suite may not carry the architecture; check the suite name",
    )


def _resolve_deb(
    session: requests.Session,
    cache: _Cache,
    url: str,
    sha256: str,
    size: int,
    arch: str,
    timeout: float,
    progress: ProgressCallback | None,
) -> _Deb:
    with part_file(cache.root / "index", "Packages.xz") as part:
        download_file(
            session,
            url,
            part,
            timeout=timeout,
            size=size,
            sha256=sha256,
            what="Packages.xz",
            source="Release",
            progress=progress,
        )
        entries = _find_package(part, PACKAGE, arch, url)
    if not entries:
        raise PackageMissing(
            f"{url} has no {PACKAGE} for {arch}",
            hint="install qemu-user-static with the host's package manager, or use a suite that carries it",
        )
    best = max(entries, key=lambda e: Version(e["Version"]))
    return _deb_from_entry(best, url)


def _find_package(xz_path: Path, package: str, arch: str, url: str) -> list[Packages]:
    """The paragraphs of ``package`` in a Packages.xz, without parsing the other 60 000.

    python-debian takes about 11 s to parse a whole main Packages; a regex finds
    the few paragraphs we need, and only those go through python-debian.
    Reading in blocks keeps the 50 MB of uncompressed index out of memory.
    """
    pattern = re.compile(rb"^Package:[ \t]*" + re.escape(package.encode()) + rb"[ \t]*$", re.MULTILINE)
    found: list[Packages] = []

    def scan(region: bytes) -> None:
        for match in pattern.finditer(region):
            start = region.rfind(b"\n\n", 0, match.start())
            start = 0 if start < 0 else start + 2
            end = region.find(b"\n\n", match.end())
            para = Packages(region[start:] if end < 0 else region[start:end])
            if para.get("Architecture") in (arch, "all"):
                found.append(para)

    try:
        with lzma.open(xz_path, "rb") as stream:
            pending = b""
            while block := stream.read(4 * _CHUNK):
                pending += block
                cut = pending.rfind(b"\n\n")
                if cut >= 0:
                    scan(pending[: cut + 1])
                    pending = pending[cut + 2 :]
            scan(pending)
    except (lzma.LZMAError, EOFError) as err:
        raise VerificationError(f"{url}: not a valid xz file ({err})") from err
    return found


def _deb_from_entry(entry: Packages, url: str) -> _Deb:
    filename = entry.get("Filename", "")
    sha256 = entry.get("SHA256", "").lower()
    size = entry.get("Size", "")
    parts = filename.split("/")
    if (
        not filename.endswith(".deb")
        or filename.startswith("/")
        or "\\" in filename
        or any(p in ("", ".", "..") for p in parts)
    ):
        raise VerificationError(f"{url}: {PACKAGE} has an unusable Filename {filename!r}")
    if not re.fullmatch(r"[0-9a-f]{64}", sha256) or not size.isdigit():
        raise VerificationError(
            f"{url}: {PACKAGE} {entry.get('Version')} lacks a SHA256 or Size",
            hint="without them the .deb cannot be verified; use another mirror",
        )
    return _Deb(version=entry["Version"], filename=filename, size=int(size), sha256=sha256)


def _download_deb(
    session: requests.Session, mirror: str, deb: _Deb, dest: Path, timeout: float, progress: ProgressCallback | None
) -> None:
    with part_file(dest.parent, deb.sha256) as part:
        download_file(
            session,
            f"{mirror}/{deb.filename}",
            part,
            timeout=timeout,
            size=deb.size,
            sha256=deb.sha256,
            what=deb.filename.rsplit("/", 1)[-1],
            source="Packages",
            progress=progress,
        )
        publish(part, dest)


def _check_cached_deb(path: Path, deb: _Deb) -> None:
    # Extraction is rare (a new binary, or the first run); re-hashing guards
    # against a cache damaged since it was written.
    if files.sha256_of(path) != deb.sha256:
        path.unlink(missing_ok=True)
        raise VerificationError(
            f"cached {path} is damaged (SHA256 differs); it was removed", hint="run again to download it afresh"
        )


# --- extraction -------------------------------------------------------------------------------


class _Slice(io.RawIOBase):
    """``size`` bytes of ``f`` from its current position: one member of an ar archive."""

    def __init__(self, f: BinaryIO, size: int) -> None:
        super().__init__()
        self._f = f
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._left)
        if want <= 0:
            return 0
        data = self._f.read(want)
        view[: len(data)] = data
        self._left -= len(data)
        return len(data)


def _data_member(f: BinaryIO, path: Path) -> tuple[str, int]:
    """Position ``f`` at the data.tar.* member of a .deb (an ar archive); return its name and size."""
    if f.read(8) != b"!<arch>\n":
        raise VerificationError(f"{path} is not a Debian package (no ar header)")
    while True:
        header = f.read(60)
        if not header:
            raise VerificationError(f"{path} has no data.tar member")
        if len(header) < 60 or header[58:60] != b"`\n" or not header[48:58].strip().isdigit():
            raise VerificationError(f"{path} is a damaged ar archive")
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        size = int(header[48:58])
        if name.startswith("data.tar"):
            return name, size
        f.seek(size + (size & 1), os.SEEK_CUR)  # members are 2-byte aligned


def _extract_binary(deb_path: Path, binary: str, dest: Path, arch: Arch) -> None:
    """Stream the data member up to ``usr/bin/<binary>`` and write only that file.

    ``DebFile.data.get_file`` indexes the whole tarball first (about 6 s for
    qemu-user-static); a stream that stops at the member takes well under that.
    """
    wanted = f"usr/bin/{binary}"
    with open(deb_path, "rb") as f:
        member_name, size = _data_member(f, deb_path)
        try:
            with tarfile.open(fileobj=io.BufferedReader(_Slice(f, size), _CHUNK), mode="r|*") as tar:
                for member in tar:
                    if member.name.removeprefix("./") != wanted:
                        continue
                    if not member.isreg():
                        raise PackageMissing(f"{deb_path}: {wanted} is a link, not a file")
                    source = tar.extractfile(member)
                    assert source is not None  # isreg() members always have data
                    _write_binary(source, member.size, dest, arch, f"{wanted} from {deb_path}")
                    return
        except (tarfile.TarError, EOFError, lzma.LZMAError) as err:
            raise VerificationError(
                f"{deb_path}: cannot read {member_name}: {err}",
                hint="the package uses a compression Python cannot read, or is damaged",
            ) from err
    raise PackageMissing(
        f"{deb_path} ({PACKAGE}) has no {wanted}",
        hint="check the binary name, e.g. qemu-arm-static or qemu-aarch64-static",
    )


def _write_binary(source: IO[bytes], size: int, dest: Path, arch: Arch, label: str) -> None:
    with part_file(dest.parent, dest.name) as part:
        with cache_writes(part), open(part, "wb") as out:
            written = 0
            while block := source.read(_CHUNK):
                out.write(block)
                written += len(block)
            out.flush()
            os.fsync(out.fileno())
        if written != size:
            raise VerificationError(f"{label}: {written} of {size} bytes in the package")
        check_static(part, arch, label)
        with cache_writes(part):
            part.chmod(0o755)
        publish(part, dest)
