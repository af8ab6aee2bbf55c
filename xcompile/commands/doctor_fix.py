"""`xcompile doctor --fix`: the writes doctor can make (mount binfmt_misc, register missing or
broken emulators), each shown before it is made. The checks are commands/doctor.py.
"""

from __future__ import annotations

import dataclasses
import os
import platform
from pathlib import Path

from xcompile.errors import EnvironmentProblem
from xcompile.host import binfmt, emulation, platforms
from xcompile.host.platforms import Arch
from xcompile.qemu import machines, settle
from xcompile.settings.config import Config
from xcompile.system.runner import Runner
from xcompile.system.terminal import Say

MOUNT = ("mount", "-t", "binfmt_misc", "binfmt_misc", str(binfmt.ROOT))


def fixes(config: Config, runner: Runner, *, fix_binary: bool, show: Say, root: Path = binfmt.ROOT) -> None:
    """Mount binfmt_misc and register (or repair) the emulators the targets need.

    A broken registration is replaced so that the host is never left worse:
    see ``binfmt.install``. ``root`` is the binfmt_misc folder (tests pass a
    stand-in).
    """
    if os.geteuid() != 0:
        msg = "doctor --fix writes to /proc and needs root"
        raise EnvironmentProblem(msg, hint="run it with sudo")
    if not binfmt.mounted(root):
        runner.run(*MOUNT)
    # The entries registered here run programs on this machine: their qemu is built for it,
    # whatever qemu host the images are for.
    here = dataclasses.replace(config, qemu_host=platforms.host().name)
    for arch, needs_f in _entries_to_fix(config):
        if arch.native_here(platform.machine()):
            continue
        entry = binfmt.read(arch.binfmt_name, root)
        if entry is not None and emulation.interpreter_problem(entry) is None and (entry.fix_binary or not needs_f):
            if not entry.enabled:
                write = binfmt.enable_write(arch.binfmt_name, root)
                runner.write_proc(write.path, write.text, what=write.what())
            continue
        with_f = fix_binary or needs_f
        found = settle.ensure(arch, runner, here)
        # The qemu registered here runs every foreign binary on the host:
        # whatever the download had to say about it (an unverified
        # signature above all) is shown, not dropped.
        for note in found.notes:
            show(f"warning: {note}", None)
        interpreter = str(found.path) if with_f else arch.qemu_path_in_image
        unflagged = dataclasses.replace(entry, flags="") if entry is not None else None
        if unflagged is not None and with_f and emulation.interpreter_problem(unflagged) is None:
            # settle.ensure may just have installed what the host's entry names
            # (Debian's -binfmt-P link): keep it, and with it the P flag.
            interpreter = unflagged.interpreter
        new = binfmt.entry_for(arch, interpreter, fix_binary=with_f, like=entry)
        binfmt.install(new, entry, runner, root=root)


def _entries_to_fix(config: Config) -> list[tuple[Arch, bool]]:
    """The targets' entries, and the qemu host's CPU's where this machine does not run it natively
    (the proof runs the shipped qemu through it: with F, which it needs)."""
    wanted = [(arch, False) for arch in config.targets if arch != config.qemu_host_arch]
    here = platforms.host()
    if not machines.runs_natively(config.qemu_host_arch, here):
        wanted.append((config.qemu_host_arch, True))
    return wanted
