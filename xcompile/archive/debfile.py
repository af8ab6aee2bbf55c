"""Files out of a .deb in one pass over its data member: streamed, nothing held in memory beyond a few chunks.

A .deb is an ar archive whose ``data.tar.*`` member holds the files.
``DebFile.data.get_file`` indexes the whole tarball first (about 6 s for
qemu-user-static), and for ``.zst`` it reads the whole member into memory and
pipes it through an ``unzstd`` program, which a 71 MB qemu-user makes into some
450 MB. So the data member is streamed through ``tarfile`` once, however many
files are wanted (eight emulators out of qemu-user's 465 MB data
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

import posixpath
import tarfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO, Literal, cast

from xcompile.archive.decoded import Decoded, streamed
from xcompile.archive.members import CHUNK, STREAMS, Source, data_member, is_damage, open_deb
from xcompile.archive.xzblocks import Unit, decode_xz, xz_units
from xcompile.errors import VerificationError

# Two decoders: each holds its dictionary (8 MiB for dpkg's default preset),
# and two keep a whole run under 64 MiB of memory; the machines this runs
# on have two cores and more would only share them.
WORKERS = 2


@dataclass(frozen=True)
class Found:
    """What a package holds at a path: the file (written out), a link to another path, or nothing."""

    kind: Literal["file", "link", "missing"]
    target: str = ""
    """For a link: the path it points to inside the package, normalized (``usr/bin/qemu-arm``)."""


PathWriter = Callable[[str, IO[bytes], int], None]


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
    with open_deb(deb) as source:
        name, start, size = data_member(source)
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
            if not is_damage(err):
                raise
            msg = f"{source.label}: cannot read its {name}: {err}"
            raise VerificationError(msg, hint="the .deb is damaged") from err
    return {path: found.get(path, Found("missing")) for path in wanted}


def _take(tar: tarfile.TarFile, info: tarfile.TarInfo, path: str, write: PathWriter, label: str) -> Found:
    if info.issym():
        return Found("link", _link_target(path, info.linkname, label))
    if info.islnk():  # a hard link names another member by its archive path
        return Found("link", _link_target("", "/" + info.linkname.removeprefix("./"), label))
    if not info.isreg():
        msg = f"{label}: {path} is neither a file nor a link"
        raise VerificationError(msg)
    stream = tar.extractfile(info)
    assert stream is not None  # isreg() members always have data
    write(path, stream, info.size)
    return Found("file")


def _link_target(path: str, linkname: str, label: str) -> str:
    joined = linkname.lstrip("/") if linkname.startswith("/") else posixpath.join(posixpath.dirname(path), linkname)
    target = posixpath.normpath(joined)
    if target.startswith("../") or target in ("..", ".", ""):
        msg = f"{label}: {path} links out of the package ({linkname})"
        raise VerificationError(msg)
    return target


@contextmanager
def _data_tar(
    source: Source, name: str, start: int, size: int, workers: int
) -> Iterator[tuple[tarfile.TarFile, IO[bytes]]]:
    """The data member's tar, and the stream it is read from (to drain for the format's checks).

    Whatever the compression, decoding runs on threads of its own, beside the
    reader that parses the tar and writes files out.
    """
    if name.endswith(".xz"):
        decoded = Decoded(source, xz_units(source, start, size), decode_xz, workers if source.seekable else 1)
    else:
        opener = STREAMS.get(name.removeprefix("data.tar"))
        if opener is None:
            msg = f"{source.label}: {name} is compressed in a way dpkg does not write"
            raise VerificationError(msg)
        decoded = Decoded(source, iter([Unit(b"", start, size, 0)]), streamed(opener), 1)
    stream = cast(IO[bytes], decoded)
    with decoded, tarfile.open(fileobj=stream, mode="r:") as tar:
        yield tar, stream
