"""One file out of a .deb, streamed: no other member is unpacked, nothing is held in memory.

A .deb is an ar archive (read with python-debian's ``ArFile``) whose
``data.tar.*`` member holds the files. ``DebFile.data.get_file`` indexes the
whole tarball first (about 6 s for qemu-user-static), and for ``.zst`` it reads
the whole member into memory and pipes it through an ``unzstd`` program, which
a 71 MB qemu-user makes into some 450 MB. So the data member is streamed
through ``tarfile``'s ``r|`` mode, which stops at the wanted member, and
zstd (Ubuntu's default since 21.10) is decompressed as a stream: by the
standard library's ``compression.zstd`` from Python 3.14, else by the
``zstandard`` binding, which is a declared dependency for older Pythons.
"""

from __future__ import annotations

import importlib
import lzma
import posixpath
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, Literal, cast

from debian.arfile import ArError, ArFile

from .errors import VerificationError

CHUNK = 1 << 20


@dataclass(frozen=True)
class Found:
    """What a package holds at a path: the file (written out), a link to another path, or nothing."""

    kind: Literal["file", "link", "missing"]
    target: str = ""
    """For a link: the path it points to inside the package, normalized (``usr/bin/qemu-arm``)."""


Writer = Callable[[IO[bytes], int], None]


def read_member(deb: Path, wanted: str, write: Writer) -> Found:
    """Find ``wanted`` (``usr/bin/x``) in ``deb``; a regular file is handed to ``write(stream, size)``."""
    with open(deb, "rb") as f:
        member = _data_member(f, deb)
        try:
            with _data_tar(member) as tar:
                for info in tar:
                    if info.name.removeprefix("./").rstrip("/") != wanted:
                        continue
                    if info.issym():
                        return Found("link", _link_target(wanted, info.linkname, deb))
                    if info.islnk():  # a hard link names another member by its archive path
                        return Found("link", _link_target("", "/" + info.linkname.removeprefix("./"), deb))
                    if not info.isreg():
                        raise VerificationError(f"{deb}: {wanted} is neither a file nor a link")
                    source = tar.extractfile(info)
                    assert source is not None  # isreg() members always have data
                    write(source, info.size)
                    return Found("file")
        except Exception as err:
            if not _is_damage(err):
                raise
            raise VerificationError(f"{deb}: cannot read its {member.name}: {err}", hint="the .deb is damaged") from err
    return Found("missing")


def _data_member(f: BinaryIO, deb: Path) -> Any:
    try:
        ar = ArFile(fileobj=f)
    except (ArError, OSError, ValueError) as err:
        raise VerificationError(f"{deb} is not a Debian package ({err})") from err
    for member in ar.getmembers():
        if member.name.startswith("data.tar"):
            return member
    raise VerificationError(f"{deb} has no data.tar member")


def _data_tar(member: Any) -> tarfile.TarFile:
    raw = cast(BinaryIO, member)
    if member.name.endswith(".zst"):
        return tarfile.open(fileobj=_zstd_reader(raw), mode="r|")
    return tarfile.open(fileobj=raw, mode="r|*")


def _zstd_reader(raw: BinaryIO) -> BinaryIO:
    try:
        zstd: Any = importlib.import_module("compression.zstd")  # Python >= 3.14
        return cast(BinaryIO, zstd.ZstdFile(raw, mode="rb"))
    except ImportError:
        zstandard: Any = importlib.import_module("zstandard")
        return cast(BinaryIO, zstandard.ZstdDecompressor().stream_reader(raw, read_size=CHUNK))


def _is_damage(err: Exception) -> bool:
    """A damaged or truncated member, as each decompressor says it; an I/O error is not."""
    if isinstance(err, (tarfile.TarError, EOFError, lzma.LZMAError, zlib.error)):
        return True
    return type(err).__name__ in ("ZstdError", "BadGzipFile")


def _link_target(path: str, linkname: str, deb: Path) -> str:
    joined = linkname.lstrip("/") if linkname.startswith("/") else posixpath.join(posixpath.dirname(path), linkname)
    target = posixpath.normpath(joined)
    if target.startswith("../") or target in ("..", ".", ""):
        raise VerificationError(f"{deb}: {path} links out of the package ({linkname})")
    return target
