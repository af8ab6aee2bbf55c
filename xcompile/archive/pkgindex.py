"""A suite's Packages index: the paragraphs xcompile reads of it, and the Debian versions in them.

The index itself is trusted through the Release that names its SHA256
(archive/release.py); what is read here is bounded (MAX_PARAGRAPH, MAX_INDEX), and a
Version that is not one is a VerificationError naming the index, never a
ValueError.
"""

from __future__ import annotations

import lzma
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from debian.deb822 import PkgRelation
from debian.debian_support import NativeVersion

from xcompile.errors import VerificationError

# Bounds on what a mirror can make us read: the largest real paragraph (trixie
# amd64) is about 76 kB, the largest Packages about 60 MB.
MAX_PARAGRAPH = 1 << 20
MAX_INDEX = 512 << 20
_CHUNK = 1 << 20

FIELDS = ("Package", "Version", "Architecture", "Pre-Depends", "Depends", "Filename", "Size", "SHA256")
"""What the resolution reads of a paragraph; only these are kept in the cache."""


@dataclass(frozen=True)
class Deb:
    """One package of a verified Packages index."""

    package: str
    version: str
    filename: str
    size: int
    sha256: str

    @classmethod
    def of(cls, para: dict[str, Any], url: str) -> Deb:
        package = str(para.get("Package", ""))
        filename = str(para.get("Filename", ""))
        sha256 = str(para.get("SHA256", "")).lower()
        size = str(para.get("Size", ""))
        parts = filename.split("/")
        if (
            not filename.endswith(".deb")
            or filename.startswith("/")
            or "\\" in filename
            or any(p in ("", ".", "..") for p in parts)
        ):
            msg = f"{url}: {package} has an unusable Filename {filename[:80]!r}"
            raise VerificationError(msg)
        if not re.fullmatch(r"[0-9a-f]{64}", sha256) or not size.isdigit():
            msg = f"{url}: {package} {para.get('Version')} lacks a SHA256 or Size"
            raise VerificationError(
                msg,
                hint="without them the .deb cannot be verified; use another mirror",
            )
        return cls(package=package, version=str(para["Version"]), filename=filename, size=int(size), sha256=sha256)


EPOCH_MAX = 2**31 - 1
"""dpkg reads the epoch as an int, and refuses a larger one ("epoch in version is too big")."""


class Version(NativeVersion):
    """python-debian's version, whose numbers compare as dpkg's do: digit by digit, so a 5000-digit
    number in a hostile index compares (``int()`` raises ValueError past 4300 digits)."""

    @classmethod
    def _version_cmp_part(cls, va: str, vb: str) -> int:
        la = cls.re_all_digits_or_not.findall(va)
        lb = cls.re_all_digits_or_not.findall(vb)
        while la or lb:
            a = la.pop(0) if la else "0"
            b = lb.pop(0) if lb else "0"
            if a.isdigit() and b.isdigit():
                ka, kb = _number(a), _number(b)
                if ka != kb:
                    return -1 if ka < kb else 1
            elif res := cls._version_cmp_string(a, b):
                return res
        return 0


def _number(digits: str) -> tuple[int, str]:
    """A run of digits as a key that orders as its number does, without int()."""
    digits = digits.lstrip("0")
    return len(digits), digits


def version_of(text: str, where: str) -> Version:
    """A Debian version as dpkg takes it, or VerificationError naming where an unreadable one came from."""
    try:
        version = Version(text)
    except ValueError:
        version = None
    if version is None or not _epoch_ok(version.epoch):
        msg = f"{where}: {text[:60]!r} is not a Debian version"
        raise VerificationError(msg) from None
    return version


def _epoch_ok(epoch: str | None) -> bool:
    """dpkg's rule: the epoch is ASCII digits, at most EPOCH_MAX."""
    if epoch is None:
        return True
    length, digits = _number(epoch)
    return epoch.isascii() and length <= len(str(EPOCH_MAX)) and int(digits or "0") <= EPOCH_MAX


def newest(paras: Iterable[dict[str, str]], where: str) -> dict[str, str] | None:
    """The paragraph with the highest Version, or None."""
    return max(paras, key=lambda para: version_of(para["Version"], where), default=None)


def depends(para: dict[str, Any]) -> list[str]:
    """The package names of Pre-Depends and Depends, in order, alternatives included."""
    names: list[str] = []
    for key in ("Pre-Depends", "Depends"):
        if not para.get(key, "").strip():
            continue
        for alternatives in PkgRelation.parse_relations(para[key]):
            names += [str(alt["name"]) for alt in alternatives]
    return names


def scan(xz_path: Path, packages: Iterable[str], arch: str, url: str) -> dict[str, list[dict[str, str]]]:
    """Every paragraph of ``packages`` for ``arch`` (or ``all``) in a Packages.xz, without parsing the other 60 000.

    python-debian takes about 11 s to parse a whole main Packages; a regex
    finds the few paragraphs we need. Reading in blocks keeps the 60 MB of
    uncompressed index out of memory; a paragraph or an index beyond
    MAX_PARAGRAPH / MAX_INDEX is refused, so a mirror cannot make us read
    without end.
    """
    wanted = list(packages)
    names = b"|".join(re.escape(p.encode()) for p in wanted)
    pattern = re.compile(rb"^Package:[ \t]*(" + names + rb")[ \t]*$", re.MULTILINE)
    found: dict[str, list[dict[str, str]]] = {name: [] for name in wanted}

    def take(region: bytes) -> None:
        for match in pattern.finditer(region):
            start = region.rfind(b"\n\n", 0, match.start())
            start = 0 if start < 0 else start + 2
            end = region.find(b"\n\n", match.end())
            para = parse_paragraph(region[start:] if end < 0 else region[start:end])
            if para.get("Architecture") in (arch, "all") and "Version" in para:
                version_of(para["Version"], url)
                found[match.group(1).decode()].append(para)

    for region in _regions(xz_path, url):
        take(region)
    return found


def _regions(xz_path: Path, url: str) -> Iterable[bytes]:
    """The decompressed index, cut at paragraph boundaries."""
    total = 0
    try:
        with lzma.open(xz_path, "rb") as stream:
            pending = b""
            while block := stream.read(_CHUNK):
                total += len(block)
                if total > MAX_INDEX:
                    msg = f"{url}: more than {MAX_INDEX >> 20} MiB uncompressed; refused"
                    raise VerificationError(msg)
                pending += block
                cut = pending.rfind(b"\n\n")
                if cut >= 0:
                    yield pending[: cut + 1]
                    pending = pending[cut + 2 :]
                if len(pending) > MAX_PARAGRAPH:
                    msg = f"{url}: a paragraph larger than {MAX_PARAGRAPH >> 10} KiB; refused"
                    raise VerificationError(msg)
            yield pending
    except (lzma.LZMAError, EOFError) as err:
        msg = f"{url}: not a valid xz file ({err})"
        raise VerificationError(msg) from err


def parse_paragraph(raw: bytes) -> dict[str, str]:
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
    return {k: v for k, v in fields.items() if k in FIELDS}
