"""A .deb's bytes by position: its ar members, and the streams its data member is compressed as.

python-debian's ``ArFile`` is not used because it needs a seekable file (it
indexes the archive by seeking over every member, and each read seeks first),
which a download that is still arriving is not, and because concurrent block
reads need positional reads under one lock. The ar format is a magic and a
60-byte header per member.
"""

from __future__ import annotations

import bz2
import gzip
import importlib
import lzma
import tarfile
import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

from xcompile.errors import VerificationError

# Reads, decoded pieces and tarfile's buffer: small enough that the pieces in
# flight on three threads stay a few MiB (1 MiB pieces cost 12 MiB more peak RSS).
CHUNK = 1 << 18


class Damaged(ValueError):
    """The data is not what its format says (a bad header, a short member)."""


def is_damage(err: Exception) -> bool:
    """A damaged or truncated member, as each decompressor says it; an I/O error is not."""
    if isinstance(err, (Damaged, tarfile.TarError, EOFError, lzma.LZMAError, zlib.error)):
        return True
    return type(err).__name__ in ("ZstdError", "BadGzipFile")


class Source:
    """The .deb's bytes by position, for the threads that read blocks at once (one lock, seek and read).

    A source that cannot seek is read forward only: asking for a later
    position reads over what lies between; asking for an earlier one is a bug.
    """

    def __init__(self, f: BinaryIO, label: str) -> None:
        self.f = f
        self.label = label
        self.seekable = f.seekable()
        self._pos = 0  # where a forward-only source stands
        self._lock = threading.Lock()

    def pread(self, offset: int, n: int) -> bytes:
        """Up to ``n`` bytes at ``offset``: fewer only at the end of the file."""
        with self._lock:
            if self.seekable:
                self.f.seek(offset)
            else:
                assert offset >= self._pos, "a forward-only source read backwards"
                while self._pos < offset and self._read(min(CHUNK, offset - self._pos)):
                    pass
            return self._read(n)

    def _read(self, n: int) -> bytes:
        parts: list[bytes] = []
        while n > 0:
            block = self.f.read(n)
            if not block:
                break
            parts.append(block)
            n -= len(block)
            if not self.seekable:
                self._pos += len(block)
        return b"".join(parts)


@contextmanager
def open_deb(deb: Path | BinaryIO) -> Iterator[Source]:
    if isinstance(deb, Path):
        with open(deb, "rb", buffering=0) as f:
            yield Source(cast(BinaryIO, f), str(deb))
    else:
        yield Source(deb, str(getattr(deb, "name", "the .deb")))


def data_member(source: Source) -> tuple[str, int, int]:
    """The data member's name, offset and size, from the ar headers (other members are not read)."""
    if source.pread(0, 8) != b"!<arch>\n":
        msg = f"{source.label} is not a Debian package (no ar archive header)"
        raise VerificationError(msg)
    pos = 8
    while True:
        head = source.pread(pos, 60)
        if not head:
            msg = f"{source.label} has no data.tar member"
            raise VerificationError(msg)
        try:
            if len(head) < 60 or head[58:60] != b"`\n":
                msg = "a bad member header"
                raise ValueError(msg)
            name, size = head[:16].decode("ascii").rstrip().rstrip("/"), int(head[48:58])
        except ValueError as err:  # UnicodeDecodeError included
            msg = f"{source.label} is not a Debian package ({err} at byte {pos})"
            raise VerificationError(msg) from err
        if name.startswith("data.tar"):
            return name, pos + 60, size
        pos += 60 + size + (size & 1)


class Member:
    """The data member as a file read straight through (for gzip, zstd and plain tar)."""

    def __init__(self, source: Source, start: int, size: int) -> None:
        self.source, self.pos, self.end = source, start, start + size

    def read(self, n: int = -1) -> bytes:
        n = self.end - self.pos if n < 0 else min(n, self.end - self.pos)
        data = self.source.pread(self.pos, n) if n > 0 else b""
        if len(data) < n:
            msg = f"the member is cut short at byte {self.pos + len(data)}"
            raise Damaged(msg)
        self.pos += len(data)
        return data


def _zstd_reader(raw: IO[bytes]) -> IO[bytes]:
    try:
        zstd: Any = importlib.import_module("compression.zstd")  # Python >= 3.14
        return cast(IO[bytes], zstd.ZstdFile(raw, mode="rb"))
    except ImportError:
        zstandard: Any = importlib.import_module("zstandard")
        return cast(IO[bytes], zstandard.ZstdDecompressor().stream_reader(raw, read_size=CHUNK))


# By the data member's suffix: what dpkg-deb writes besides xz. gzip's and
# bz2's file objects check the trailer's CRC at the end (tarfile's own r|gz
# never does), as zstd's does its checksum.
STREAMS: dict[str, Callable[[IO[bytes]], IO[bytes]]] = {
    "": lambda raw: raw,
    ".gz": lambda raw: cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb")),
    ".bz2": lambda raw: cast(IO[bytes], bz2.BZ2File(raw, mode="rb")),
    ".zst": _zstd_reader,
}
