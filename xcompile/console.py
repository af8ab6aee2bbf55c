"""The console cli.py prints through: log lines on stderr (like `set -x`), results on stdout, and
download progress; every line escaped as system/terminal.py escapes text from outside."""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING, TextIO

from xcompile.system.terminal import show

if TYPE_CHECKING:
    from xcompile.archive import download


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
