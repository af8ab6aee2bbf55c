"""Atomic file writes: temp file in the same folder, fsync, rename.

A reader sees the old file or the new one, never half of one, and a failed
or interrupted write leaves no temp file behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
from pathlib import Path


def write_atomic(target: Path, text: str, *, new_mode: int = 0o644) -> None:
    """Replace ``target`` with ``text``, keeping an existing file's mode and owner.

    Raises OSError; callers turn it into an error that says what to do.
    """
    folder = target.parent
    try:
        old: os.stat_result | None = target.stat()
    except FileNotFoundError:
        old = None
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as tmp:
            tmp.write(text)
            tmp.flush()
            os.fchmod(tmp.fileno(), stat.S_IMODE(old.st_mode) if old else new_mode)
            if old is not None:
                # Keep a user's file theirs when root (sudo) edits it.
                with contextlib.suppress(PermissionError):
                    os.fchown(tmp.fileno(), old.st_uid, old.st_gid)
            os.fsync(tmp.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
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
