"""Files out of a .deb in one pass over its data member: streamed, nothing held in memory beyond a few chunks.

A .deb is an ar archive whose ``data.tar.*`` member holds the files.
``DebFile.data.get_file`` indexes the whole tarball first (about 6 s for
qemu-user-static), and for ``.zst`` it reads the whole member into memory and
pipes it through an ``unzstd`` program, which a 71 MB qemu-user makes into some
450 MB. So the data member is streamed through ``tarfile`` once, however many
files are wanted (the issue: eight emulators out of qemu-user's 465 MB data
member cost eight passes, up to 9 s each). zstd (Ubuntu's default since
21.10) is decompressed as a stream: by the standard library's
``compression.zstd`` from Python 3.14, else by the ``zstandard`` binding,
which is a declared dependency for older Pythons.

xz is the slow one: one core decodes qemu-user's data member in about 3.8 s,
while ``dpkg-deb -x`` takes 2.2 s because liblzma's threaded decoder works on
two blocks at once (dpkg-deb compresses with threads, so its .xz has a block
per 3 dictionaries, 24 MiB for the default preset, and every block header
records its sizes). Python's ``lzma`` has no threaded decoder, so
:class:`_Decoded` does the same by hand: each block is wrapped as a
single-block .xz stream of its own (so liblzma still checks its CRC and
sizes) and decoded by one of two threads (``lzma`` lets go of the GIL while
it decodes). Output decoded ahead of its reader goes to an unlinked temporary
file rather than memory: liblzma's own threaded decoder keeps whole blocks in
memory, which is why ``dpkg-deb -x`` peaks above 100 MB. And since the sizes
say where each block's output lies in the tar, tarfile's seeking ``r:`` mode
skips the blocks (or the ends of blocks) that hold only files nobody asked
for: a fifth of qemu-user's xz is never decoded. Other .xz layouts (one
block, or blocks without sizes) are decoded as a whole, by one thread.

The .deb is read by position (:class:`_Source`); python-debian's ``ArFile``
is not used because it needs a seekable file (it indexes the archive by
seeking over every member, and each read seeks first), which a body that is
still arriving is not, and because the decoding threads need positional
reads under one lock.
"""

from __future__ import annotations

import bz2
import collections
import functools
import gzip
import importlib
import lzma
import os
import posixpath
import tarfile
import tempfile
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, Literal, cast

from .errors import VerificationError

# Reads, decoded pieces and tarfile's buffer: small enough that the pieces in
# flight on three threads stay a few MiB (1 MiB pieces cost 12 MiB more peak RSS).
CHUNK = 1 << 18
# Two decoders: each holds its dictionary (8 MiB for dpkg's default preset),
# and two keep a whole run under the 64 MiB; the machines this runs
# on have two cores and more would only share them.
WORKERS = 2
# How far the block being read may be decoded ahead of its reader, in memory.
AHEAD = 8 * CHUNK


@dataclass(frozen=True)
class Found:
    """What a package holds at a path: the file (written out), a link to another path, or nothing."""

    kind: Literal["file", "link", "missing"]
    target: str = ""
    """For a link: the path it points to inside the package, normalized (``usr/bin/qemu-arm``)."""


Writer = Callable[[IO[bytes], int], None]
PathWriter = Callable[[str, IO[bytes], int], None]


def read_member(deb: Path | BinaryIO, wanted: str, write: Writer) -> Found:
    """Find ``wanted`` (``usr/bin/x``) in ``deb``; a regular file is handed to ``write(stream, size)``."""
    return read_members(deb, [wanted], lambda _path, stream, size: write(stream, size))[wanted]


def read_members(
    deb: Path | BinaryIO, wanted: Iterable[str], write: PathWriter, *, workers: int = WORKERS
) -> dict[str, Found]:
    """Every ``wanted`` path (``usr/bin/x``) of ``deb``, in one pass over its data member.

    A regular file is handed to ``write(path, stream, size)`` as the pass
    reaches it; a symlink or hard link is reported with its target, normalized
    within the package (a target outside it raises ``VerificationError``);
    a path the package lacks is ``missing``. The pass stops once every wanted
    path has been met, so only a missing one costs reading to the end.

    A link is not followed: its target may lie behind it in the stream (tar
    stores a hard link after the file it names, and dpkg-deb's order is the
    build tree's). So a caller that expects a link asks for its likely
    target in the same call, e.g. ``usr/bin/qemu-arm-static`` and
    ``usr/bin/qemu-arm``, and looks the target up in the result; only a
    target it did not ask for needs another pass.

    ``deb`` is a path or a binary file object. A file object is read with
    ``seek`` and ``read`` under a lock, no byte of the data member twice; one
    that is not seekable (a pipe, a body as it arrives) is read straight
    through, and its xz is then decoded by one thread.

    Damaged or truncated data raises ``VerificationError``; whatever
    ``write`` raises goes through. The format's checks (xz's per block, gzip's
    and zstd's at the end) cover what the pass reads, and a check can fail
    after ``write`` was handed the data it covers: trust nothing written until
    this returns. Parts that the pass never reads (after an early stop, or xz
    blocks skipped) are not checked at all: the .deb's SHA256 from the
    signed index is what vouches for the whole.
    """
    wanted = list(dict.fromkeys(wanted))
    pending = set(wanted)
    found: dict[str, Found] = {}
    with _open(deb) as source:
        name, start, size = _data_member(source)
        try:
            with _data_tar(source, name, start, size, workers) as (tar, stream):
                for info in tar:
                    path = info.name.removeprefix("./").rstrip("/")
                    if path not in pending:
                        continue
                    pending.discard(path)
                    found[path] = _take(tar, info, path, write, source.label)
                    if not pending:
                        break
                else:  # read to the end: past the tar's end marker, so every check is made (CRCs, the xz index)
                    while stream.read(CHUNK):
                        pass
        except Exception as err:
            if not _is_damage(err):
                raise
            raise VerificationError(
                f"{source.label}: cannot read its {name}: {err}", hint="the .deb is damaged"
            ) from err
    return {path: found.get(path, Found("missing")) for path in wanted}


def _take(tar: tarfile.TarFile, info: tarfile.TarInfo, path: str, write: PathWriter, label: str) -> Found:
    if info.issym():
        return Found("link", _link_target(path, info.linkname, label))
    if info.islnk():  # a hard link names another member by its archive path
        return Found("link", _link_target("", "/" + info.linkname.removeprefix("./"), label))
    if not info.isreg():
        raise VerificationError(f"{label}: {path} is neither a file nor a link")
    stream = tar.extractfile(info)
    assert stream is not None  # isreg() members always have data
    write(path, stream, info.size)
    return Found("file")


def _link_target(path: str, linkname: str, label: str) -> str:
    joined = linkname.lstrip("/") if linkname.startswith("/") else posixpath.join(posixpath.dirname(path), linkname)
    target = posixpath.normpath(joined)
    if target.startswith("../") or target in ("..", ".", ""):
        raise VerificationError(f"{label}: {path} links out of the package ({linkname})")
    return target


class _Damaged(ValueError):
    """The data is not what its format says (a bad header, a short member)."""


def _is_damage(err: Exception) -> bool:
    """A damaged or truncated member, as each decompressor says it; an I/O error is not."""
    if isinstance(err, (_Damaged, tarfile.TarError, EOFError, lzma.LZMAError, zlib.error)):
        return True
    return type(err).__name__ in ("ZstdError", "BadGzipFile")


# --- the .deb, by position --------------------------------------------------------------------


class _Source:
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
def _open(deb: Path | BinaryIO) -> Iterator[_Source]:
    if isinstance(deb, Path):
        with open(deb, "rb", buffering=0) as f:
            yield _Source(cast(BinaryIO, f), str(deb))
    else:
        yield _Source(deb, str(getattr(deb, "name", "the .deb")))


def _data_member(source: _Source) -> tuple[str, int, int]:
    """The data member's name, offset and size, from the ar headers (other members are not read)."""
    if source.pread(0, 8) != b"!<arch>\n":
        raise VerificationError(f"{source.label} is not a Debian package (no ar archive header)")
    pos = 8
    while True:
        head = source.pread(pos, 60)
        if not head:
            raise VerificationError(f"{source.label} has no data.tar member")
        try:
            if len(head) < 60 or head[58:60] != b"`\n":
                raise ValueError("a bad member header")
            name, size = head[:16].decode("ascii").rstrip().rstrip("/"), int(head[48:58])
        except ValueError as err:  # UnicodeDecodeError included
            raise VerificationError(f"{source.label} is not a Debian package ({err} at byte {pos})") from err
        if name.startswith("data.tar"):
            return name, pos + 60, size
        pos += 60 + size + (size & 1)


class _Member:
    """The data member as a file read straight through (for gzip, zstd and plain tar)."""

    def __init__(self, source: _Source, start: int, size: int) -> None:
        self.source, self.pos, self.end = source, start, start + size

    def read(self, n: int = -1) -> bytes:
        n = self.end - self.pos if n < 0 else min(n, self.end - self.pos)
        data = self.source.pread(self.pos, n) if n > 0 else b""
        if len(data) < n:
            raise _Damaged(f"the member is cut short at byte {self.pos + len(data)}")
        self.pos += len(data)
        return data


@contextmanager
def _data_tar(
    source: _Source, name: str, start: int, size: int, workers: int
) -> Iterator[tuple[tarfile.TarFile, IO[bytes]]]:
    """The data member's tar, and the stream it is read from (to drain for the format's checks).

    Whatever the compression, decoding runs on threads of its own, beside the
    reader that parses the tar and writes files out.
    """
    if name.endswith(".xz"):
        decoded = _Decoded(source, _xz_units(source, start, size), _decode_xz, workers if source.seekable else 1)
    else:
        opener = _STREAMS.get(name.removeprefix("data.tar"))
        if opener is None:
            raise VerificationError(f"{source.label}: {name} is compressed in a way dpkg does not write")
        decoded = _Decoded(source, iter([_Unit(b"", start, size, 0)]), _streamed(opener), 1)
    stream = cast(IO[bytes], decoded)
    with decoded, tarfile.open(fileobj=stream, mode="r:") as tar:
        yield tar, stream


Decode = Callable[["_Source", "_Unit", Callable[[bytes], None]], None]
"""Turns a unit into its output, handing it over piece by piece (at most ``CHUNK`` bytes each)."""


def _streamed(opener: Callable[[IO[bytes]], IO[bytes]]) -> Decode:
    """A decoder for a member compressed as one stream: read through ``opener``'s file object."""

    def decode(source: _Source, unit: _Unit, emit: Callable[[bytes], None]) -> None:
        stream = opener(cast(IO[bytes], _Member(source, unit.offset, unit.length)))
        while data := stream.read(CHUNK):
            emit(data)

    return decode


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
_STREAMS: dict[str, Callable[[IO[bytes]], IO[bytes]]] = {
    "": lambda raw: raw,
    ".gz": lambda raw: cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb")),
    ".bz2": lambda raw: cast(IO[bytes], bz2.BZ2File(raw, mode="rb")),
    ".zst": _zstd_reader,
}


# --- xz, by blocks (the .xz file format, https://tukaani.org/xz/xz-file-format.txt) -----------

_XZ_MAGIC = b"\xfd7zXZ\x00"


@dataclass(frozen=True)
class _Unit:
    """A piece of an .xz stream that one decoder turns into a run of the tar stream.

    The decoder is fed ``prefix``, the source's bytes ``[offset, offset+length)``,
    then ``suffix``. A block is made a stream of its own: the stream header
    and its block header before, an index of that one block and a footer after.
    """

    prefix: bytes
    offset: int
    length: int
    start: int
    """Where its output begins in the tar stream."""
    size: int | None = None
    """How much it outputs, where the block header says so (then a reader seeking past it skips its decoding)."""
    suffix: bytes = b""
    whole: bool = True
    """The stream ends within the unit (else it goes on, and liblzma never sees its index)."""


def _xz_units(source: _Source, start: int, size: int) -> Iterator[_Unit]:
    """The member's .xz stream as units, a block each where every block header records its sizes.

    Read lazily, as the decoders ask for the next unit: a download that is
    still arriving is mapped as it comes. liblzma checks each block; the
    stream's own index is checked here against the blocks, at the end.
    """
    end = start + size
    header = source.pread(start, 12)
    if len(header) < 12 or header[:6] != _XZ_MAGIC or zlib.crc32(header[6:8]) != int.from_bytes(header[8:], "little"):
        raise _Damaged("not an xz stream")
    check = _check_size(header[7])
    pos = start + 12
    records: list[tuple[int, int]] = []
    out = 0  # where the next unit's output begins
    while True:
        first = source.pread(pos, 1)
        if not first:
            raise _Damaged("the xz stream is cut short")
        if first == b"\0":  # the index
            break
        block_header = first + source.pread(pos + 1, first[0] * 4 + 3)
        compressed, uncompressed = _block_sizes(block_header)
        if compressed is None or uncompressed is None or not source.seekable:
            body = pos + len(block_header)
            if not records:  # the whole stream as one unit, its index and footer included
                yield _Unit(header + block_header, body, end - body, out)
            else:
                yield from _rest(source, header + block_header, body, out, records, end)
            return
        unpadded = len(block_header) + compressed + check
        total = (len(block_header) + compressed + 3) // 4 * 4 + check
        if pos + total > end:
            raise _Damaged("an xz block runs past the end of the member")
        records.append((unpadded, uncompressed))
        index = _index([(unpadded, uncompressed)])
        yield _Unit(header + block_header, pos + len(block_header), total - len(block_header), out, uncompressed,
                    index + _footer(index, header[6:8]))  # fmt: skip
        pos += total
        out += uncompressed
    index = _index(records)
    tail = index + _footer(index, header[6:8])
    if source.pread(pos + 1, len(tail) - 1) != tail[1:]:  # its first byte, the index indicator, is read
        raise _Damaged("the xz index or footer does not match its blocks")
    for at in range(pos + len(tail), end, CHUNK):  # stream padding; a second stream, dpkg-deb would not read
        if source.pread(at, min(CHUNK, end - at)).strip(b"\0"):
            raise _Damaged("data after the end of the xz stream")


def _rest(
    source: _Source, prefix: bytes, body: int, out: int, records: list[tuple[int, int]], end: int
) -> Iterator[_Unit]:
    """Blocks without sizes after blocks with them (no encoder we know writes this), as one unit.

    Such a block header does not say where its block ends, so liblzma gets
    the rest behind the stream header, up to where the footer says the index
    starts, and checks each block; the index is checked here as far as it can
    be: its CRC, and its records of the blocks before.
    """
    footer = source.pread(end - 12, 12)
    index_at = end - 12 - (int.from_bytes(footer[4:8], "little") + 1) * 4
    if len(footer) < 12 or footer[10:] != b"YZ" or index_at <= body:
        raise _Damaged("the xz footer is damaged")
    yield _Unit(prefix, body, index_at - body, out, whole=False)
    index = source.pread(index_at, end - 12 - index_at)
    known = b"".join(_encode(u) + _encode(n) for u, n in records)
    count, at = _varint(index, 1)
    if (
        zlib.crc32(index[:-4]) != int.from_bytes(index[-4:], "little")
        or count <= len(records)
        or index[at : at + len(known)] != known
    ):
        raise _Damaged("the xz index does not match its blocks")


def _decode_xz(source: _Source, unit: _Unit, emit: Callable[[bytes], None]) -> None:
    decoder = lzma.LZMADecompressor(lzma.FORMAT_XZ)

    def feed(data: bytes) -> None:
        if decoder.eof:
            if data.strip(b"\0"):
                raise _Damaged("data after the end of the xz stream")
            return
        out = decoder.decompress(data, CHUNK)
        while True:
            if out:
                emit(out)
            if decoder.eof or decoder.needs_input:
                break
            out = decoder.decompress(b"", CHUNK)
        if decoder.eof and decoder.unused_data.strip(b"\0"):
            raise _Damaged("data after the end of the xz stream")

    feed(unit.prefix)
    for pos in range(unit.offset, unit.offset + unit.length, CHUNK):
        n = min(CHUNK, unit.offset + unit.length - pos)
        data = source.pread(pos, n)
        if len(data) < n:
            raise _Damaged("the xz stream is cut short")
        feed(data)
    feed(unit.suffix)
    if unit.whole and not decoder.eof:
        raise _Damaged("the xz stream is cut short")


def _check_size(flags: int) -> int:
    if flags & 0xF0:
        raise _Damaged("unknown xz stream flags")
    check = flags & 0x0F
    return 0 if check == 0 else 4 << ((check - 1) // 3)


def _block_sizes(block_header: bytes) -> tuple[int | None, int | None]:
    """The compressed and uncompressed sizes a block header records, where it records them."""
    if len(block_header) < 8 or zlib.crc32(block_header[:-4]) != int.from_bytes(block_header[-4:], "little"):
        raise _Damaged("an xz block header is damaged")
    flags, pos = block_header[1], 2
    compressed = uncompressed = None
    if flags & 0x40:
        compressed, pos = _varint(block_header, pos)
    if flags & 0x80:
        uncompressed, pos = _varint(block_header, pos)
    return compressed, uncompressed


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    for i in range(pos, min(pos + 9, len(data))):
        value |= (data[i] & 0x7F) << (7 * (i - pos))
        if not data[i] & 0x80:
            return value, i + 1
    raise _Damaged("an xz size field is damaged")


def _encode(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _index(records: list[tuple[int, int]]) -> bytes:
    body = b"\0" + _encode(len(records)) + b"".join(_encode(u) + _encode(n) for u, n in records)
    body += b"\0" * (-len(body) % 4)
    return body + zlib.crc32(body).to_bytes(4, "little")


def _footer(index: bytes, flags: bytes) -> bytes:
    body = (len(index) // 4 - 1).to_bytes(4, "little") + flags
    return zlib.crc32(body).to_bytes(4, "little") + body + b"YZ"


# --- units decoded on threads, read in order -------------------------------------------------


class _Cancelled(Exception):
    """The reader skipped past the unit being decoded, or is gone."""


class _Run:
    """One unit's output, in order: pieces in memory, or ``(offset, length)`` ranges of its spill file."""

    def __init__(self, unit: _Unit | None) -> None:
        self.unit = unit
        self.pieces: collections.deque[bytes | tuple[int, int]] = collections.deque()
        self.in_memory = 0
        self.spill: IO[bytes] | None = None
        self.spilled = 0
        self.done = False
        self.cancelled = False
        self.error: Exception | None = None

    def ends_by(self, pos: int) -> bool:
        """Does all of its output lie before ``pos``?"""
        return self.unit is not None and self.unit.size is not None and self.unit.start + self.unit.size <= pos

    def close(self) -> None:
        if self.spill is not None:
            self.spill.close()


class _Decoded:
    """The tar stream, decoded from the units by ``workers`` threads, read in order and skipped by ``seek``.

    Up to ``workers + 1`` units are in hand at once. The unit being read (the
    head) is decoded at most ``AHEAD`` bytes ahead of its reader, in memory;
    the units after it are decoded into unlinked temporary files until it is
    their turn. So memory does not grow with the block size, and the other
    core has work while the reader writes files out (fsync, hashing).

    tarfile's ``r:`` mode seeks over the data of members nobody asked for. A
    unit that lies wholly behind such a seek is not decoded at all, or no
    further: about a fifth of qemu-user's blocks, the ends of blocks whose
    last member is not wanted. A unit's error is raised where its data would
    have been read.
    """

    def __init__(self, source: _Source, units: Iterator[_Unit], decode: Decode, workers: int) -> None:
        self.source = source
        self.units = units
        self.decode = decode
        self.workers = max(1, workers)
        self.runs: collections.deque[_Run] = collections.deque()
        self.pos = 0  # the reader's place in the tar stream
        self.skip_to = 0  # units that end by here need no decoding
        self.taking = 0  # threads taking the next unit
        self.mapped = False  # every unit has been taken
        self.stop = False
        self.cond = threading.Condition()
        self.next_lock = threading.Lock()  # units are taken and queued in their order
        self.threads = [threading.Thread(target=self._work, daemon=True) for _ in range(self.workers)]
        self.alive = self.workers

    def __enter__(self) -> _Decoded:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self.cond:
            self.stop = True
            self.cond.notify_all()
        for thread in self.threads:
            thread.join()
        for run in self.runs:
            run.close()

    def tell(self) -> int:
        return self.pos

    def seekable(self) -> bool:
        return True

    def seek(self, target: int, whence: int = 0) -> int:
        """Forward only (tarfile's ``r:`` mode skips over member data, never back)."""
        assert whence == 0 and target >= self.pos, "the tar stream is read forward only"
        with self.cond:
            while self.pos < target:
                for run in self.runs:  # decoding what will be skipped is wasted on the other core
                    if run.ends_by(target) and not run.cancelled:
                        run.cancelled = True
                        self.cond.notify_all()
                if not self._head(target):
                    break
                run = self.runs[0]
                if run.ends_by(target):
                    assert run.unit is not None and run.unit.size is not None
                    self._drop()
                    self.pos = run.unit.start + run.unit.size
                elif run.pieces:
                    self.pos += self._skip(run, target - self.pos)
                elif run.error is not None:
                    raise run.error
                elif run.done:
                    self._drop()
                else:
                    self._wait()
        return self.pos

    def read(self, n: int = -1) -> bytes:
        """``n`` bytes, fewer only at the end (tarfile's ``r:`` mode takes a short read for the end of data)."""
        parts: list[bytes] = []
        with self.cond:
            while n != 0 and self._head(self.pos):
                run = self.runs[0]
                if run.pieces:
                    data = self._take(run, n)
                    self.pos += len(data)
                    n -= len(data) if n > 0 else 0
                    parts.append(data)
                elif run.error is not None:
                    raise run.error
                elif run.done:
                    self._drop()
                else:
                    self._wait()
        return b"".join(parts)

    def _head(self, pos: int) -> bool:
        """Wait for a unit to read from; False at the end of the stream. ``pos``: where the reader is going."""
        self.skip_to = pos
        while not self.runs:
            if self.mapped and not self.taking:
                return False
            self._wait()
        return True

    def _wait(self) -> None:
        """Wait for the decoders; they never all stop while the reader could want more, except by a bug."""
        if not self.alive:
            raise RuntimeError("the decoding threads stopped before the end of the data")
        self.cond.wait()

    def _drop(self) -> None:
        self.runs.popleft().close()
        self.cond.notify_all()

    def _skip(self, run: _Run, n: int) -> int:
        """Pass over up to ``n`` bytes of the run's first piece without reading it."""
        piece = run.pieces.popleft()
        length = len(piece) if isinstance(piece, bytes) else piece[1]
        if n < length:
            run.pieces.appendleft(piece[n:] if isinstance(piece, bytes) else (piece[0] + n, length - n))
        if isinstance(piece, bytes):
            run.in_memory -= min(n, length)
            self.cond.notify_all()
        return min(n, length)

    def _take(self, run: _Run, n: int) -> bytes:
        piece = run.pieces.popleft()
        if isinstance(piece, bytes):
            if 0 <= n < len(piece):
                run.pieces.appendleft(piece[n:])
                piece = piece[:n]
            run.in_memory -= len(piece)
            self.cond.notify_all()
            return piece
        assert run.spill is not None
        offset, length = piece
        data = os.pread(run.spill.fileno(), length if n < 0 else min(n, length), offset)
        if len(data) < length:
            run.pieces.appendleft((offset + len(data), length - len(data)))
        return data

    def _work(self) -> None:
        try:
            self._take_units()
        finally:
            with self.cond:
                self.alive -= 1
                self.cond.notify_all()

    def _take_units(self) -> None:
        while True:
            with self.cond:
                self.cond.wait_for(lambda: self.stop or self.mapped or len(self.runs) + self.taking <= self.workers)
                if self.stop or self.mapped:
                    return
                self.taking += 1
            with self.next_lock:
                run = _Run(None)
                try:
                    run.unit = next(self.units, None)
                except Exception as err:  # a damaged map is raised where its data would have been read
                    run.error = err
                with self.cond:
                    self.taking -= 1
                    if run.unit is None:
                        self.mapped = True
                    if run.unit is not None or run.error is not None:
                        self.runs.append(run)
                    run.cancelled = run.ends_by(self.skip_to)
                    self.cond.notify_all()
            if run.unit is None:
                return
            try:
                if not run.cancelled:
                    self.decode(self.source, run.unit, functools.partial(self._emit, run))
            except _Cancelled:
                if self.stop:
                    return
            except Exception as err:
                with self.cond:
                    run.error = err
                    self.cond.notify_all()
                return
            with self.cond:
                run.done = True
                self.cond.notify_all()

    def _is_head(self, run: _Run) -> bool:
        return bool(self.runs) and run is self.runs[0]

    def _emit(self, run: _Run, data: bytes) -> None:
        with self.cond:
            # The head waits for its reader (its output would only be spilled and read back);
            # the others spill, so that a second core has work while the reader catches up.
            while not (self.stop or run.cancelled) and self._is_head(run) and run.in_memory >= AHEAD:
                self.cond.wait()
            if self.stop or run.cancelled:
                raise _Cancelled
            if self._is_head(run):
                run.pieces.append(data)
                run.in_memory += len(data)
            else:
                if run.spill is None:
                    run.spill = tempfile.TemporaryFile()  # noqa: SIM115  # closed once read, or on exit
                os.pwrite(run.spill.fileno(), data, run.spilled)
                last = run.pieces[-1] if run.pieces else None
                if isinstance(last, tuple) and sum(last) == run.spilled:
                    run.pieces[-1] = (last[0], last[1] + len(data))
                else:
                    run.pieces.append((run.spilled, len(data)))
                run.spilled += len(data)
            self.cond.notify_all()
