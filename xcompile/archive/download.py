"""Streaming HTTP downloads for the cache: retried, resumed, hashed, never left half-written.

urllib3's ``Retry`` (mounted on the session) covers refused connections,
timeouts before the headers and 5xx answers. It does not cover a body that is
cut off mid-stream (urllib3 raises ``IncompleteRead``, or nothing at all when
there is no Content-Length), so ``transfer.Transfer`` resumes with ``Range: bytes=N-``
itself, or restarts when the server ignores ranges. Bytes are kept as served:
a Content-Encoding is never decoded, and a download without a size from the
signed chain stops at MAX_BINARY, so a mirror cannot fill the disk.

What a mirror can make us wait is bounded: a ``Retry-After`` beyond 60 s (or
the timeout) ends the retries at once, and one download as a whole, retries
and resumes included, gets twice the timeout plus its size at 100 kB/s.
Messages show URLs through :func:`xcompile.urls.redact`: no credentials, no
query.

Every file is written to a ``*.part`` path made by :func:`cached`, which
removes it on every way out (errors and Ctrl-C included) and puts it in place
only when the caller's block ends cleanly, once its size and SHA256 were checked.

Errors (all in the :mod:`xcompile.errors` hierarchy):

- :class:`DownloadError` (exit 3): the file could not be fetched — HTTP 404,
  5xx that outlasted the retries, a timeout, a refused connection, a body cut
  off more often than we resume.
- :class:`VerificationError` (exit 1): the bytes arrived but are not the ones
  the signed chain promises (size or SHA256), or the chain itself is not
  trustworthy. Never retried: a mirror that serves wrong bytes once will do it
  again, and a retry loop would hide tampering.
- :class:`CacheError` (exit 3): the cache cannot be written (disk full,
  permissions, read-only file system).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError
from urllib3.util.retry import Retry

from xcompile.archive.transfer import MAX_RETRY_AFTER, Expected, ProgressCallback, ProgressEvent, Transfer
from xcompile.errors import CacheError
from xcompile.system import files
from xcompile.urls import redact

__all__ = [
    "MAX_BINARY",
    "MAX_RETRY_AFTER",
    "ProgressCallback",
    "ProgressEvent",
    "cache_writes",
    "cached",
    "download_file",
    "fetch_bytes",
    "make_session",
]

# The answer to a 5xx, 429 or dropped connection; 429 is here because a
# mirror that rate-limits says when to come back (Retry-After).
RETRY_STATUSES = (429, 500, 502, 503, 504)


class _CappedRetry(Retry):
    """urllib3's Retry, except that a Retry-After beyond the cap ends the retries at once.

    Raising MaxRetryError here makes urllib3 (with ``raise_on_status=False``)
    hand back that response, so the error names the status and the wait asked for.
    """

    cap: float = MAX_RETRY_AFTER

    def new(self, **kw: Any) -> _CappedRetry:
        retry = super().new(**kw)
        assert isinstance(retry, _CappedRetry)
        retry.cap = self.cap
        return retry

    def increment(  # type: ignore[override]  # the same parameters, spelled through **kw
        self, method: str | None = None, url: str | None = None, **kw: Any
    ) -> Retry:
        response = kw.get("response")
        if response is not None and self.respect_retry_after_header:
            wait = self.get_retry_after(response)
            if wait is not None and wait > self.cap:
                raise MaxRetryError(kw.get("_pool"), url or "", None)  # type: ignore[arg-type]
        return super().increment(method, url, **kw)


def make_session(*, retries: int = 3, backoff: float = 0.25, max_wait: float = MAX_RETRY_AFTER) -> requests.Session:
    """A session that retries connection errors and 5xx answers on GET.

    ``raise_on_status=False`` hands us the last 5xx response once the retries
    are spent, so the error can name the status instead of urllib3's
    "Max retries exceeded". No wait between tries exceeds ``max_wait``.
    """
    retry = _CappedRetry(
        total=retries,
        backoff_factor=backoff,
        backoff_max=max_wait,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET"}),
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    retry.cap = max_wait
    adapter = HTTPAdapter(max_retries=retry)
    session = requests.Session()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


@contextlib.contextmanager
def cache_writes(path: Path) -> Iterator[None]:
    """Turn an OSError from writing ``path`` into a one-line :class:`CacheError`.

    requests' exceptions are OSError subclasses too; they pass through untouched.
    """
    try:
        yield
    except requests.RequestException:
        raise
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            msg = f"no space left on the device writing {path}"
            raise CacheError(msg, hint="free some space or choose another cache directory") from err
        msg = f"cannot write {path}: {err.strerror or err}"
        raise CacheError(
            msg,
            hint="check the cache directory's permissions, or choose another",
        ) from err


MAX_BINARY = 256 << 20
"""The largest file a download without a size from a signed index may be (a static qemu is 5-30 MB)."""


@contextlib.contextmanager
def cached(final: Path, *, mode: int = 0o644) -> Iterator[Path]:
    """A fresh private part file beside ``final`` for the caller to fill and check;
    put in place whole (files.atomic: fsynced, renamed, folder fsynced) only on a
    clean exit, and removed on every other way out (errors and Ctrl-C included).
    Two xcompile processes may fill one cache at once: each renames a whole file."""
    stack = contextlib.ExitStack()
    with cache_writes(final.parent):
        final.parent.mkdir(parents=True, exist_ok=True)
        part = stack.enter_context(files.atomic(final, mode=mode))
    try:
        yield part
    except BaseException:
        stack.__exit__(*sys.exc_info())  # removes the part file
        raise
    with cache_writes(final):
        stack.close()  # fsync, rename, fsync the folder


def download_file(
    session: requests.Session,
    url: str,
    part: Path,
    expected: Expected,
    *,
    timeout: float,
    progress: ProgressCallback | None = None,
) -> str:
    """Stream ``url`` into ``part`` (truncating it), check it, fsync it; return its SHA256 hex.
    Without a size the signed chain gives, at most MAX_BINARY bytes."""
    if expected.size is None and expected.limit is None:
        expected = dataclasses.replace(expected, limit=MAX_BINARY)
    with cache_writes(part), open(part, "wb") as out:
        digest = Transfer(session, url, out, expected, timeout=timeout, progress=progress).run()
        # The cache is keyed by content hash and never re-hashed on a hit, so
        # a file must be on disk before its name claims it is complete.
        out.flush()
        os.fsync(out.fileno())
    return digest


def fetch_bytes(session: requests.Session, url: str, *, timeout: float, limit: int = 64 << 20) -> bytes:
    """A small file (Release, InRelease, a signature) in memory, at most ``limit`` bytes."""
    buf = io.BytesIO()
    Transfer(session, url, buf, Expected(redact(url).rsplit("/", 1)[-1], limit=limit), timeout=timeout).run()
    return buf.getvalue()
