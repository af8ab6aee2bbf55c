"""xz by blocks (the .xz file format, https://tukaani.org/xz/xz-file-format.txt).

dpkg-deb compresses with threads, so its .xz has a block per three
dictionaries (24 MiB for the default preset), and every block header records
its sizes. Each block is wrapped as a single-block .xz stream of its own (so
liblzma still checks its CRC and sizes) and can be decoded on its own thread
(archive/decoded.py); other layouts are one unit, decoded as the whole stream.
"""

from __future__ import annotations

import lzma
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from xcompile.archive.members import CHUNK, Damaged, Source

_XZ_MAGIC = b"\xfd7zXZ\x00"


@dataclass(frozen=True)
class Unit:
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


def xz_units(source: Source, start: int, size: int) -> Iterator[Unit]:
    """The member's .xz stream as units, a block each where every block header records its sizes.

    Read lazily, as the decoders ask for the next unit: a download that is
    still arriving is mapped as it comes. liblzma checks each block; the
    stream's own index is checked here against the blocks, at the end.
    """
    end = start + size
    header = source.pread(start, 12)
    if len(header) < 12 or header[:6] != _XZ_MAGIC or zlib.crc32(header[6:8]) != int.from_bytes(header[8:], "little"):
        msg = "not an xz stream"
        raise Damaged(msg)
    check = _check_size(header[7])
    pos = start + 12
    records: list[tuple[int, int]] = []
    out = 0  # where the next unit's output begins
    while True:
        first = source.pread(pos, 1)
        if not first:
            msg = "the xz stream is cut short"
            raise Damaged(msg)
        if first == b"\0":  # the index
            break
        block_header = first + source.pread(pos + 1, first[0] * 4 + 3)
        compressed, uncompressed = _block_sizes(block_header)
        if compressed is None or uncompressed is None or not source.seekable:
            body = pos + len(block_header)
            if not records:  # the whole stream as one unit, its index and footer included
                yield Unit(header + block_header, body, end - body, out)
            else:
                yield from _rest(source, header + block_header, body, out, records, end)
            return
        unpadded = len(block_header) + compressed + check
        total = (len(block_header) + compressed + 3) // 4 * 4 + check
        if pos + total > end:
            msg = "an xz block runs past the end of the member"
            raise Damaged(msg)
        records.append((unpadded, uncompressed))
        index = _index([(unpadded, uncompressed)])
        yield Unit(header + block_header, pos + len(block_header), total - len(block_header), out, uncompressed,
                    index + _footer(index, header[6:8]))  # fmt: skip
        pos += total
        out += uncompressed
    index = _index(records)
    tail = index + _footer(index, header[6:8])
    if source.pread(pos + 1, len(tail) - 1) != tail[1:]:  # its first byte, the index indicator, is read
        msg = "the xz index or footer does not match its blocks"
        raise Damaged(msg)
    for at in range(pos + len(tail), end, CHUNK):  # stream padding; a second stream, dpkg-deb would not read
        if source.pread(at, min(CHUNK, end - at)).strip(b"\0"):
            msg = "data after the end of the xz stream"
            raise Damaged(msg)


def _rest(
    source: Source, prefix: bytes, body: int, out: int, records: list[tuple[int, int]], end: int
) -> Iterator[Unit]:
    """Blocks without sizes after blocks with them (no encoder we know writes this), as one unit.

    Such a block header does not say where its block ends, so liblzma gets
    the rest behind the stream header, up to where the footer says the index
    starts, and checks each block; the index is checked here as far as it can
    be: its CRC, and its records of the blocks before.
    """
    footer = source.pread(end - 12, 12)
    index_at = end - 12 - (int.from_bytes(footer[4:8], "little") + 1) * 4
    if len(footer) < 12 or footer[10:] != b"YZ" or index_at <= body:
        msg = "the xz footer is damaged"
        raise Damaged(msg)
    yield Unit(prefix, body, index_at - body, out, whole=False)
    index = source.pread(index_at, end - 12 - index_at)
    known = b"".join(_encode(u) + _encode(n) for u, n in records)
    count, at = _varint(index, 1)
    if (
        zlib.crc32(index[:-4]) != int.from_bytes(index[-4:], "little")
        or count <= len(records)
        or index[at : at + len(known)] != known
    ):
        msg = "the xz index does not match its blocks"
        raise Damaged(msg)


def decode_xz(source: Source, unit: Unit, emit: Callable[[bytes], None]) -> None:
    decoder = lzma.LZMADecompressor(lzma.FORMAT_XZ)

    def feed(data: bytes) -> None:
        if decoder.eof:
            if data.strip(b"\0"):
                msg = "data after the end of the xz stream"
                raise Damaged(msg)
            return
        out = decoder.decompress(data, CHUNK)
        while True:
            if out:
                emit(out)
            if decoder.eof or decoder.needs_input:
                break
            out = decoder.decompress(b"", CHUNK)
        if decoder.eof and decoder.unused_data.strip(b"\0"):
            msg = "data after the end of the xz stream"
            raise Damaged(msg)

    feed(unit.prefix)
    for pos in range(unit.offset, unit.offset + unit.length, CHUNK):
        n = min(CHUNK, unit.offset + unit.length - pos)
        data = source.pread(pos, n)
        if len(data) < n:
            msg = "the xz stream is cut short"
            raise Damaged(msg)
        feed(data)
    feed(unit.suffix)
    if unit.whole and not decoder.eof:
        msg = "the xz stream is cut short"
        raise Damaged(msg)


def _check_size(flags: int) -> int:
    if flags & 0xF0:
        msg = "unknown xz stream flags"
        raise Damaged(msg)
    check = flags & 0x0F
    return 0 if check == 0 else 4 << ((check - 1) // 3)


def _block_sizes(block_header: bytes) -> tuple[int | None, int | None]:
    """The compressed and uncompressed sizes a block header records, where it records them."""
    if len(block_header) < 8 or zlib.crc32(block_header[:-4]) != int.from_bytes(block_header[-4:], "little"):
        msg = "an xz block header is damaged"
        raise Damaged(msg)
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
    msg = "an xz size field is damaged"
    raise Damaged(msg)


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
