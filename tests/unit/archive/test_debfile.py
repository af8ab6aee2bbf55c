"""debfile.read_members on small .debs that dpkg-deb builds here: one pass, every byte of the data member read once.

No docker, no network: dpkg-deb (and xz, for the block layouts dpkg-deb only
writes for big packages) are all they need.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import itertools
import lzma
import os
import random
import shutil
import subprocess
import tarfile
import threading
import zlib
from pathlib import Path
from typing import IO, BinaryIO, cast

import pytest

from xcompile.archive import debfile
from xcompile.archive.debfile import Found
from xcompile.errors import VerificationError

BLOCK = 64 * 1024  # xz block size for the split layouts: several blocks per test package
# Incompressible, so that each binary spans xz blocks as qemu's do (14 MB in 24 MiB blocks).
ARM = random.Random(1).randbytes(300_000)
AARCH64 = random.Random(2).randbytes(200_000)
BIG = random.Random(3).randbytes(600_000)
WANTED = [
    "usr/bin/qemu-arm",
    "usr/bin/qemu-aarch64",
    "usr/bin/qemu-arm-static",
    "usr/bin/qemu-aarch64-static",
    "usr/libexec/qemu-binfmt/arm-binfmt-P",
    "usr/bin/qemu-mips64el",
]


def build(root: Path, out: Path, compression: str) -> Path:
    """A package with regular files, relative, absolute and hard links, and a link out of it."""
    tree = root / "tree"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        "Package: qemu-test\nVersion: 1.0\nArchitecture: amd64\nMaintainer: Test <t@example.org>\nDescription: test\n"
    )
    bin_ = tree / "usr" / "bin"
    bin_.mkdir(parents=True)
    (bin_ / "qemu-arm").write_bytes(ARM)
    (bin_ / "qemu-big").write_bytes(BIG)  # never asked for: skipped over
    (bin_ / "qemu-aarch64").write_bytes(AARCH64)
    (bin_ / "qemu-arm-static").symlink_to("qemu-arm")
    (bin_ / "qemu-aarch64-static").symlink_to("/usr/bin/qemu-aarch64")
    os.link(bin_ / "qemu-arm", bin_ / "qemu-armhf")
    (bin_ / "qemu-evil").symlink_to("../../../etc/passwd")
    (bin_ / "qemu-evil-hard").symlink_to("/../../etc/shadow")
    binfmt = tree / "usr" / "libexec" / "qemu-binfmt"
    binfmt.mkdir(parents=True)
    (binfmt / "arm-binfmt-P").symlink_to("../../bin/qemu-arm")
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", f"-Z{compression}", "-b", str(tree), str(out)],
        check=True,
        capture_output=True,
    )
    return out


def members(deb: Path) -> dict[str, tuple[int, int]]:
    """Each ar member's data offset and size."""
    data = deb.read_bytes()
    assert data[:8] == b"!<arch>\n"
    found, pos = {}, 8
    while pos < len(data):
        name, size = data[pos : pos + 16].decode().strip().rstrip("/"), int(data[pos + 48 : pos + 58])
        found[name] = (pos + 60, size)
        pos += 60 + size + (size & 1)
    return found


def with_data(deb: Path, out: Path, name: str, data: bytes) -> Path:
    """``deb`` with its data member replaced (an ar archive in dpkg-deb's member order)."""
    raw = deb.read_bytes()
    parts = [b"!<arch>\n"]
    for member, (start, size) in members(deb).items():
        body = data if member.startswith("data.tar") else raw[start : start + size]
        label = name if member.startswith("data.tar") else member
        parts.append(f"{label:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(body):<10}`\n".encode() + body)
        parts.append(b"\n" if len(body) % 2 else b"")
    out.write_bytes(b"".join(parts))
    return out


def tar_of(deb: Path) -> bytes:
    return subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], check=True, capture_output=True).stdout


def xz(data: bytes, *options: str) -> bytes:
    return subprocess.run(["xz", "-c", *options], input=data, check=True, capture_output=True).stdout


LAYOUTS = ["xz", "gzip", "zstd", "xz-split", "xz-blocks-without-sizes", "xz-mixed"]


@pytest.fixture(scope="module")
def made() -> dict[str, Path]:
    """Each layout's package, made once for the module: dpkg-deb and xz take most of a second a package."""
    return {}


@pytest.fixture(params=LAYOUTS)
def deb(
    request: pytest.FixtureRequest, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, made: dict[str, Path]
) -> Path:
    """The test package in each compression, and xz in each block layout the reader handles apart:
    the test's own copy of the one the module made."""
    layout: str = request.param
    if layout not in made:
        made[layout] = package(layout, tmp_path_factory.mktemp(layout))
    return Path(shutil.copyfile(made[layout], tmp_path / f"{layout}.deb"))


def package(layout: str, tmp_path: Path) -> Path:
    if not layout.startswith("xz-"):
        return build(tmp_path, tmp_path / f"{layout}.deb", layout)
    plain = build(tmp_path, tmp_path / "plain.deb", "xz")
    tar = tar_of(plain)
    if layout == "xz-split":  # as dpkg-deb writes big packages: blocks whose headers record their sizes
        data = xz(tar, "-T2", f"--block-size={BLOCK}")
    elif layout == "xz-blocks-without-sizes":  # single-threaded xz: several blocks, no sizes
        data = xz(tar, "-T1", f"--block-size={BLOCK}")
    else:
        data = mixed_xz(tar)
    assert lzma.decompress(data) == tar
    return with_data(plain, tmp_path / f"{layout}.deb", "data.tar.xz", data)


def mixed_xz(tar: bytes) -> bytes:
    """Blocks with sizes, then blocks without: one valid .xz stream that no encoder we know writes."""
    cut = 4 * BLOCK
    first, second = xz(tar[:cut], "-T2", f"--block-size={BLOCK}"), xz(tar[cut:], "-T1", f"--block-size={BLOCK}")
    assert first[:12] == second[:12]  # the same stream flags (CRC64)

    def blocks_and_records(stream: bytes) -> tuple[bytes, list[int]]:
        index_size = (int.from_bytes(stream[-8:-4], "little") + 1) * 4
        index = stream[-12 - index_size : -12]
        numbers, value, shift = [], 0, 0
        for byte in index[1:-4]:
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                numbers.append(value)
                value = shift = 0
        return stream[12 : -12 - index_size], numbers[1 : 1 + 2 * numbers[0]]

    blocks1, records1 = blocks_and_records(first)
    blocks2, records2 = blocks_and_records(second)
    records = records1 + records2

    def varint(value: int) -> bytes:
        out = bytearray()
        while value >= 0x80:
            out.append(value & 0x7F | 0x80)
            value >>= 7
        return bytes(out + bytes([value]))

    index = b"\0" + varint(len(records) // 2) + b"".join(varint(n) for n in records)
    index += b"\0" * (-len(index) % 4)
    index += zlib.crc32(index).to_bytes(4, "little")
    footer = (len(index) // 4 - 1).to_bytes(4, "little") + first[6:8]
    return first[:12] + blocks1 + blocks2 + index + zlib.crc32(footer).to_bytes(4, "little") + footer + b"YZ"


class Recorder:
    """A ``write`` that keeps what it is handed, by path."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def __call__(self, path: str, stream: IO[bytes], size: int) -> None:
        assert path not in self.files, f"{path} handed over twice"
        self.files[path] = stream.read()
        assert len(self.files[path]) == size


class Counting:
    """The .deb through a file object that records every read: ``(offset, length)``."""

    def __init__(self, path: Path, *, seekable: bool = True) -> None:
        self.f = open(path, "rb")  # noqa: SIM115  # closed by the test's finalizer
        self.name = str(path)
        self._seekable = seekable
        self.reads: list[tuple[int, int]] = []

    def seekable(self) -> bool:
        return self._seekable

    def seek(self, pos: int, whence: int = 0) -> int:
        assert self._seekable, "a forward-only source was asked to seek"
        return self.f.seek(pos, whence)

    def read(self, n: int = -1) -> bytes:
        pos = self.f.tell()
        data = self.f.read(n)
        self.reads.append((pos, len(data)))
        return data

    def read_of(self, start: int, size: int) -> list[tuple[int, int]]:
        """The reads that touched ``[start, start+size)``, clipped to it, in file order."""
        clipped = [(max(o, start), min(o + n, start + size)) for o, n in self.reads]
        return sorted((a, b - a) for a, b in clipped if a < b)


def counting(path: Path, request: pytest.FixtureRequest, *, seekable: bool = True) -> Counting:
    source = Counting(path, seekable=seekable)
    request.addfinalizer(source.f.close)
    return source


def data_member(deb: Path) -> tuple[int, int]:
    return next(where for name, where in members(deb).items() if name.startswith("data.tar"))


# --- what one pass finds ----------------------------------------------------------------------------


def test_one_pass_hands_over_files_and_reports_links_and_absences(deb: Path) -> None:
    got = Recorder()
    found = debfile.read_members(deb, WANTED, got)

    assert found == {
        "usr/bin/qemu-arm": Found("file"),
        "usr/bin/qemu-aarch64": Found("file"),
        "usr/bin/qemu-arm-static": Found("link", "usr/bin/qemu-arm"),
        "usr/bin/qemu-aarch64-static": Found("link", "usr/bin/qemu-aarch64"),  # absolute: from the package root
        "usr/libexec/qemu-binfmt/arm-binfmt-P": Found("link", "usr/bin/qemu-arm"),
        "usr/bin/qemu-mips64el": Found("missing"),
    }
    assert got.files == {"usr/bin/qemu-arm": ARM, "usr/bin/qemu-aarch64": AARCH64}


def test_a_hard_link_names_the_member_it_shares_data_with(deb: Path) -> None:
    """tar stores the second name of a file as a link to the first, whichever dpkg-deb put first."""
    got = Recorder()
    found = debfile.read_members(deb, ["usr/bin/qemu-arm", "usr/bin/qemu-armhf"], got)

    kinds = {path: f.kind for path, f in found.items()}
    assert sorted(kinds.values()) == ["file", "link"]
    (file,) = [p for p, k in kinds.items() if k == "file"]
    (link,) = [p for p, k in kinds.items() if k == "link"]
    assert found[link].target == file
    assert got.files == {file: ARM}


def test_one_path_alone(deb: Path) -> None:
    got: list[bytes] = []
    found = debfile.read_members(deb, ["usr/bin/qemu-aarch64"], lambda p, s, n: got.append(s.read()))
    assert found == {"usr/bin/qemu-aarch64": Found("file")}
    assert got == [AARCH64]
    link = "usr/bin/qemu-arm-static"
    assert debfile.read_members(deb, [link], lambda p, s, n: None) == {link: Found("link", "usr/bin/qemu-arm")}
    assert debfile.read_members(deb, ["usr/bin/nothing"], lambda p, s, n: None) == {"usr/bin/nothing": Found("missing")}


@pytest.mark.parametrize("path", ["usr/bin/qemu-evil", "usr/bin/qemu-evil-hard"])
def test_a_link_out_of_the_package_is_refused(deb: Path, path: str) -> None:
    with pytest.raises(VerificationError, match="links out of the package"):
        debfile.read_members(deb, ["usr/bin/qemu-arm", path], Recorder())


def test_a_file_object_that_cannot_seek_is_read_straight_through(deb: Path, request: pytest.FixtureRequest) -> None:
    source = counting(deb, request, seekable=False)
    got = Recorder()

    found = debfile.read_members(cast(BinaryIO, source), WANTED, got)

    assert found["usr/bin/qemu-arm"] == Found("file") and found["usr/bin/qemu-mips64el"] == Found("missing")
    assert got.files == {"usr/bin/qemu-arm": ARM, "usr/bin/qemu-aarch64": AARCH64}
    start, size = data_member(deb)
    assert source.read_of(start, size) == _contiguous(source.read_of(start, size))
    assert sum(n for _, n in source.read_of(start, size)) == size


# --- every byte once ---------------------------------------------------------------------------------


def _contiguous(reads: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """``reads`` if no two overlap (a byte read twice), else a list that tells."""
    for (a, n), (b, _) in itertools.pairwise(reads):
        if a + n > b:
            return [*reads, ("overlap", a, n, b)]  # type: ignore[list-item]
    return reads


def test_each_byte_of_the_data_member_is_read_once(deb: Path, request: pytest.FixtureRequest) -> None:
    """A path that is missing makes the pass read to the end, so the whole member must be covered, once."""
    source = counting(deb, request)

    debfile.read_members(cast(BinaryIO, source), WANTED, Recorder())

    start, size = data_member(deb)
    reads = source.read_of(start, size)
    assert reads == _contiguous(reads)
    covered = sum(n for _, n in reads)
    if deb.stem == "xz-split":  # blocks that hold only qemu-big's middle are skipped, not read
        assert BLOCK < size - covered < len(BIG)
    else:
        assert covered == size
    other = [(o, n) for o, n in source.reads if n and not start <= o < start + size]
    assert sum(n for _, n in other) == 8 + 60 * 3  # the ar headers, not the control member


@pytest.mark.parametrize("compression", ["gzip", "xz"])
def test_the_pass_stops_when_everything_asked_for_is_met(
    tmp_path: Path, request: pytest.FixtureRequest, compression: str
) -> None:
    """After the one file asked for, 16 MiB that are mostly never read: the pass stops there (and its decoder
    runs at most AHEAD bytes past the reader), and xz's blocks behind a skipped file are not read anyway."""
    plain = build(tmp_path, tmp_path / "plain.deb", "gzip")
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as out:  # in this order, which dpkg-deb does not promise
        for name, data in (("./usr/bin/qemu-arm", ARM), ("./usr/bin/qemu-big", random.Random(4).randbytes(16 << 20))):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
    if compression == "gzip":
        member, data = "data.tar.gz", gzip.compress(tar.getvalue(), compresslevel=1)
    else:
        member, data = "data.tar.xz", xz(tar.getvalue(), "-0", "-T2", f"--block-size={BLOCK}")
    deb = with_data(plain, tmp_path / "ordered.deb", member, data)
    source = counting(deb, request)
    got = Recorder()

    assert debfile.read_members(cast(BinaryIO, source), ["usr/bin/qemu-arm"], got) == {
        "usr/bin/qemu-arm": Found("file")
    }

    assert got.files == {"usr/bin/qemu-arm": ARM}
    start, size = data_member(deb)
    assert sum(n for _, n in source.read_of(start, size)) < size // 2


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_the_split_decoder_gives_the_same_bytes_with_any_number_of_threads(tmp_path: Path, workers: int) -> None:
    plain = build(tmp_path, tmp_path / "plain.deb", "xz")
    deb = with_data(plain, tmp_path / "split.deb", "data.tar.xz", xz(tar_of(plain), "-T2", f"--block-size={BLOCK}"))
    got = Recorder()
    debfile.read_members(deb, ["usr/bin/qemu-aarch64", "usr/bin/qemu-arm", "usr/bin/none"], got, workers=workers)
    assert got.files == {"usr/bin/qemu-arm": ARM, "usr/bin/qemu-aarch64": AARCH64}


# --- damage -----------------------------------------------------------------------------------------


def flipped(deb: Path, out: Path, at: float) -> Path:
    """``deb`` with one byte of its data member changed, ``at`` of the way in."""
    start, size = data_member(deb)
    data = bytearray(deb.read_bytes())
    data[start + int(size * at)] ^= 0x55
    out.write_bytes(bytes(data))
    return out


@pytest.mark.parametrize("at", [0.3, 0.97])
def test_damaged_data_is_refused(deb: Path, tmp_path: Path, at: float) -> None:
    bad = flipped(deb, tmp_path / "bad.deb", at)
    with pytest.raises(VerificationError, match="is damaged"):
        debfile.read_members(bad, WANTED, Recorder())  # qemu-mips64el is missing: the pass reads to the end


def test_a_truncated_package_is_refused(deb: Path, tmp_path: Path) -> None:
    start, size = data_member(deb)
    cut = tmp_path / "cut.deb"
    cut.write_bytes(deb.read_bytes()[: start + size // 2])
    with pytest.raises(VerificationError, match="is damaged"):
        debfile.read_members(cut, WANTED, Recorder())


def test_a_damaged_xz_index_is_refused(tmp_path: Path) -> None:
    """liblzma checks each block it decodes; the stream's index is checked against the blocks apart."""
    plain = build(tmp_path, tmp_path / "plain.deb", "xz")
    data = bytearray(xz(tar_of(plain), "-T2", f"--block-size={BLOCK}"))
    data[-14] ^= 0x01  # the index's CRC32
    deb = with_data(plain, tmp_path / "bad-index.deb", "data.tar.xz", bytes(data))
    with pytest.raises(VerificationError, match="index"):
        debfile.read_members(deb, ["usr/bin/none"], Recorder())


def test_not_a_debian_package(tmp_path: Path) -> None:
    path = tmp_path / "x.deb"
    path.write_bytes(b"PK\x03\x04 not an ar archive")
    with pytest.raises(VerificationError, match="not a Debian package"):
        debfile.read_members(path, ["usr/bin/qemu-arm"], Recorder())


def test_what_write_raises_goes_through_and_the_decoders_stop(deb: Path) -> None:
    def refuse(path: str, stream: IO[bytes], size: int) -> None:
        raise RuntimeError(f"no room for {path}")

    with pytest.raises(RuntimeError, match="no room for usr/bin/qemu-arm"):
        debfile.read_members(deb, ["usr/bin/qemu-arm"], refuse)


def test_a_write_that_reads_only_part_of_its_file_does_not_upset_the_pass(deb: Path) -> None:
    digests: dict[str, str] = {}

    def peek(path: str, stream: IO[bytes], size: int) -> None:
        digests[path] = hashlib.sha256(stream.read(1000)).hexdigest()

    found = debfile.read_members(deb, ["usr/bin/qemu-arm", "usr/bin/qemu-aarch64"], peek)
    assert set(found.values()) == {Found("file")}
    assert digests["usr/bin/qemu-aarch64"] == hashlib.sha256(AARCH64[:1000]).hexdigest()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_decoder_thread_that_dies_is_an_error_not_a_hang(deb: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only a bug kills a decoding thread (they keep every Exception for the reader); the reader must not wait."""

    def dies(*args: object) -> None:
        raise SystemExit("a bug")

    monkeypatch.setattr(debfile, "decode_xz", dies)
    monkeypatch.setattr(debfile, "streamed", lambda opener: dies)
    outcome: list[BaseException] = []

    def call() -> None:
        try:
            debfile.read_members(deb, WANTED, Recorder())
        except BaseException as err:
            outcome.append(err)

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "the reader hangs"
    assert isinstance(outcome[0], RuntimeError) and "decoding threads stopped" in str(outcome[0])
