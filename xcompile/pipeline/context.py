"""Step 2: put qemu in a build context — the original's `cp`, one context per emulator.

Each emulator's context holds ``qemu-layer/``: qemu at every path its images
carry it. The tree's files and folders get one mode and one time, so that the
layer `COPY qemu-layer/ /` makes is the same bytes on every base and in every
run: the registry stores it once, a push after the first uploads it no more,
and a device pulling several tags downloads it once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

from xcompile.pipeline.plan import QEMU_LAYER, Image
from xcompile.qemu.settle import Qemu
from xcompile.system import files
from xcompile.system.runner import Runner

QEMU_LAYER_MODE = 0o755
QEMU_LAYER_MTIME = 1
"""1970-01-01 00:00:01 UTC: fixed, and not 0, which some tools read as "no time"."""


@dataclass(frozen=True)
class Workspace:
    """A run's temporary folder: a docker build context per emulator (so each
    build sends only its own qemu), and room for checks outside them."""

    root: Path

    def context(self, qemu_binary: str) -> Path:
        return self.root / f"context-{qemu_binary}"

    @property
    def dockerfiles(self) -> Path:
        """Outside every context: a build sends its whole context while the other
        images' Dockerfiles are being written, and the engine's tar refuses a file
        that grows while it reads it ("archive/tar: missed writing N bytes")."""
        return self.root / "dockerfiles"

    @property
    def scratch(self) -> Path:
        return self.root / "check"


@contextlib.contextmanager
def workspace(runner: Runner) -> Iterator[Workspace]:
    """A fresh folder, removed afterwards even on failure or Ctrl-C."""
    with runner.temp_folder("xcompile-") as folder:
        work = Workspace(folder)
        runner.make_folder(work.scratch)
        yield work


def copy_qemu(runner: Runner, found: list[Qemu], work: Workspace, images: Collection[Image]) -> dict[str, str]:
    """cp each qemu into its build context, at every path its images have it,
    then give the tree fixed modes and times. Returns each binary's SHA256
    (what the labels record and the proof compares the image's bytes against)."""
    sha256: dict[str, str] = {}
    for one in found:
        tree = work.context(one.binary) / QEMU_LAYER
        paths = sorted({path for image in images if image.arch.qemu_binary == one.binary for path in image.qemu_paths})
        stamped = {tree}
        for path in paths:
            target = tree / path.lstrip("/")
            runner.make_folder(target.parent)
            runner.run("cp", one.path, target)
            stamped |= {target, *(folder for folder in target.parents if folder.is_relative_to(tree))}
        runner.stamp(sorted(stamped), mode=QEMU_LAYER_MODE, mtime=QEMU_LAYER_MTIME)
        sha256[one.binary] = files.sha256_or_none(one.path) or f"<SHA256 of {one.path}>"
    return sha256
