"""The tar stream of a .deb's data member, decoded on threads of its own and read in order.

Up to ``workers + 1`` units (xzblocks.Unit) are in hand at once: the one
being read is decoded at most ``AHEAD`` bytes ahead of its reader, in memory,
and the ones after it into unlinked temporary files, so memory does not grow
with the block size while the other core has work.
"""

from __future__ import annotations

import collections
import functools
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import IO, cast

from xcompile.archive.members import CHUNK, Member, Source
from xcompile.archive.xzblocks import Unit

# How far the block being read may be decoded ahead of its reader, in memory.
AHEAD = 8 * CHUNK
Decode = Callable[[Source, Unit, Callable[[bytes], None]], None]
"""Turns a unit into its output, handing it over piece by piece (at most ``CHUNK`` bytes each)."""


def streamed(opener: Callable[[IO[bytes]], IO[bytes]]) -> Decode:
    """A decoder for a member compressed as one stream: read through ``opener``'s file object."""

    def decode(source: Source, unit: Unit, emit: Callable[[bytes], None]) -> None:
        stream = opener(cast(IO[bytes], Member(source, unit.offset, unit.length)))
        while data := stream.read(CHUNK):
            emit(data)

    return decode


class Cancelled(Exception):
    """The reader skipped past the unit being decoded, or is gone."""


class Run:
    """One unit's output, in order: pieces in memory, or ``(offset, length)`` ranges of its spill file."""

    def __init__(self, unit: Unit | None) -> None:
        self.unit = unit
        self.pieces: collections.deque[bytes | tuple[int, int]] = collections.deque()
        self.in_memory = 0
        self.spill: IO[bytes] | None = None
        self.spilled = 0
        self.done = False
        self.cancelled = False
        self.error: Exception | None = None

    def skip(self, n: int) -> tuple[int, bool]:
        """Pass over up to ``n`` bytes of the first piece: how many, and whether memory was freed."""
        piece = self.pieces.popleft()
        length = len(piece) if isinstance(piece, bytes) else piece[1]
        if n < length:
            self.pieces.appendleft(piece[n:] if isinstance(piece, bytes) else (piece[0] + n, length - n))
        if isinstance(piece, bytes):
            self.in_memory -= min(n, length)
        return min(n, length), isinstance(piece, bytes)

    def take(self, n: int) -> tuple[bytes, bool]:
        """Up to ``n`` bytes (all of the first piece where ``n`` < 0), and whether memory was freed."""
        piece = self.pieces.popleft()
        if isinstance(piece, bytes):
            if 0 <= n < len(piece):
                self.pieces.appendleft(piece[n:])
                piece = piece[:n]
            self.in_memory -= len(piece)
            return piece, True
        assert self.spill is not None
        offset, length = piece
        data = os.pread(self.spill.fileno(), length if n < 0 else min(n, length), offset)
        if len(data) < length:
            self.pieces.appendleft((offset + len(data), length - len(data)))
        return data, False

    def ends_by(self, pos: int) -> bool:
        """Does all of its output lie before ``pos``?"""
        return self.unit is not None and self.unit.size is not None and self.unit.start + self.unit.size <= pos

    def close(self) -> None:
        if self.spill is not None:
            self.spill.close()


class Decoded:
    """The tar stream, decoded from the units by ``workers`` threads, read in order and skipped by ``seek``
    (how the units are held: the module's docstring).

    tarfile's ``r:`` mode seeks over the data of members nobody asked for. A
    unit that lies wholly behind such a seek is not decoded at all, or no
    further: about a fifth of qemu-user's blocks, the ends of blocks whose
    last member is not wanted. A unit's error is raised where its data would
    have been read.
    """

    def __init__(self, source: Source, units: Iterator[Unit], decode: Decode, workers: int) -> None:
        self.source = source
        self.units = units
        self.decode = decode
        self.workers = max(1, workers)
        self.runs: collections.deque[Run] = collections.deque()
        self.pos = 0  # the reader's place in the tar stream
        self.skip_to = 0  # units that end by here need no decoding
        self.taking = 0  # threads taking the next unit
        self.mapped = False  # every unit has been taken
        self.stop = False
        self.cond = threading.Condition()
        self.next_lock = threading.Lock()  # units are taken and queued in their order
        self.threads = [threading.Thread(target=self._work, daemon=True) for _ in range(self.workers)]
        self.alive = self.workers

    def __enter__(self) -> Decoded:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self.cond:
            self.stop = True
            self.cond.notify_all()
        for thread in self.threads:
            thread.join()
        for run in self.runs:
            run.close()

    def tell(self) -> int:
        return self.pos

    def seekable(self) -> bool:
        return True

    def seek(self, target: int, whence: int = 0) -> int:
        """Forward only (tarfile's ``r:`` mode skips over member data, never back)."""
        assert whence == 0 and target >= self.pos, "the tar stream is read forward only"
        with self.cond:
            while self.pos < target:
                for run in self.runs:  # decoding what will be skipped is wasted on the other core
                    if run.ends_by(target) and not run.cancelled:
                        run.cancelled = True
                        self.cond.notify_all()
                if not self._head(target):
                    break
                run = self.runs[0]
                if run.ends_by(target):
                    assert run.unit is not None and run.unit.size is not None
                    self._drop()
                    self.pos = run.unit.start + run.unit.size
                elif run.pieces:
                    self.pos += self._skip(run, target - self.pos)
                else:
                    self._settle(run)
        return self.pos

    def read(self, n: int = -1) -> bytes:
        """``n`` bytes, fewer only at the end (tarfile's ``r:`` mode takes a short read for the end of data)."""
        parts: list[bytes] = []
        with self.cond:
            while n != 0 and self._head(self.pos):
                run = self.runs[0]
                if run.pieces:
                    data = self._take(run, n)
                    self.pos += len(data)
                    n -= len(data) if n > 0 else 0
                    parts.append(data)
                else:
                    self._settle(run)
        return b"".join(parts)

    def _settle(self, run: Run) -> None:
        """The head has no data in hand: raise its error, drop it when it is done, or wait for more."""
        if run.error is not None:
            raise run.error
        if run.done:
            self._drop()
        else:
            self._wait()

    def _head(self, pos: int) -> bool:
        """Wait for a unit to read from; False at the end of the stream. ``pos``: where the reader is going."""
        self.skip_to = pos
        while not self.runs:
            if self.mapped and not self.taking:
                return False
            self._wait()
        return True

    def _wait(self) -> None:
        """Wait for the decoders; they never all stop while the reader could want more, except by a bug."""
        if not self.alive:
            msg = "the decoding threads stopped before the end of the data"
            raise RuntimeError(msg)
        self.cond.wait()

    def _drop(self) -> None:
        self.runs.popleft().close()
        self.cond.notify_all()

    def _skip(self, run: Run, n: int) -> int:
        """Pass over up to ``n`` bytes of the run's first piece without reading it."""
        skipped, freed = run.skip(n)
        if freed:
            self.cond.notify_all()
        return skipped

    def _take(self, run: Run, n: int) -> bytes:
        data, freed = run.take(n)
        if freed:
            self.cond.notify_all()
        return data

    def _work(self) -> None:
        try:
            self._take_units()
        finally:
            with self.cond:
                self.alive -= 1
                self.cond.notify_all()

    def _take_units(self) -> None:
        while True:
            with self.cond:
                self.cond.wait_for(lambda: self.stop or self.mapped or len(self.runs) + self.taking <= self.workers)
                if self.stop or self.mapped:
                    return
                self.taking += 1
            with self.next_lock:
                run = Run(None)
                try:
                    run.unit = next(self.units, None)
                except Exception as err:  # a damaged map is raised where its data would have been read
                    run.error = err
                with self.cond:
                    self.taking -= 1
                    if run.unit is None:
                        self.mapped = True
                    if run.unit is not None or run.error is not None:
                        self.runs.append(run)
                    run.cancelled = run.ends_by(self.skip_to)
                    self.cond.notify_all()
            if run.unit is None:
                return
            try:
                if not run.cancelled:
                    self.decode(self.source, run.unit, functools.partial(self._emit, run))
            except Cancelled:
                if self.stop:
                    return
            except Exception as err:
                with self.cond:
                    run.error = err
                    self.cond.notify_all()
                return
            with self.cond:
                run.done = True
                self.cond.notify_all()

    def _is_head(self, run: Run) -> bool:
        return bool(self.runs) and run is self.runs[0]

    def _emit(self, run: Run, data: bytes) -> None:
        with self.cond:
            # The head waits for its reader (its output would only be spilled and read back);
            # the others spill, so that a second core has work while the reader catches up.
            while not (self.stop or run.cancelled) and self._is_head(run) and run.in_memory >= AHEAD:
                self.cond.wait()
            if self.stop or run.cancelled:
                raise Cancelled
            if self._is_head(run):
                run.pieces.append(data)
                run.in_memory += len(data)
            else:
                if run.spill is None:
                    run.spill = tempfile.TemporaryFile()  # noqa: SIM115  # closed once read, or on exit
                os.pwrite(run.spill.fileno(), data, run.spilled)
                last = run.pieces[-1] if run.pieces else None
                if isinstance(last, tuple) and sum(last) == run.spilled:
                    run.pieces[-1] = (last[0], last[1] + len(data))
                else:
                    run.pieces.append((run.spilled, len(data)))
                run.spilled += len(data)
            self.cond.notify_all()
