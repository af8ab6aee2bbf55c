"""What an image's top layer holds, read from the registry's blob as it streams, never unpacked to disk.

`xcompile verify` reads the one layer xcompile adds (``COPY qemu-layer/ /``):
folders and regular files only. The blob is someone else's bytes, so the
read is bounded before anything is believed:

- **size**: a layer above MAX_LAYER is refused by its descriptor, and a
  stream that runs past its declared size or MAX_LAYER is cut;
- **bomb**: the decompressed bytes stop at MAX_UNPACKED (a gzip stream
  can expand a thousandfold), and the inflater is asked for bounded
  pieces, so one small chunk never becomes gigabytes in memory;
- **entries**: at most MAX_ENTRIES; a path that is absolute or climbs
  (``..``), a link (hard or symbolic), a device or a fifo is refused as it
  is met: xcompile's layer holds none, and a later tool that unpacks it
  could be led outside its folder;
- **digest**: the compressed bytes must hash to the layer's digest, and
  the decompressed ones give the diff ID the config records.
"""

from __future__ import annotations

import hashlib
import io
import posixpath
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from xcompile.archive.download import MAX_BINARY
from xcompile.errors import LayerRefused

MAX_LAYER = 64 << 20
"""The most a qemu layer's blob may be: a gzipped qemu is 3 to 8 MB, a copy per binfmt path adds as much."""
MAX_UNPACKED = 3 * MAX_BINARY
"""The most its tar may be: three emulators' worth (one per path xcompile may write), each at most MAX_BINARY."""
MAX_ENTRIES = 64
_GZIP = b"\x1f\x8b"
_HEAD = 64
"""How much of each file is kept: an ELF header's class, byte order and machine are in its first 20 bytes."""


@dataclass(frozen=True)
class File:
    path: str
    """Absolute, as the image has it: /usr/bin/qemu-arm-static."""
    sha256: str
    size: int
    head: bytes


@dataclass(frozen=True)
class Contents:
    files: tuple[File, ...]
    folders: tuple[str, ...]
    diff_id: str
    """sha256: of the decompressed tar, as the image config's rootfs.diff_ids name it."""


def read(chunks: Iterator[bytes], digest: str, size: int, what: str) -> Contents:
    """The files and folders of the layer whose blob ``chunks`` stream; LayerRefused,
    in one line naming ``what``, for anything past the bounds (see the module)."""
    if size > MAX_LAYER:
        msg = f"{what} is {size / 1e6:.1f} MB, above the {MAX_LAYER >> 20} MiB a qemu layer may be; not read"
        raise LayerRefused(msg)
    stream = _Unpacked(chunks, digest, size, what)
    buffered = io.BufferedReader(stream, 1 << 16)
    files: list[File] = []
    folders: list[str] = []
    try:
        with tarfile.open(fileobj=buffered, mode="r|") as tar:
            for count, member in enumerate(tar, start=1):
                if count > MAX_ENTRIES:
                    msg = f"{what} holds more than {MAX_ENTRIES} entries"
                    raise LayerRefused(msg)
                path = _checked(member, what)
                if member.isdir():
                    folders.append(path)
                else:
                    files.append(_file(tar, member, path, what))
        while buffered.read(1 << 16):  # to the end, past the tar's end blocks: the digest covers every byte
            pass
    except (tarfile.TarError, zlib.error, EOFError) as err:
        msg = f"{what} is not a tar stream xcompile can read ({err})"
        raise LayerRefused(msg) from None
    return Contents(tuple(files), tuple(folders), stream.diff_id)


def _checked(member: tarfile.TarInfo, what: str) -> str:
    """The member's path, absolute and normal; LayerRefused for one xcompile never writes."""
    name = member.name
    if name.startswith("/"):
        msg = f"{what} holds an absolute path, {name!r}"
        raise LayerRefused(msg)
    if ".." in name.split("/"):
        msg = f"{what} holds a path that climbs out of the image's root, {name!r}"
        raise LayerRefused(msg)
    if member.issym() or member.islnk():
        msg = f"{what} holds a link, {name!r} -> {member.linkname!r}"
        raise LayerRefused(msg)
    if not (member.isdir() or member.isreg()):
        msg = f"{what} holds a device or special file, {name!r}"
        raise LayerRefused(msg)
    return "/" + posixpath.normpath(name).lstrip("/") if posixpath.normpath(name) != "." else "/"


def _file(tar: tarfile.TarFile, member: tarfile.TarInfo, path: str, what: str) -> File:
    if member.size > MAX_BINARY:
        msg = f"{what} holds {path} of {member.size / 1e6:.1f} MB, above the {MAX_BINARY >> 20} MiB a qemu may be"
        raise LayerRefused(msg)
    source = tar.extractfile(member)
    digest = hashlib.sha256()
    head = b""
    if source is not None:
        while chunk := source.read(1 << 20):
            head = head or chunk[:_HEAD]
            digest.update(chunk)
    return File(path, digest.hexdigest(), member.size, head)


class _Unpacked(io.RawIOBase):
    """The layer's tar: its blob's chunks, counted and hashed, inflated where gzipped (a plain tar as it is)."""

    def __init__(self, chunks: Iterator[bytes], digest: str, size: int, what: str) -> None:
        super().__init__()
        self._chunks = chunks
        self._digest, self._size, self._what = digest, size, what
        self._packed = hashlib.sha256()
        self._unpacked = hashlib.sha256()
        self._read = 0
        self._given = 0
        self._pending = b""
        self._inflate: zlib._Decompress | None = None
        self._plain: bool | None = None
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while True:
            out = self._next(len(buffer))
            if out or self._done:
                break
        buffer[: len(out)] = out
        self._given += len(out)
        if self._given > MAX_UNPACKED:
            msg = f"{self._what} unpacks to more than {MAX_UNPACKED >> 20} MiB (a gzip bomb?); not read on"
            raise LayerRefused(msg)
        self._unpacked.update(out)
        return len(out)

    def _next(self, room: int) -> bytes:
        """Up to ``room`` decompressed bytes; b"" where a compressed chunk gave none yet, or at the end."""
        if self._inflate is not None and self._inflate.unconsumed_tail:
            return self._inflate.decompress(self._inflate.unconsumed_tail, room)
        if not self._pending:
            chunk = next(self._chunks, b"")
            if not chunk:
                self._end()
                return b""
            self._count(chunk)
            self._pending = chunk
        if self._plain is None:
            self._plain = not self._pending.startswith(_GZIP)
            self._inflate = None if self._plain else zlib.decompressobj(16 + zlib.MAX_WBITS)
        data, self._pending = self._pending, b""
        if self._inflate is None:
            self._pending = data[room:]
            return data[:room]
        return self._inflate.decompress(data, room)

    def _count(self, chunk: bytes) -> None:
        self._read += len(chunk)
        if self._read > self._size:
            msg = f"{self._what}: the registry sends more than the layer's {self._size} bytes"
            raise LayerRefused(msg)
        self._packed.update(chunk)

    def _end(self) -> None:
        self._done = True
        found = "sha256:" + self._packed.hexdigest()
        if self._read != self._size or found != self._digest:
            msg = f"{self._what}: the registry's blob is not the layer ({self._read} bytes, {found})"
            raise LayerRefused(msg)
        if self._inflate is not None and not self._inflate.eof:
            msg = f"{self._what}: its gzip stream is cut short"
            raise LayerRefused(msg)

    @property
    def diff_id(self) -> str:
        return "sha256:" + self._unpacked.hexdigest()
