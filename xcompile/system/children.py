"""The runner's children, each tracked from its start, so that a stop (Ctrl-C,
SIGTERM, SIGHUP) reaches it as it should.

A stop (``stop_all``) stops the children at once, and starts no more, except
two kinds, which the thread that starts them names:

- ``finishing``: a step that a cut would leave half-made in the engine. The
  classic builder's daemon goes on with the step in hand after its `docker
  build` client is gone, and commits an image that no one tags or removes; a
  proof's container outlives its client. Such a step goes on after a stop,
  and may start its next programs, for ``FINISH_WITHIN`` seconds; then what
  still runs is stopped, each after its ``on_stop`` (what makes it end at once).
- ``undoing``: programs that remove what the run made. They start even
  during a stop, and a stop never cuts them: each has a timeout of its own.
"""

from __future__ import annotations

import contextlib
import os
import select
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

from xcompile.errors import Stopped

FINISH_WITHIN = 5.0
"""Seconds a finishing step has after a stop. Its builds are a COPY and a LABEL
(about a second), its proof as long; CI gives a cancelled job about 10 s
between SIGTERM and SIGKILL, and the undoing comes after."""
GRACE = 10
"""Seconds a stopped program has to end after SIGTERM before it gets SIGKILL."""

Kind = Literal["cut", "finishing", "undoing"]
Popen = subprocess.Popen[bytes]


@dataclass(frozen=True)
class _Child:
    kind: Kind
    on_stop: Callable[[], None] | None


class Children:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: dict[Popen, _Child] = {}
        self._thread = threading.local()
        self.stopping = False
        """Set by the first stop: from then on only finishing and undoing programs start."""
        self._finished = False
        """Set once FINISH_WITHIN has passed after the stop: finishing steps start nothing more."""
        self._steps = 0
        """Finishing steps under way."""

    @contextlib.contextmanager
    def finishing(self) -> Iterator[None]:
        """The programs this thread starts here make one step that a stop lets end
        (see above); a step begun after the stop starts nothing."""
        with self._lock:
            begun = not self.stopping
            self._steps += begun
        try:
            with self._kind("finishing" if begun else "cut"):
                yield
        finally:
            with self._lock:
                self._steps -= begun

    @contextlib.contextmanager
    def undoing(self) -> Iterator[None]:
        """The programs this thread starts here remove what the run made (see above)."""
        with self._kind("undoing"):
            yield

    @contextlib.contextmanager
    def _kind(self, kind: Kind) -> Iterator[None]:
        before = getattr(self._thread, "kind", "cut")
        self._thread.kind = kind
        try:
            yield
        finally:
            self._thread.kind = before

    def start(self, what: str, popen: Callable[[], Popen], on_stop: Callable[[], None] | None) -> Popen:
        """``popen()``, tracked from its start; Stopped where a stop forbids it."""
        kind: Kind = getattr(self._thread, "kind", "cut")
        with self._lock:
            if self.stopping and not (kind == "undoing" or (kind == "finishing" and not self._finished)):
                raise Stopped(what)
            proc = popen()
            self._live[proc] = _Child(kind, on_stop)
        return proc

    def finish(self, proc: Popen) -> None:
        """Reap ``proc``; stop its whole group first if it still runs (a timeout, an exception)."""
        if proc.poll() is None:
            stop(proc)
            try:
                proc.wait(timeout=GRACE)
            except subprocess.TimeoutExpired:
                # e.g. `docker run`, which passes SIGTERM on to a container that ignores it
                stop(proc, signal.SIGKILL)
                proc.wait()
        with self._lock:
            self._live.pop(proc, None)

    def stop_all(self) -> None:
        """Stop every program still running, and start no more (but the kinds above):
        after Ctrl-C or SIGTERM/SIGHUP in the main thread."""
        with self._lock:
            first, self.stopping = not self.stopping, True
            cut = [(proc, child) for proc, child in self._live.items() if child.kind == "cut"]
            self._finished = self._finished or not self._steps
        self._cut(cut)
        if first and not self._finished:
            timer = threading.Timer(FINISH_WITHIN, self._end_finishing)
            timer.daemon = True
            timer.start()

    def _end_finishing(self) -> None:
        with self._lock:
            self._finished = True
            late = [(proc, child) for proc, child in self._live.items() if child.kind == "finishing"]
        self._cut(late)

    def _cut(self, children: list[tuple[Popen, _Child]]) -> None:
        for proc, child in children:
            if proc.poll() is not None:
                continue
            if child.on_stop is not None:
                with self.undoing(), contextlib.suppress(Exception):
                    child.on_stop()  # e.g. remove the container that its `docker run` would wait on
            stop(proc)


def stop(proc: Popen, sig: signal.Signals = signal.SIGTERM) -> None:
    """Signal ``proc``'s process group (its children too), or only it where it shares ours."""
    try:
        group = os.getpgid(proc.pid)
    except ProcessLookupError:
        return
    with contextlib.suppress(ProcessLookupError):
        if group == os.getpgrp():  # a `terminal` program shares our group: stop just it
            proc.send_signal(sig)
        else:
            os.killpg(group, sig)


class TooMuchOutput(Exception):
    """A child printed more than its caller reads."""


def communicate(proc: Popen, data: bytes | None, timeout: float | None, limit: int) -> tuple[bytes, bytes]:
    """``proc.communicate(data, timeout)``, but stdout and stderr are each read up to
    ``limit`` bytes: past it, TooMuchOutput, having held no more (communicate holds
    all: a credential helper that printed 800 MB took the process to 2.3 GB)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    outputs = [pipe for pipe in (proc.stdout, proc.stderr) if pipe is not None]
    read = {pipe.fileno(): bytearray() for pipe in outputs}
    out_fd, err_fd = (pipe.fileno() if pipe is not None else -1 for pipe in (proc.stdout, proc.stderr))
    pending = memoryview(data or b"")
    try:
        with selectors.DefaultSelector() as selector:
            for output in outputs:
                selector.register(output, selectors.EVENT_READ)
            if proc.stdin is not None:
                if pending:
                    selector.register(proc.stdin, selectors.EVENT_WRITE)
                else:
                    proc.stdin.close()
            while selector.get_map():
                for key, _ in selector.select(_left(proc, deadline, timeout)):
                    if key.fd not in read:
                        pending = _feed(proc, selector, pending)
                        continue
                    chunk = os.read(key.fd, 64 << 10)
                    if not chunk:
                        selector.unregister(key.fileobj)
                    read[key.fd] += chunk
                    if len(read[key.fd]) > limit:
                        raise TooMuchOutput
        proc.wait(_left(proc, deadline, timeout))
        return bytes(read.get(out_fd, b"")), bytes(read.get(err_fd, b""))
    finally:
        for pipe in (proc.stdin, *outputs):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


def _left(proc: Popen, deadline: float | None, timeout: float | None) -> float | None:
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise subprocess.TimeoutExpired(proc.args, timeout or 0)
    return left


def _feed(proc: Popen, selector: selectors.BaseSelector, pending: memoryview) -> memoryview:
    """Write what a pipe that is ready takes at once (PIPE_BUF never blocks); close it when all is written."""
    assert proc.stdin is not None
    try:
        pending = pending[os.write(proc.stdin.fileno(), pending[: select.PIPE_BUF]) :]
    except BrokenPipeError:
        pending = pending[len(pending) :]  # it reads no more of its input: what it printed still counts
    if not pending:
        selector.unregister(proc.stdin)
        proc.stdin.close()
    return pending
