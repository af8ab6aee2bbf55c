"""One HTTP download as archive/download.py runs it: the GET, its answer judged, the body kept as served.

A body cut off mid-stream (urllib3 raises ``IncompleteRead``, or nothing at
all when there is no Content-Length) is resumed with ``Range: bytes=N-``, or
restarted where the server ignores ranges, at most MAX_BODY_RESUMES times. A
Content-Encoding is never decoded: what is hashed and counted is what was
served. The whole download, retries and resumes included, gets twice the
timeout plus its size at SLOWEST_RATE; a watchdog closes a response that
trickles past that. A write that fails is the cache's problem, not a cut
body: it goes to the caller (download.cache_writes), never retried.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import BinaryIO

import requests
from urllib3 import exceptions as urllib3_errors

from xcompile.errors import DownloadError, VerificationError
from xcompile.urls import redact, scrub

CHUNK_SIZE = 256 * 1024
PROGRESS_STEP = 1 << 20
# A cut-off body is resumed (or restarted) this many times before giving up;
# Retry's own counter does not see these, they happen after the headers.
MAX_BODY_RESUMES = 3
# The longest Retry-After we wait out (and never longer than the timeout): a
# mirror that asks for more gets its answer reported instead.
MAX_RETRY_AFTER = 60.0
# The whole of one download (retries, waits and resumes included) gets twice
# the timeout plus its size at this rate: a mirror trickling a byte just
# inside each read timeout cannot hold a run forever.
SLOWEST_RATE = 100_000  # bytes per second


@dataclass(frozen=True)
class ProgressEvent:
    """One step of a download, for the CLI to render.

    Sent once with ``done_bytes == 0`` at the start, then at most about once
    per MiB, then once with ``finished=True``. ``done_bytes`` may go back to 0
    when a server that ignores ``Range`` makes us restart.
    """

    what: str
    done_bytes: int
    total_bytes: int | None
    finished: bool = False


ProgressCallback = Callable[[ProgressEvent], None]


@dataclass(frozen=True)
class Expected:
    """What a download should be, and who says so: ``size`` and ``sha256`` as the signed
    chain gives them (``source``: where), else at most ``limit`` bytes; ``what``: its name
    in progress and messages."""

    what: str
    size: int | None = None
    sha256: str | None = None
    limit: int | None = None
    source: str = "the index"


class Transfer:
    """One download: GET, then resume or restart on a cut-off body, within one deadline.

    The bytes are the server's as sent: a Content-Encoding is never decoded
    (we ask for identity), so what is hashed and counted is what was served.
    """

    def __init__(
        self,
        session: requests.Session,
        url: str,
        out: BinaryIO,
        expected: Expected,
        *,
        timeout: float,
        progress: ProgressCallback | None = None,
    ) -> None:
        self.session, self.url, self.out, self.timeout, self.progress = session, url, out, timeout, progress
        size = expected.size
        self.size, self.what, self.source, self.sha256 = size, expected.what, expected.source, expected.sha256
        self.shown = redact(url)
        self.cap = size if size is not None else expected.limit
        self.budget = 2 * timeout + (size or 0) / SLOWEST_RATE
        self.deadline = time.monotonic() + self.budget
        self.hasher = hashlib.sha256()
        self.done = 0
        self.total: int | None = size
        self.last_report = 0

    def run(self) -> str:
        """Download it all; returns its SHA256 hex, checked against the one expected where given."""
        sha256 = self.sha256
        self.report()
        resumes = 0
        while True:
            cut = self._attempt()
            if cut is None:
                break
            self.check_deadline()
            resumes += 1
            if resumes > MAX_BODY_RESUMES:
                raise DownloadError(
                    self.shown,
                    f"the body was cut off {resumes} times, gave up (last time: {cut})",
                    hint="the connection to the mirror is unstable; retry later or choose another mirror",
                )
        self.report(finished=True)
        digest = self.hasher.hexdigest()
        if sha256 is not None and digest != sha256.lower():
            msg = f"{self.shown}: SHA256 mismatch: got {digest}, {self.source} says {sha256.lower()}"
            raise VerificationError(
                msg,
                hint="the download is corrupt or tampered with; nothing was kept",
            )
        return digest

    def report(self, finished: bool = False) -> None:
        self.last_report = self.done
        if self.progress is not None:
            self.progress(ProgressEvent(self.what, self.done, self.total, finished))

    def check_deadline(self) -> None:
        if time.monotonic() > self.deadline:
            raise DownloadError(
                self.shown,
                f"not done within {self.budget:.0f} s (the whole download is bounded by its timeout and size)",
                hint="the mirror is too slow; retry later or choose another mirror",
            )

    def _attempt(self) -> str | None:
        """One GET (ranged after a cut); the reason it was cut off, or None when the body is whole."""
        headers = {"Accept-Encoding": "identity"}
        if self.done:
            headers["Range"] = f"bytes={self.done}-"
        resp = _get(self.session, self.url, headers, self.timeout)
        # A read blocks until its chunk is full, however slowly it fills: the
        # watchdog closes the response at the deadline, which ends the read.
        watchdog = threading.Timer(max(0.0, self.deadline - time.monotonic()), resp.close)
        watchdog.daemon = True
        watchdog.start()
        try:
            with resp:
                self._start(resp)
                return self._body(resp)
        finally:
            watchdog.cancel()

    def _start(self, resp: requests.Response) -> None:
        """Judge the answer's status and length before any byte is kept."""
        if resp.status_code == 206:
            if not self.done or _range_start(resp) != self.done:
                raise DownloadError(self.shown, "the server answered with a range we did not ask for")
        elif resp.status_code == 200:
            if self.done:  # the server ignored our Range: start over
                self.out.seek(0)
                self.out.truncate()
                self.hasher = hashlib.sha256()
                self.done = 0
                self.report()
        else:
            raise DownloadError(
                self.shown, _status_text(resp), status=resp.status_code, hint=_status_hint(resp.status_code)
            )
        length = _content_length(resp)
        if self.total is None and length is not None:
            self.total = self.done + length
        if self.size is not None and length is not None and self.done + length != self.size:
            msg = f"{self.shown}: the server announces {self.done + length} bytes, {self.source} says {self.size}"
            raise VerificationError(
                msg,
                hint="the mirror is inconsistent or tampered with; try another mirror",
            )

    def _body(self, resp: requests.Response) -> str | None:
        chunks = resp.raw.stream(CHUNK_SIZE, decode_content=False)
        while True:
            try:
                chunk = next(chunks, None)
            except (requests.exceptions.RequestException, urllib3_errors.HTTPError, OSError) as err:
                self.check_deadline()  # the watchdog closed it mid-read: say so
                return _reason(err, self.timeout)
            except Exception:
                self.check_deadline()
                raise
            if chunk is None:
                break
            # Outside the try: a write that fails (disk full, a file size limit) is the
            # cache's problem, for cache_writes to say, not a cut body to resume.
            self._keep(chunk)
        self.check_deadline()  # a closed response may also just end early
        if self.size is not None and self.done < self.size:
            # A server that closes early without Content-Length raises nothing.
            return f"the body ended after {self.done} of {self.size} bytes"
        return None

    def _keep(self, chunk: bytes) -> None:
        if self.cap is not None and self.done + len(chunk) > self.cap:
            said = f", {self.source} says {self.size}" if self.size is not None else ""
            msg = f"{self.shown}: more than {self.cap} bytes{said}"
            raise VerificationError(
                msg,
                hint="the mirror is inconsistent or tampered with; try another mirror",
            )
        self.out.write(chunk)
        self.hasher.update(chunk)
        self.done += len(chunk)
        if self.done - self.last_report >= PROGRESS_STEP:
            self.report()


def _get(session: requests.Session, url: str, headers: dict[str, str], timeout: float) -> requests.Response:
    shown = redact(url)
    try:
        return session.get(url, headers=headers, stream=True, timeout=(timeout, timeout), allow_redirects=True)
    except requests.exceptions.RetryError as err:
        raise DownloadError(shown, f"gave up after retries: {_reason(err, timeout)}") from err
    except requests.exceptions.Timeout as err:
        raise DownloadError(
            shown,
            f"no answer within {timeout:g} s (timed out)",
            hint="the mirror is slow or unreachable; retry or choose another",
        ) from err
    except requests.exceptions.ConnectionError as err:
        reason = _reason(err, timeout)
        if "timed out" in reason:
            # A read timeout that outlasted Retry surfaces as a ConnectionError.
            hint = "the mirror is slow or unreachable; retry or choose another"
            raise DownloadError(shown, reason, hint=hint) from err
        raise DownloadError(shown, f"cannot connect: {reason}", hint="check the mirror URL and the network") from err
    except requests.RequestException as err:
        raise DownloadError(shown, _reason(err, timeout)) from err


def _range_start(resp: requests.Response) -> int | None:
    # "bytes 100-199/200"
    value = resp.headers.get("Content-Range", "")
    unit, _, rest = value.partition(" ")
    start, _, _ = rest.partition("-")
    if unit != "bytes" or not start.isdigit():
        return None
    return int(start)


def _content_length(resp: requests.Response) -> int | None:
    value = resp.headers.get("Content-Length", "")
    return int(value) if value.isdigit() else None


def _status_text(resp: requests.Response) -> str:
    try:
        text = f"HTTP {resp.status_code} {HTTPStatus(resp.status_code).phrase}"
    except ValueError:
        text = f"HTTP {resp.status_code}"
    retries = getattr(resp.raw, "retries", None)
    tries = 1 + len(retries.history) if retries is not None else 1
    text += f" (after {tries} attempts)" if tries > 1 else ""
    wait = resp.headers.get("Retry-After", "").strip()
    if wait and (not wait.isdigit() or int(wait) > MAX_RETRY_AFTER):
        text += f"; it asks to wait {wait}{' s' if wait.isdigit() else ''}, longer than xcompile waits"
    return text


def _status_hint(status: int) -> str | None:
    if status == 404:
        return "check the mirror URL and the suite name"
    if status >= 500:
        return "the mirror is failing; retry later or choose another mirror"
    return None


def _reason(err: BaseException, timeout: float) -> str:
    """The useful clause of a requests/urllib3 error, whose str() nests several reprs."""
    text = scrub(str(err))
    if "timed out" in text.lower():
        return f"no data for {timeout:g} s (read timed out)"
    incomplete = re.search(r"IncompleteRead\((\d+) bytes read, (\d+) more expected\)", text)
    if incomplete:
        return (
            f"connection closed after {incomplete.group(1)} bytes of the response, {incomplete.group(2)} more expected"
        )
    os_error = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if os_error:
        return os_error.group(1).strip()
    return text.splitlines()[0][:300] if text else type(err).__name__
