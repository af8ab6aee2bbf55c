"""The qemu host (issue 26): the machine that will use the images, and how the engine's machine runs its qemu.

The qemu inside an image is built for the qemu host's CPU (``qemu_host``,
amd64 by default), not for the machine xcompile or its engine runs on. The
proof runs that shipped qemu as the entrypoint, so the engine's machine must
run a program of the qemu host's CPU: natively, or through its own binfmt
entry for that CPU (nested emulation: an aarch64 qemu-arm-static run by the
engine machine's qemu-aarch64). The kernel opens that entry's interpreter
inside the container unless it has the F flag, and no image carries the
qemu host's own emulator at that path, so only an entry with F will do.

The engine's machine is told by the engine (``Versions.arch``); its
binfmt entries are this machine's /proc where the engine runs here: a docker
without DOCKER_HOST other than a unix socket and without another context, a
podman without CONTAINER_HOST. Elsewhere (a remote daemon, Docker Desktop's
VM, a podman machine) they cannot be read from here, so the engine's machine
is asked by running the shipped qemu there (``probe_remote``), before any build.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import tarfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from xcompile.errors import CommandFailed, EnvironmentProblem, XcompileError
from xcompile.host import binfmt, emulation, platforms
from xcompile.host.platforms import Arch
from xcompile.settings.config import Config
from xcompile.system.runner import Runner

if TYPE_CHECKING:
    from collections.abc import Sequence

    from xcompile.engine import Engine
    from xcompile.qemu.settle import Qemu


@dataclass(frozen=True)
class EngineMachine:
    arch: Arch
    """The row of the engine's machine."""
    local: bool
    """Does the engine run on this machine (so /proc here holds its binfmt entries)?"""
    why: str
    """How that was decided, in words."""


def engine_is_local(
    engine: str, env: Mapping[str, str], docker_config: Path, system: str = sys.platform
) -> tuple[bool, str]:
    """Does the engine run on this machine? Decided from its client's settings alone, and why."""
    if system != "linux":  # macOS, Windows: Docker Desktop's or a podman machine's Linux VM, behind a local socket
        return False, f"this machine runs {system}, so the engine runs in a Linux VM"
    if engine == "podman":
        if env.get("CONTAINER_HOST") or env.get("CONTAINER_CONNECTION"):
            return False, "CONTAINER_HOST/CONTAINER_CONNECTION names another machine's podman"
        return True, "podman runs its containers on this machine"
    docker_host = env.get("DOCKER_HOST", "")
    if docker_host and not docker_host.startswith("unix://"):
        return False, f"DOCKER_HOST is {docker_host.split('://', 1)[0]}://…, not a local unix socket"
    context = env.get("DOCKER_CONTEXT") or (None if docker_host else _current_context(docker_config))
    if context not in (None, "", "default"):
        return False, f"the docker context {context!r} may be another machine's daemon"
    return True, "docker's daemon answers on a local unix socket"


def _current_context(docker_config: Path) -> str | None:
    try:
        found = json.loads(docker_config.read_text())
    except (OSError, ValueError):
        return None
    context = found.get("currentContext") if isinstance(found, dict) else None
    return context if isinstance(context, str) else None


def engine_machine(arch_said: str | None, local: bool, why: str) -> EngineMachine:
    """The engine's machine from the arch the engine said (None: unknown, a dry run: this machine's)."""
    if arch_said:
        try:
            return EngineMachine(platforms.get(arch_said), local, why)
        except XcompileError:
            pass
    try:
        here = platforms.host()
    except XcompileError:
        here = platforms.get("amd64")
    return EngineMachine(here, local, why)


def runs_natively(qemu_host: Arch, machine: Arch) -> bool:
    """Does a machine of row ``machine`` run programs built for ``qemu_host``'s CPU without emulation?"""
    return qemu_host == machine or any(qemu_host.native_here(m) for m in machine.host_machines)


def how_shipped_qemu_runs(qemu_host: Arch, machine: EngineMachine, entry: binfmt.Entry | None, *, mounted: bool) -> str:
    """How the engine's machine runs the shipped qemu (built for ``qemu_host``), in words; raises
    EnvironmentProblem, naming the missing entry and the fix, where it cannot run it."""
    if runs_natively(qemu_host, machine.arch):
        return f"natively (the engine's machine is {machine.arch.name})"
    name = qemu_host.binfmt_name
    nested = f"nested: the engine's {machine.arch.name} machine runs the {qemu_host.name} qemu through its {name}"
    if not machine.local:
        return f"{nested} (its binfmt entries are not read from here: {machine.why})"
    if mounted and entry is not None and entry.enabled and entry.fix_binary:
        return f"{nested} (flags {entry.flags})"
    if (entry is None or not entry.enabled) and any(
        qemu_host.maybe_native_on.count(m) for m in machine.arch.host_machines
    ):
        # Debian's arm64 qemu-user-static registers no qemu-arm: such a machine runs 32-bit ARM
        # natively or not at all, and only running it tells; the proof does.
        return f"natively, where the engine's {machine.arch.name} machine runs {qemu_host.name} programs (not all do)"
    state = (
        "binfmt_misc is not mounted"
        if not mounted
        else f"it has no binfmt entry {name}"
        if entry is None
        else f"its binfmt entry {name} is disabled"
        if not entry.enabled
        else f"its binfmt entry {name} lacks the F flag (the kernel would look for {entry.interpreter} in the image)"
    )
    msg = (
        f"the qemu for the qemu host {qemu_host.name} cannot run on the engine's {machine.arch.name} machine,"
        f" so the proof cannot run it: {state}"
    )
    raise EnvironmentProblem(msg, hint=f"run {emulation.doctor_fix(qemu_host.name)}: it registers {name} with F")


def check_here(qemu_host: Arch, machine: EngineMachine, root: Path = binfmt.ROOT) -> str:
    """``how_shipped_qemu_runs`` with this machine's binfmt state."""
    mounted = binfmt.mounted(root)
    entry = binfmt.read(qemu_host.binfmt_name, root) if mounted and machine.local else None
    return how_shipped_qemu_runs(qemu_host, machine, entry, mounted=mounted)


def settle(config: Config, engine: str, arch_said: str | None, *, dry_run: bool) -> tuple[EngineMachine, str | None]:
    """The engine's machine, and how it will run the shipped qemu in the proof (None: no proof).
    Raises before any build where it cannot; a dry run says where a run would stop instead."""
    local, why = engine_is_local(engine, dict(config.engine_env), config.docker_config)
    machine = engine_machine(arch_said, local, why)
    if not config.verify:
        return machine, None
    try:
        return machine, check_here(config.qemu_host_arch, machine)
    except EnvironmentProblem as err:
        if not dry_run:
            raise
        return machine, f"nowhere: a run would stop here: {err}"


def ask_remote(
    config: Config,
    runner: Runner,
    engine: Engine,
    machine: EngineMachine,
    qemus: Sequence[Qemu],
    scratch: Path,
) -> str | None:
    """``probe_remote`` where the run needs it: a proof, not a dry run, and an engine's machine that is
    not this one and does not run the qemu host's CPU natively. None where it is not asked."""
    if not config.verify or runner.dry_run or not qemus or machine.local:
        return None
    if runs_natively(config.qemu_host_arch, machine.arch):
        return None
    return probe_remote(runner, engine, qemus[0].path, config.qemu_host_arch, machine, scratch)


def probe_remote(
    runner: Runner, engine: Engine, qemu: Path, qemu_host: Arch, machine: EngineMachine, scratch: Path
) -> str:
    """Run the shipped ``qemu --version`` on an engine whose binfmt entries cannot be read from here,
    in an image that holds it alone (imported: no registry, no base); how it ran, in words. Raises
    EnvironmentProblem, naming the entry the engine's machine lacks, where it does not start: before
    any build, where the proof would otherwise find it after every build (issue 26)."""
    tarball = scratch / "qemu-probe.tar"
    with tarfile.open(tarball, "w") as tar:
        member = tarfile.TarInfo("qemu")
        data = qemu.read_bytes()
        member.size, member.mode = len(data), 0o755
        tar.addfile(member, io.BytesIO(data))
    image = f"xcompile-probe-{uuid.uuid4().hex[:12]}:qemu"
    runner.run(*engine.import_cmd(tarball, image))
    try:
        runner.ask(*engine.run_cmd(machine.arch.platform, image, "--version", entrypoint="/qemu"), timeout=60)
    except CommandFailed as err:
        name = qemu_host.binfmt_name
        msg = (
            f"the qemu for the qemu host {qemu_host.name} does not start on the engine's {machine.arch.name}"
            f" machine ({machine.why}), so the proof could not run it: {err.last_words}"
        )
        hint = f"register {name} with F there ({emulation.doctor_fix(qemu_host.name)} on that machine)"
        raise EnvironmentProblem(msg, hint=hint) from None
    finally:  # removed even during a stop (Ctrl-C, SIGTERM): a stop never cuts an undo
        with contextlib.suppress(XcompileError), runner.undoing():
            runner.run(*engine.remove_images_cmd(image))
    return (
        f"nested: the engine's {machine.arch.name} machine runs the {qemu_host.name} qemu"
        f" (its binfmt entries are not read from here: {machine.why}; it ran there)"
    )
