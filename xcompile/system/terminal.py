"""What reaches the terminal: log lines on stderr, results on stdout, and text from outside (a
registry's labels and digests, an archive's fields, a program's output) with its control characters
escaped. Only cli.py uses it: the library modules say things through a callback, never print.

A label of ``\\x1b[2J\\x1b]0;PWNED\\x07`` printed as it came clears the screen and retitles the
window (issue 27); a lone surrogate (JSON's ``"\\ud800"``) cannot even be encoded, and ended the
run in a traceback. Escaped, each reads as the bytes it is: ``\\x1b[2J``.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from xcompile.archive import download

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
"""C0, DEL, C1 (the terminal acts on each), and the surrogates no encoding can write."""


def printable(text: str, keep: str = "") -> str:
    """``text`` with every control character but those in ``keep`` written as ``\\xNN`` (``\\uNNNN``)."""
    return _CONTROL.sub(lambda found: found[0] if found[0] in keep else _escaped(found[0]), text)


def _escaped(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


class Escaping(logging.Formatter):
    """A library's log line (python-debian warns of a Depends it cannot parse, quoting it) as printable text."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record), keep="\n\t")


def show(text: str, file: TextIO, *, start: str = "", end: str = "\n") -> None:
    """Every line xcompile prints: text from outside (a label, an archive's field, a program's output)
    with its control characters escaped, so that it cannot clear the screen or retitle the window."""
    print(start + printable(text, keep="\n\t"), end=end, file=file, flush=True)


class Console:
    """Log lines go to stderr (like `set -x`), results to stdout, so that
    `path=$(xcompile qemu)` captures just the path."""

    def __init__(self, log: TextIO | None = None, out: TextIO | None = None) -> None:
        self.log = log or sys.stderr
        self.out = out or sys.stdout
        self._lock = threading.Lock()
        self._quarters: dict[str, int] = {}

    def echo(self, line: str, label: str | None = None) -> None:
        # Concurrent images each prefix their lines, so output stays readable.
        text = f"[{label}] {line}" if label else line
        with self._lock:
            show(text, self.log)

    def say(self, line: str, label: str | None = None) -> None:
        self.echo(line if label else f"xcompile: {line}", label)

    def result(self, text: str) -> None:
        with self._lock:
            show(text, self.out)

    def progress(self, event: download.ProgressEvent) -> None:
        """A byte bar on a terminal; off one, a line at start, each quarter, and the end."""
        total = event.total_bytes
        done_mb = event.done_bytes / 1e6
        size = f"{done_mb:.1f}/{total / 1e6:.1f} MB" if total else f"{done_mb:.1f} MB"
        with self._lock:
            if self.log.isatty():
                filled = int(30 * event.done_bytes / total) if total else 0
                bar = "#" * filled + "." * (30 - filled)
                end = "\n" if event.finished else ""
                show(f"{event.what} [{bar}] {size}", self.log, start="\r", end=end)
                return
            quarter = int(4 * event.done_bytes / total) if total else 0
            if event.finished or event.done_bytes == 0 or quarter > self._quarters.get(event.what, 0):
                self._quarters[event.what] = quarter
                state = "done" if event.finished else "downloading"
                show(f"{event.what}: {state} {size}", self.log)
