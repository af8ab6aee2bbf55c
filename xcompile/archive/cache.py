"""The download cache: verified packages, the binaries extracted from them, and what each suite resolved to.

Layout (``cache_dir``)::

    debs/<sha256>.deb               a verified package
    bin/<deb sha256>/<binary>       the extracted binary, mode 0755, re-hashed on every use
    index/<codename>_<arch>_<tag>.json
                                    what the last online run resolved for this mirror and suite:
                                    the index's SHA256, who signed it with which keys, the
                                    qemu paragraphs it holds, and the binaries taken from it
                                    (``tag`` hashes the mirror URL, without credentials)
    release/<suite>_<tag>.json      the newest Release seen for this mirror and suite name:
                                    its codename and Date, against rollbacks, and for --offline

Every name that comes from the archive (a codename) is checked before it is
part of a path, so an archive cannot make xcompile write outside the cache.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from xcompile.archive.download import cache_writes, cached
from xcompile.archive.pkgindex import Deb
from xcompile.archive.release import SUITE_NAME, Archive
from xcompile.errors import VerificationError
from xcompile.host.elf import check_static
from xcompile.host.platforms import Arch
from xcompile.system import files


@dataclass(frozen=True)
class Binary:
    """Where a binary was found, and the SHA256 it had when it was extracted."""

    deb: Deb
    member: str
    sha256: str


@dataclass
class Record:
    """What the last online run resolved for one (mirror, codename, arch)."""

    mirror: str
    codename: str
    arch: str
    packages_sha256: str
    signer: str
    keys: str = "default"
    """Which keys verified the signer (archive.Archive.keys): --offline serves it only to the same keys."""
    binaries: dict[str, Binary] = field(default_factory=dict)
    paragraphs: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    """The index's paragraphs of the packages looked at ([]: not in the index), so that another
    binary or a pin from the same index needs no second download of it."""


class Cache:
    def __init__(self, root: Path, archive: Archive) -> None:
        self.root = root
        self.tag = hashlib.sha256(archive.shown.encode()).hexdigest()[:16]
        self.mirror = archive.shown

    def deb(self, sha256: str) -> Path:
        return self.root / "debs" / f"{_hex(sha256)}.deb"

    def binary(self, deb_sha256: str, name: str) -> Path:
        return self.root / "bin" / _hex(deb_sha256) / name

    def _index_path(self, codename: str, arch: str) -> Path:
        return self.root / "index" / f"{_safe(codename)}_{_safe(arch)}_{self.tag}.json"

    def _release_path(self, suite: str) -> Path:
        return self.root / "release" / f"{_safe(suite)}_{self.tag}.json"

    def load_record(self, codename: str, arch: str) -> Record | None:
        data = _read_json(self._index_path(codename, arch))
        try:
            record = Record(
                mirror=data["mirror"],
                codename=data["codename"],
                arch=data["arch"],
                packages_sha256=data["packages_sha256"],
                signer=data["signer"],
                keys=data["keys"],
                binaries={
                    name: Binary(Deb(**b["deb"]), b["member"], b["sha256"]) for name, b in data["binaries"].items()
                },
                paragraphs={name: list(paras) for name, paras in data["paragraphs"].items()},
            )
        except (KeyError, TypeError, AttributeError):
            return None  # no record, or one from another version: resolve again
        return record if (record.mirror, record.codename, record.arch) == (self.mirror, codename, arch) else None

    def save_record(self, record: Record) -> None:
        _write_json(self._index_path(record.codename, record.arch), asdict(record))

    def last_release(self, suite: str) -> tuple[str, datetime] | None:
        """The codename and Date of the newest Release seen for ``suite`` on this mirror."""
        data = _read_json(self._release_path(suite))
        try:
            if data["mirror"] != self.mirror or not SUITE_NAME.fullmatch(data["codename"]):
                return None
            return str(data["codename"]), datetime.fromtimestamp(float(data["date"]), timezone.utc)
        except (KeyError, TypeError, ValueError, OverflowError):
            return None

    def save_release(self, suite: str, codename: str, date: datetime) -> None:
        record = {"mirror": self.mirror, "suite": suite, "codename": codename, "date": date.timestamp()}
        _write_json(self._release_path(suite), record)

    def cached_binary(self, name: str, found: Binary, arch: Arch) -> Path | None:
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

    def cached_deb(self, deb: Deb) -> Path | None:
        """The cached .deb, re-hashed; a damaged one is removed."""
        path = self.deb(deb.sha256)
        if not path.is_file():
            return None
        if files.sha256_of(path) != deb.sha256:
            with cache_writes(path):
                path.unlink(missing_ok=True)
            return None
        return path


def _hex(sha256: str) -> str:
    """A SHA256 as it may name a path: 64 hex digits, or a refusal (a tampered cache record, say)."""
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        msg = f"{sha256[:80]!r} is not a SHA256 the cache can hold"
        raise VerificationError(msg)
    return sha256


def _safe(name: str) -> str:
    if not SUITE_NAME.fullmatch(name):
        msg = f"{name[:60]!r} is not a name the cache can hold"
        raise VerificationError(msg)
    return name


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_json(final: Path, data: dict[str, Any]) -> None:
    with cached(final) as part, cache_writes(part):
        part.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
