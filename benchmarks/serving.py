"""What the download benchmarks share: an archive served on 127.0.0.1, and a child process measured.

``serve`` runs the stdlib's threaded HTTP server at a port the kernel picks,
optionally paced like a mirror. ``measure`` runs a command as a child of a bare
``python -S`` (Linux carries the forking process's RSS high-water mark into the
child's ru_maxrss across exec, so this process, which holds requests, werkzeug
and python-debian, must not be the parent) and returns its wall seconds, exit
code, peak RSS and CPU seconds, its own waited-for children included.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parents[1]
PIECE = 256 * 1024
MEASURER = """
import json, os, subprocess, sys, time
argv = json.loads(sys.argv[1])
start = time.perf_counter()
proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
cpu = usage.ru_utime + usage.ru_stime
print(json.dumps([time.perf_counter() - start, os.waitstatus_to_exitcode(status), usage.ru_maxrss, cpu]))
"""


class Measured(NamedTuple):
    seconds: float
    code: int
    rss_kib: int
    cpu: float


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    rate = 0.0  # bytes per second; 0: as fast as loopback goes

    def log_message(self, format: str, *args: object) -> None:  # the stdlib's name
        pass

    def copyfile(self, source: Any, outputfile: Any) -> None:
        if not self.rate:
            super().copyfile(source, outputfile)
            return
        start, sent = time.monotonic(), 0
        while block := source.read(PIECE):
            outputfile.write(block)
            sent += len(block)
            time.sleep(max(0.0, start + sent / self.rate - time.monotonic()))


@contextmanager
def serve(root: Path, rate: float = 0.0) -> Iterator[str]:
    """``root`` over HTTP on 127.0.0.1 at a port the kernel picks; ``rate``: a mirror's bytes per second."""
    handler = functools.partial(type("Handler", (_QuietHandler,), {"rate": rate}), directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def measure(argv: list[str]) -> Measured:
    """One child process, measured (see the module's notes)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-S", "-c", MEASURER, json.dumps(argv)], env=env, check=True, capture_output=True, text=True
    ).stdout
    elapsed, code, maxrss, cpu = json.loads(out)
    return Measured(float(elapsed), int(code), int(maxrss), float(cpu))
