"""Set up binfmt_misc registrations for a test and restore them afterwards
(kernel state shared by the whole machine).

No test may take the host's registrations as given: a test whose outcome
depends on them sets up the state it asserts, with `host_state` (the
`host_binfmt` fixture) or `replaced`/`removed`, and these restore every entry
byte for byte afterwards. The suite must pass whichever state the host starts
in: one of `HOST_STATES` for both emulators, or a mix (`MIXED_STATES`).

Each of these holds a machine-wide lock (`exclusive`) while the registrations
are changed, so two test runs on one host (CI jobs sharing a runner, or
engineers sharing a machine) never see each other's half-set state.

A test that needs binfmt_misc unmounted unmounts it only in a mount namespace
of its own (`unmounted`): on kernel >= 6.7 the registrations belong to the
mount, and unmounting the host's drops every one of them, the host's jar and
python3.11 as well as qemu's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from xcompile.host import binfmt, platforms
from xcompile.host.binfmt import Entry, read
from xcompile.system.runner import Runner

QUIET = Runner(lambda _line, _label: None)
"""Makes each write to /proc as xcompile does (Runner.write_proc), saying nothing."""


def apply(write: binfmt.Write) -> None:
    """One write to /proc, made as doctor --fix makes it."""
    QUIET.write_proc(write.path, write.text, what=write.what())


ARM = platforms.get("arm32v7")
ARM64 = platforms.get("arm64v8")
EMULATED = (ARM, ARM64)
"""The arches whose registrations the suite puts in each host state."""
EMULATED_NAMES = tuple(arch.binfmt_name for arch in EMULATED)

HOST_STATES = ("debian", "seed", "none")
"""debian: Debian 12's default, flags PF at /usr/libexec/qemu-binfmt/<cpu>-binfmt-P.
seed: older hosts and many CI runners, no F, at /usr/bin/qemu-<cpu>-static (inside the container).
none: no entry at all, e.g. after a reboot without binfmt-support."""

MIXED_STATES = ("none/debian", "seed/none")
"""One state for qemu-arm, another for qemu-aarch64: a host where some emulators
were set up or removed and others not (`echo -1 > .../qemu-arm` leaves Debian's
qemu-aarch64). ci/binfmt-host.sh takes the same names."""


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


def arch_states(state: str) -> dict[platforms.Arch, str]:
    """Each emulated arch's state in ``state``: one of HOST_STATES for all, or
    one per arch separated by "/" (qemu-arm's first), as in MIXED_STATES."""
    parts = state.split("/")
    if len(parts) == 1:
        parts *= len(EMULATED)
    if len(parts) != len(EMULATED) or not set(parts) <= set(HOST_STATES):
        known = f"one of {', '.join(HOST_STATES)}, or one per arch ({'/'.join(EMULATED_NAMES)})"
        raise ValueError(f"unknown host state {state!r}: {known}")
    return dict(zip(EMULATED, parts, strict=True))


def snapshot() -> dict[str, str]:
    """Every registration as /proc shows it, to compare before and after."""
    if not binfmt.mounted():
        return {}
    return {p.name: p.read_text() for p in sorted(binfmt.ROOT.iterdir()) if p.name not in ("register", "status")}


def differing(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """The names of the registrations that are not byte for byte what they were."""
    return sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))


@contextlib.contextmanager
def host_state(state: str) -> Iterator[str]:
    """Put the host's qemu-arm and qemu-aarch64 registrations in ``state``
    (see arch_states); afterwards every entry is exactly as before, or this
    fails and says which differ."""
    with exclusive():
        before = snapshot()
        with contextlib.ExitStack() as stack:
            for arch, arch_state in arch_states(state).items():
                entry = state_entry(arch_state, arch)
                stack.enter_context(replaced(entry) if entry else removed(arch.binfmt_name))
            yield state
        changed = differing(before, snapshot())
    assert not changed, f"binfmt registrations not restored: {', '.join(changed)}"


@contextlib.contextmanager
def replaced(entry: Entry) -> Iterator[Entry]:
    """Register ``entry`` in place of whatever has its name; restore afterwards."""
    with exclusive(), removed(entry.name):
        for write in binfmt.register_writes(entry):
            apply(write)
        yield entry


@contextlib.contextmanager
def removed(name: str) -> Iterator[None]:
    with exclusive():
        saved = read(name)
        if saved is not None:
            apply(binfmt.remove_write(name))
        try:
            yield
        finally:
            _put_back(name, saved)


def _put_back(name: str, saved: Entry | None) -> None:
    """Make ``name`` what ``saved`` says (None: no entry), as /proc showed it."""
    if read(name) is not None:
        apply(binfmt.remove_write(name))
    if saved is not None:
        for write in binfmt.register_writes(saved):
            apply(write)


def unmounted(*argv: str) -> list[str]:
    """``argv`` run with binfmt_misc unmounted in a mount namespace of its own,
    so that the host's mount, and every registration with it, stays.

    A mount made there again (doctor --fix's) is the same instance as the
    host's (on kernel >= 6.7, one per user namespace): it shows the host's
    registrations, and what is registered there is registered on the host.
    """
    if os.geteuid() != 0:
        pytest.fail("unmounting binfmt_misc, even in a mount namespace of its own, needs root")
    if shutil.which("unshare") is None:
        pytest.fail("unshare (util-linux) is not installed; it unmounts binfmt_misc for this test alone")
    umount = 'umount "$0" && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", umount, str(binfmt.ROOT), *argv]


@contextlib.contextmanager
def all_restored() -> Iterator[None]:
    """Every registration exactly as before, whatever happened inside.

    For tests that unmount binfmt_misc, which they do in a namespace of their
    own (`unmounted`). Should an unmount still reach the host's mount, which
    on kernel >= 6.7 drops every entry, this mounts it again and registers
    each entry as /proc showed it (an entry shown without a mask gets none);
    entries that were not there are removed. Then it fails if any differs.
    """
    with exclusive():
        before = snapshot()
        saved = {name: read(name) for name in before}
        try:
            yield
        finally:
            if not binfmt.mounted():
                subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(binfmt.ROOT)], check=True)
            for name in differing(before, snapshot()):
                _put_back(name, saved.get(name))
        changed = differing(before, snapshot())
    assert not changed, f"binfmt registrations not restored: {', '.join(changed)}"


FOREIGN = {
    "xcompile-test-nomask": ":xcompile-test-nomask:M:0:\\x78\\x63\\x6f\\x6d\\x70\\x69\\x6c\\x65\\x00::/bin/true:",
    "xcompile-test-ext": ":xcompile-test-ext:E::xcompile-test::/bin/true:F",
}
"""Two registrations of the kinds binfmt-support makes for Debian's other
formats (jar, python3.11, llvm-14-runtime.binfmt), as raw register lines: a
magic entry with no mask, and an extension entry. They run /bin/true for files
that start with "xcompile\\0" or end in ".xcompile-test", which nothing does."""


@contextlib.contextmanager
def foreign_entries() -> Iterator[tuple[str, ...]]:
    """FOREIGN registered (the extension entry disabled), then removed."""
    with exclusive():
        for name, line in FOREIGN.items():
            if read(name) is not None:  # left by a run that was killed
                apply(binfmt.remove_write(name))
            apply(binfmt.Write(binfmt.ROOT / "register", line))
        apply(binfmt.Write(binfmt.ROOT / "xcompile-test-ext", "0"))
        try:
            yield tuple(FOREIGN)
        finally:
            for name in FOREIGN:
                if read(name) is not None:
                    apply(binfmt.remove_write(name))


__all__ = [
    "ARM",
    "ARM64",
    "FOREIGN",
    "HOST_STATES",
    "MIXED_STATES",
    "Entry",
    "all_restored",
    "apply",
    "arch_states",
    "debian_default",
    "differing",
    "exclusive",
    "foreign_entries",
    "host_state",
    "read",
    "removed",
    "replaced",
    "seed_world",
    "snapshot",
    "state_entry",
    "unmounted",
]
