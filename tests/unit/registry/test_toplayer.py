"""The top layer as `xcompile verify` reads it (xcompile/registry/toplayer.py): real tar and gzip streams, well made
and hostile, fed in chunks as a registry sends them. Each hostile one is refused in one line."""

from __future__ import annotations

import gzip
import hashlib
import io
import struct
import tarfile
import zlib
from collections.abc import Iterator

import pytest

from xcompile.archive.download import MAX_BINARY
from xcompile.errors import LayerRefused
from xcompile.registry import toplayer


def chunks(data: bytes, size: int = 65536) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tar(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as made:
        for info, data in members:
            made.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return raw.getvalue()


def entry(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, link: str = "") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, 0o755
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data


QEMU = b"\x7fELF\x02\x01\x01" + bytes(300)
GOOD = tar(
    entry("usr", kind=tarfile.DIRTYPE), entry("usr/bin", kind=tarfile.DIRTYPE), entry("usr/bin/qemu-arm-static", QEMU)
)


def read(blob: bytes, size: int | None = None) -> toplayer.Contents:
    return toplayer.read(chunks(blob), digest(blob), len(blob) if size is None else size, "the top layer")


@pytest.mark.parametrize("packed", ["gzip", "plain"])
def test_a_layer_as_xcompile_makes_it_gives_its_files_folders_and_diff_id(packed: str) -> None:
    blob = gzip.compress(GOOD) if packed == "gzip" else GOOD
    found = read(blob)
    assert found.folders == ("/usr", "/usr/bin")
    [qemu] = found.files
    assert (qemu.path, qemu.size, qemu.sha256) == (
        "/usr/bin/qemu-arm-static",
        len(QEMU),
        hashlib.sha256(QEMU).hexdigest(),
    )
    assert qemu.head == QEMU[:64]
    assert found.diff_id == digest(GOOD)


@pytest.mark.parametrize(
    ("member", "said"),
    [
        (
            entry("usr/bin/../../etc/passwd", b"root"),
            "holds a path that climbs out of the image's root, 'usr/bin/../../etc/passwd'",
        ),
        (entry("/usr/bin/qemu-arm-static", QEMU), "holds an absolute path, '/usr/bin/qemu-arm-static'"),
        (
            entry("usr/bin/qemu-arm-static", kind=tarfile.SYMTYPE, link="/bin/sh"),
            "holds a link, 'usr/bin/qemu-arm-static' -> '/bin/sh'",
        ),
        (
            entry("usr/bin/qemu-arm-static", kind=tarfile.LNKTYPE, link="etc/shadow"),
            "holds a link, 'usr/bin/qemu-arm-static' -> 'etc/shadow'",
        ),
        (entry("usr/bin/tty", kind=tarfile.CHRTYPE), "holds a device or special file, 'usr/bin/tty'"),
        (entry("usr/bin/pipe", kind=tarfile.FIFOTYPE), "holds a device or special file, 'usr/bin/pipe'"),
    ],
)
def test_an_entry_xcompile_never_writes_is_refused_in_one_line(
    member: tuple[tarfile.TarInfo, bytes], said: str
) -> None:
    with pytest.raises(LayerRefused) as refused:
        read(gzip.compress(tar(member)))
    assert str(refused.value) == f"the top layer {said}"


def test_a_layer_larger_than_a_qemu_layer_may_be_is_refused_by_its_descriptor_unread() -> None:
    def never() -> Iterator[bytes]:
        raise AssertionError("read")
        yield b""

    with pytest.raises(LayerRefused) as refused:
        toplayer.read(never(), "sha256:" + "0" * 64, toplayer.MAX_LAYER + 1, "the top layer")
    assert str(refused.value) == "the top layer is 67.1 MB, above the 64 MiB a qemu layer may be; not read"


def test_a_registry_that_sends_more_than_the_layer_or_other_bytes_is_refused() -> None:
    blob = gzip.compress(GOOD)
    with pytest.raises(LayerRefused, match=r"^the top layer: the registry sends more than the layer's 10 bytes$"):
        read(blob, size=10)
    with pytest.raises(LayerRefused, match=r"^the top layer: the registry's blob is not the layer \("):
        toplayer.read(chunks(blob), digest(b"other"), len(blob), "the top layer")


def gzip_bomb(head: bytes, zeros: bytes, times: int) -> bytes:
    """A whole gzip member of ``head`` then ``zeros`` ``times`` over, its deflate stream cut by full flushes:
    each run of zeros is then the same bytes, compressed once (compressing 800 MiB takes seconds)."""
    squeeze = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = squeeze.compress(head) + squeeze.flush(zlib.Z_FULL_FLUSH)
    run = squeeze.compress(zeros) + squeeze.flush(zlib.Z_FULL_FLUSH)
    assert squeeze.compress(zeros) + squeeze.flush(zlib.Z_FULL_FLUSH) == run
    crc = zlib.crc32(head)
    for _ in range(times):
        crc = zlib.crc32(zeros, crc)
    size = len(head) + len(zeros) * times
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03"
    return header + first + run * times + squeeze.flush() + struct.pack("<II", crc, size & 0xFFFFFFFF)


def test_a_gzip_bomb_is_cut_at_the_unpacked_cap() -> None:
    """A well-formed tar followed by 800 MiB of zeros, gzipped to under 1 MB: cut at MAX_UNPACKED."""
    bomb = gzip_bomb(GOOD, bytes(8 << 20), 100)
    assert len(bomb) < 1 << 20
    with pytest.raises(LayerRefused) as refused:
        read(bomb)
    assert (
        str(refused.value)
        == f"the top layer unpacks to more than {toplayer.MAX_UNPACKED >> 20} MiB (a gzip bomb?); not read on"
    )


def test_a_file_larger_than_a_qemu_may_be_is_refused_by_its_header() -> None:
    info = tarfile.TarInfo("usr/bin/qemu-arm-static")
    info.size = MAX_BINARY + 1
    header = info.tobuf(tarfile.PAX_FORMAT)  # the header alone: the refusal comes before any data
    with pytest.raises(LayerRefused, match=r"holds /usr/bin/qemu-arm-static of 268.4 MB, above the 256 MiB"):
        read(gzip.compress(header + bytes(1024)))


def test_too_many_entries_and_what_is_no_tar_are_refused() -> None:
    many = tar(*(entry(f"d{i}", kind=tarfile.DIRTYPE) for i in range(toplayer.MAX_ENTRIES + 1)))
    with pytest.raises(LayerRefused, match=r"^the top layer holds more than 64 entries$"):
        read(gzip.compress(many))
    with pytest.raises(LayerRefused, match=r"^the top layer is not a tar stream xcompile can read"):
        read(gzip.compress(b"not a tar" * 100))
    with pytest.raises(LayerRefused, match=r"^the top layer: its gzip stream is cut short$"):
        read(gzip.compress(GOOD)[:-30])
