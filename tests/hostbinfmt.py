"""Change binfmt_misc registrations for a test and restore them afterwards
(kernel state shared by the whole machine).

No test may take the host's registrations as given (issue 12): a test whose
outcome depends on them sets up the state it asserts, with `host_state` (the
`host_binfmt` fixture) or `replaced`/`removed`, and these restore it afterwards.
The suite must pass whichever of `HOST_STATES` the host starts in.

Each of these holds a machine-wide lock (`exclusive`) while the registrations
are changed, so two test runs on one host (CI jobs sharing a runner, or
engineers sharing a machine) never see each other's half-set state.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from xcompile import binfmt, platforms
from xcompile.binfmt import Entry, read

ARM = platforms.get("arm32v7")
ARM64 = platforms.get("arm64v8")
EMULATED = (ARM, ARM64)
"""The arches whose registrations the suite puts in each host state."""

HOST_STATES = ("debian", "seed", "none")
"""debian: Debian 12's default, flags PF at /usr/libexec/qemu-binfmt/<cpu>-binfmt-P.
seed: older hosts and many CI runners, no F, at /usr/bin/qemu-<cpu>-static (inside the container).
none: no entry at all, e.g. after a reboot without binfmt-support."""


def debian_default(arch: platforms.Arch) -> Entry:
    """What Debian's qemu-user-static with binfmt-support registers (see /usr/share/binfmts/)."""
    cpu = arch.binfmt_name.removeprefix("qemu-")
    entry = binfmt.entry_for(arch, f"/usr/libexec/qemu-binfmt/{cpu}-binfmt-P", fix_binary=True)
    return dataclasses.replace(entry, flags="PF")


def seed_world(arch: platforms.Arch, interpreter: str | None = None, flags: str = "") -> Entry:
    """A registration without F, at the path the image carries qemu (or ``interpreter``)."""
    entry = binfmt.entry_for(arch, interpreter or arch.qemu_path_in_image, fix_binary=False)
    return dataclasses.replace(entry, flags=flags)


LOCK = Path(os.environ.get("XCOMPILE_BINFMT_LOCK", "/tmp/xcompile-binfmt.lock"))
"""Also taken by ci/binfmt-host.sh."""
LOCK_WAIT = 900.0


class _Exclusive:
    """The binfmt lock, re-entrant within this process (host_state nests replaced and removed)."""

    def __init__(self) -> None:
        self.depth = 0
        self.fd = -1

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        if self.depth == 0:
            self.fd = self._acquire()
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
            if self.depth == 0:
                os.close(self.fd)  # closing the descriptor releases the flock

    @staticmethod
    def _acquire() -> int:
        fd = os.open(LOCK, os.O_RDWR | os.O_CREAT, 0o666)
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    pytest.fail(f"another process held {LOCK} (binfmt registrations) for {LOCK_WAIT:.0f} s")
                time.sleep(0.1)


exclusive = _Exclusive()


def state_entry(state: str, arch: platforms.Arch) -> Entry | None:
    if state not in HOST_STATES:
        raise ValueError(f"unknown host state {state!r}; known: {', '.join(HOST_STATES)}")
    return {"debian": debian_default, "seed": seed_world}[state](arch) if state != "none" else None


def snapshot() -> dict[str, str]:
    """Every registration as /proc shows it, to compare before and after."""
    if not binfmt.mounted():
        return {}
    return {p.name: p.read_text() for p in sorted(binfmt.ROOT.iterdir()) if p.name not in ("register", "status")}


@contextlib.contextmanager
def host_state(state: str, arches: tuple[platforms.Arch, ...] = EMULATED) -> Iterator[str]:
    """Put the host's registrations for ``arches`` in ``state``; afterwards they are
    exactly as before, for every entry, or this fails and says which differ."""
    with exclusive():
        before = snapshot()
        with contextlib.ExitStack() as stack:
            for arch in arches:
                entry = state_entry(state, arch)
                stack.enter_context(replaced(entry) if entry else removed(arch.binfmt_name))
            yield state
        after = snapshot()
    changed = sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))
    assert not changed, f"binfmt registrations not restored: {', '.join(changed)}"


@contextlib.contextmanager
def replaced(entry: Entry) -> Iterator[Entry]:
    """Register ``entry`` in place of whatever has its name; restore afterwards."""
    with exclusive(), removed(entry.name):
        for write in binfmt.register_writes(entry):
            write.apply()
        yield entry


@contextlib.contextmanager
def removed(name: str) -> Iterator[None]:
    with exclusive():
        saved = read(name)
        if saved is not None:
            binfmt.remove_write(name).apply()
        try:
            yield
        finally:
            if read(name) is not None:
                binfmt.remove_write(name).apply()
            if saved is not None:
                for write in binfmt.register_writes(saved):
                    write.apply()


@contextlib.contextmanager
def all_restored() -> Iterator[None]:
    """For tests that unmount binfmt_misc, which drops every registration on this kernel."""
    with exclusive():
        root = binfmt.ROOT
        names = [p.name for p in root.iterdir() if p.name not in ("register", "status")] if binfmt.mounted() else []
        saved = [read(name) for name in names]
        try:
            yield
        finally:
            if not binfmt.mounted():
                subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(root)], check=True)
            for entry in saved:
                if entry is None:
                    continue
                if read(entry.name) is not None:
                    binfmt.remove_write(entry.name).apply()
                for write in binfmt.register_writes(entry):
                    write.apply()


__all__ = [
    "ARM",
    "ARM64",
    "HOST_STATES",
    "Entry",
    "all_restored",
    "debian_default",
    "exclusive",
    "host_state",
    "read",
    "removed",
    "replaced",
    "seed_world",
    "snapshot",
    "state_entry",
]
