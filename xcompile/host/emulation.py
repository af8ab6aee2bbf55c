"""Can this host run an arch's images, and what must the image carry for it?

One judgement, used by both `xcompile build` (its notes, and where qemu goes
in the image) and `xcompile doctor` (its binfmt checks), so the two cannot
disagree. ``assess`` is pure: the host's machine type, the mount state, the
registration and what is wrong with its interpreter all come in as values;
``survey`` reads them from this host.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

from xcompile.errors import XcompileError
from xcompile.host import binfmt, elf, platforms
from xcompile.host.platforms import Arch
from xcompile.system.terminal import Status


def doctor_fix(qemu_host: str | None = None) -> str:
    """The command that registers what a hint finds missing, as every hint names it: for this
    machine, or (``qemu_host``) for a machine that runs another CPU's qemu."""
    return "`xcompile doctor --fix" + (f" --qemu-host {qemu_host}" if qemu_host else "") + "`"


FIX = doctor_fix()


@dataclass(frozen=True)
class Assessment:
    arch: Arch
    status: Status
    detail: str
    """What the host does, in doctor's words."""
    note: str
    """What that means for the images being built, in the build's words."""
    fix: str = ""
    extra_qemu_paths: tuple[str, ...] = ()
    """Where the kernel looks for qemu inside the container, beyond /usr/bin."""
    native: bool = False


def assess(
    arch: Arch,
    entry: binfmt.Entry | None,
    *,
    mounted: bool,
    machine: str,
    problem: str | None = None,
) -> Assessment:
    """How a host whose ``uname -m`` is ``machine`` runs ``arch``'s images.

    ``problem`` says why the registered interpreter cannot work (see
    ``interpreter_problem``), or None.
    """
    # A registration, where one is enabled, wins over the kernel's own ELF
    # loader, so a native arch is native only without one.
    if arch.native_here(machine) and (entry is None or not entry.enabled or not mounted):
        note = f"runs natively on this {machine} host; {arch.qemu_path_in_image} stays in the image for hosts that"
        return Assessment(arch, "pass", f"runs natively on {machine}", f"{arch.name}: {note} emulate it", native=True)
    cannot = f"so {arch.platform} images cannot run here — run {FIX}"
    if machine in arch.maybe_native_on and (entry is None or not entry.enabled or not mounted):
        # uname -m cannot tell an aarch64 machine that runs 32-bit ARM from one that cannot.
        note = f"{arch.name}: no binfmt entry {arch.binfmt_name}; images run natively only where this {machine}"
        return Assessment(
            arch,
            "warn",
            f"{arch.binfmt_name} is not registered: runs natively only where this {machine} machine runs"
            f" {arch.platform} programs (GitHub's arm runners, Graviton2/3 do; Graviton4, Apple M1-M4 do not)",
            f"{note} machine runs {arch.platform} programs, and they see `uname -m` = {machine}",
            f"where it cannot, {FIX} registers {arch.binfmt_name}",
        )
    if not mounted:
        return Assessment(
            arch, "fail", "binfmt_misc is not mounted", f"{arch.name}: binfmt_misc is not mounted, {cannot}", FIX
        )
    name = arch.binfmt_name
    if entry is None:
        detail = f"{name} is not registered: {arch.platform} images cannot run here"
        return Assessment(arch, "fail", detail, f"{arch.name}: no binfmt entry {name}, {cannot}", FIX)
    if not entry.enabled:
        fix = f"`echo 1 > {binfmt.ROOT / name}` (or {FIX})"
        return Assessment(
            arch, "fail", f"{name} is registered but disabled", f"{arch.name}: binfmt {name} is disabled, {cannot}", fix
        )
    if entry.fix_binary:
        return _fixed_binary(arch, entry, problem, cannot)
    return _looked_up_inside(arch, entry, problem)


def _fixed_binary(arch: Arch, entry: binfmt.Entry, problem: str | None, cannot: str) -> Assessment:
    """An F entry: the kernel opened the interpreter at registration, so images run without qemu inside."""
    name = arch.binfmt_name
    if problem:
        note = f"{arch.name}: binfmt {name}: {problem}, {cannot}"
        return Assessment(arch, "fail", f"{name}: {problem}", note, f"{FIX} registers it again")
    return Assessment(
        arch,
        "pass",
        f"{name} -> {entry.interpreter} (flags {entry.flags}): F, so images run here even without qemu inside",
        f"{arch.name}: binfmt {name} has the F flag, so the image would run here even without"
        f" qemu inside; {arch.qemu_path_in_image} stays in it for hosts without F",
    )


def _looked_up_inside(arch: Arch, entry: binfmt.Entry, problem: str | None) -> Assessment:
    """An entry without F: the kernel opens the interpreter at exec time, inside the
    container, so the image carries qemu there, whatever the host has."""
    name = arch.binfmt_name
    if not stands_in(entry) and entry.interpreter != arch.qemu_path_in_image:
        return Assessment(
            arch,
            "fail",
            f"{name} -> {entry.interpreter} (flags {entry.flags}) without F: a wrapper"
            " that qemu cannot stand in for, so images will not run here",
            f"{arch.name}: binfmt {name} (no F) runs {entry.interpreter} with the P flag, a wrapper"
            " that qemu cannot stand in for, so images will not run here; register it without P,"
            f" or with F ({FIX})",
            f"register it without P, or with F ({FIX})",
        )
    extra = () if entry.interpreter == arch.qemu_path_in_image else (entry.interpreter,)
    looks = f"{arch.name}: binfmt {name} (no F) looks for {entry.interpreter} inside the container"
    note = f"{looks}; qemu is placed there too" if extra else f"{looks}, where the image has it"
    if problem:
        # Programs of this arch on the host itself fail; images still run.
        return Assessment(arch, "fail", f"{name}: {problem}", note, f"{FIX} registers it again", extra)
    return Assessment(
        arch,
        "warn",
        f"{name} -> {entry.interpreter} without F: images need qemu at that path inside (xcompile puts it there)",
        note,
        f"nothing to do for xcompile's images; {FIX} only adds missing entries",
        extra,
    )


def stands_in(entry: binfmt.Entry) -> bool:
    """Can a copy of qemu serve at the registered interpreter path?

    With the P (preserve-argv0) flag the kernel passes an extra argument.
    Debian's qemu takes that mode when it is run under a name ending in
    "-binfmt-P" (Debian registers /usr/libexec/qemu-binfmt/<arch>-binfmt-P,
    a link to qemu); any other P interpreter is some wrapper of its own.
    """
    return "P" not in entry.flags or binfmt.takes_preserve_argv0(entry.interpreter)


def interpreter_problem(entry: binfmt.Entry, machine: str | None = None) -> str | None:
    """Why a registration's interpreter cannot work on this host, or None."""
    path = Path(entry.interpreter)
    if not path.exists():
        if entry.fix_binary:
            return None  # the kernel holds the file open since registration
        return f"its interpreter {entry.interpreter} does not exist"
    try:
        elf.check_static(path.resolve(), platforms.host(machine), entry.interpreter)
    except XcompileError as err:
        return err.message
    return None


def survey(arches: tuple[Arch, ...], machine: str | None = None, root: Path = binfmt.ROOT) -> dict[str, Assessment]:
    """``assess`` for each arch, with this host's state."""
    machine = platform.machine() if machine is None else machine
    mounted = binfmt.mounted(root)
    found = {}
    for arch in arches:
        entry = binfmt.read(arch.binfmt_name, root) if mounted else None
        problem = interpreter_problem(entry, machine) if entry is not None and entry.enabled else None
        found[arch.name] = assess(arch, entry, mounted=mounted, machine=machine, problem=problem)
    return found
