"""Files written whole or not at all, and hashed.

``atomic`` is the one way xcompile replaces a file: a private temp file in the
same folder (mkstemp: a new name, never a planted link), fsynced, given its
mode, renamed over the target, and the folder fsynced. A reader sees the old
file or the new one, never half of one; a failed or interrupted write leaves
no temp file behind.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic(target: Path, *, mode: int = 0o644, keep_mode: bool = False) -> Iterator[Path]:
    """A fresh private path beside ``target`` for the caller to fill; put in place on a clean exit.

    ``keep_mode`` keeps an existing target's mode and owner (a user's file that
    root edits stays theirs); else the file gets ``mode``. Raises OSError;
    callers turn it into an error that says what to do.
    """
    folder = target.parent
    found = _stat(target)
    if found is not None and not stat.S_ISREG(found.st_mode):
        # /dev/null, a FIFO or a folder is never replaced by a regular file.
        raise OSError(errno.EEXIST, "it exists and is not a regular file", str(target))
    old = found if keep_mode else None
    fd, raw = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".part")
    os.close(fd)
    part = Path(raw)
    try:
        yield part
        with open(part, "rb+") as written:
            os.fchmod(written.fileno(), stat.S_IMODE(old.st_mode) if old else mode)
            if old is not None:
                with contextlib.suppress(PermissionError):
                    os.fchown(written.fileno(), old.st_uid, old.st_gid)
            os.fsync(written.fileno())
        os.replace(part, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
        raise
    sync_folder(folder)


def write_atomic(target: Path, data: str | bytes, *, mode: int = 0o644, keep_mode: bool = True) -> None:
    """Replace ``target`` with ``data`` (see ``atomic``), keeping an existing file's mode and owner."""
    with atomic(target, mode=mode, keep_mode=keep_mode) as part:
        part.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)


def sync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: some file systems refuse)."""
    with contextlib.suppress(OSError):
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_or_none(path: Path | None) -> str | None:
    return sha256_of(path) if path is not None and path.is_file() else None


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except FileNotFoundError:
        return None
