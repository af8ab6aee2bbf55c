"""`xcompile doctor`: what this host lacks for building and running foreign images.

Each check is a pure-ish function of the host's state and gives one line:
pass, warn or fail, with the fix. ``--fix`` is commands/doctor_fix.py.
"""

from __future__ import annotations

import os
import platform
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from xcompile.archive import pins, trust
from xcompile.commands.doctor_fix import MOUNT
from xcompile.engine import DOCKER, PODMAN, Engine, dockerconfig
from xcompile.engine.choice import Chosen, Refused, choose
from xcompile.engine.versions import DAEMON_PLATFORM_SINCE, Versions, needs_experimental, older_than
from xcompile.errors import CommandFailed, XcompileError
from xcompile.host import binfmt, elf, emulation, platforms
from xcompile.host.platforms import Arch
from xcompile.qemu import machines, settle
from xcompile.registry import check as registry_check
from xcompile.settings.config import Config
from xcompile.system.runner import Runner
from xcompile.system.terminal import Say, Status
from xcompile.urls import redact

# A check is what the build's registry check calls a finding: one record for both.
Check = registry_check.Finding


def checks(config: Config, runner: Runner, say: Say, machine: str | None = None) -> list[Check]:
    """Every check, in the order a newcomer would fix them; ``say``: a warning's way out. ``machine``: the
    engine's machine type (default: what the engine says, where it runs here; else this machine's)."""
    chosen, found = _choose(config, runner, say)
    if chosen is None:
        return found
    engine = chosen.engine
    found += _ENGINE_CHECKS[engine.name](runner)
    found.append(
        Check("binfmt_misc", "pass", f"mounted at {binfmt.ROOT}")
        if binfmt.mounted()
        else Check("binfmt_misc", "fail", f"not mounted at {binfmt.ROOT}", f"`{' '.join(MOUNT)}` (or --fix)")
    )
    engine_machine = _engine_machine(config, runner, engine)
    machine = machine or (engine_machine.arch.uname_m if engine_machine.local else None) or platform.machine()
    host = emulation.survey(config.targets, machine)
    for name, seen in host.items():
        found.append(Check(f"binfmt {name}", seen.status, seen.detail, seen.fix))
    found.append(_machines(config, engine_machine))
    found.append(_proof(config, host))
    for arch in platforms.one_per_emulator(config.targets):
        found.append(_qemu(arch, runner, config.qemu_host_arch))
    found.append(_keys(config.keyring))
    if config.qemu_version is not None:
        found += _Pin(config, runner).checks()
    if engine.has_experimental:
        found.append(_docker_config(config.docker_config))
    if config.push:
        found += _registry(config, runner, chosen)
    return found


def _choose(config: Config, runner: Runner, say: Say) -> tuple[Chosen | None, list[Check]]:
    """The engine, as the build chooses it, and its checks: which one, and its setup."""
    setup: Check | None = None
    try:  # the setup comes before the engine's probes, which run as the build would
        chosen = choose(config.engine, runner, config.auth_places, Path.home(), say)
    except Refused as err:
        chosen, setup = err.chosen, Check(f"{err.chosen.engine.name} setup", "fail", err.message, err.hint or "")
    except XcompileError as err:
        return None, [Check("engine", "fail", err.message, err.hint or "")]
    if chosen.fitted:
        setup = Check(f"{chosen.engine.name} setup", "pass", chosen.fitted)
    return chosen, [Check("engine", "pass", chosen.why.removeprefix("engine: ")), *([setup] if setup else [])]


def _engine_machine(config: Config, runner: Runner, engine: Engine) -> machines.EngineMachine:
    try:
        said = engine.versions(runner).arch
    except XcompileError:
        said = None
    local, why = machines.engine_is_local(engine.name, dict(config.engine_env), config.docker_config)
    return machines.engine_machine(said, local, why)


def _machines(config: Config, machine: machines.EngineMachine) -> Check:
    """This machine, the engine's, and the qemu host: and whether the proof can run the shipped qemu."""
    why = machine.why
    local = machine.local
    here = platform.machine()
    where = (
        f"xcompile runs on {here}; the engine's machine is {machine.arch.name} ({why})"
        if machine.arch.uname_m != here or not local
        else f"xcompile and the engine run on this {here} machine"
    )
    try:
        ran = machines.check_here(config.qemu_host_arch, machine)
    except XcompileError as err:
        return Check("qemu host", "fail", f"{where}; {err.message}", err.hint or "")
    return Check("qemu host", "pass", f"{where}; images carry qemu for {config.qemu_host}, run {ran}")


def worst(found: list[Check]) -> Status:
    statuses = {check.status for check in found}
    return "fail" if "fail" in statuses else "warn" if "warn" in statuses else "pass"


def table(found: list[Check]) -> str:
    width = max(len(check.name) for check in found)
    lines = []
    for check in found:
        lines.append(f"{check.status:4}  {check.name:{width}}  {check.detail}")
        if check.fix and check.status != "pass":
            lines.append(f"{'':4}  {'':{width}}  fix: {check.fix}")
    return "\n".join(lines)


def as_json(found: list[Check]) -> dict[str, Any]:
    return {"ok": worst(found) != "fail", "checks": [asdict(check) for check in found]}


# --- the checks --------------------------------------------------------------


def _docker(runner: Runner) -> list[Check]:
    if runner.which("docker") is None:
        fix = "install Docker (e.g. `apt-get install docker.io`)"
        return [
            Check("docker client", "fail", "docker is not on PATH", fix),
            Check("docker daemon", "fail", "no client to ask", fix),
        ]
    try:
        versions = DOCKER.versions(runner)
    except XcompileError as err:
        return [
            Check("docker client", "pass", f"{runner.which('docker')}"),
            Check("docker daemon", "fail", err.message, err.hint or ""),
        ]
    client = Check("docker client", "pass", f"{versions.client} at {runner.which('docker')}")
    daemon = Check("docker daemon", "pass", f"{versions.server} answers")
    return [client, daemon, _experimental(versions)]


def _experimental(versions: Versions) -> Check:
    if older_than(versions.server, DAEMON_PLATFORM_SINCE) and not versions.server_experimental:
        return Check(
            "experimental",
            "fail",
            f"docker {versions.server} needs an experimental daemon for --platform",
            'set "experimental": true in /etc/docker/daemon.json and restart dockerd, or upgrade',
        )
    if needs_experimental(versions.client):
        return Check(
            "experimental",
            "warn",
            f"docker client {versions.client} gates `docker manifest` behind experimental",
            "`xcompile experimental` (build does it for you)",
        )
    return Check("experimental", "pass", f"not needed with client {versions.client}, server {versions.server}")


def _podman(runner: Runner) -> list[Check]:
    where = runner.which("podman")
    if where is None:
        fix = "install podman (e.g. `apt-get install podman`, `dnf install podman`)"
        return [Check("podman", "fail", "podman is not on PATH", fix)]
    try:
        versions = PODMAN.versions(runner)
    except XcompileError as err:
        return [Check("podman", "fail", err.message, err.hint or "")]
    return [
        Check("podman", "pass", f"{versions.client} at {where}"),
        _podman_runs(runner),
        Check("experimental", "pass", "not needed: experimental is docker's alone"),
    ]


def _podman_runs(runner: Runner) -> Check:
    """Whether the runtime can start a container here. An empty rootfs and a
    missing program get as far as the rlimits without any image."""
    with tempfile.TemporaryDirectory(prefix="xcompile-doctor-") as root:
        try:
            runner.run(*PODMAN.probe_cmd(Path(root)), timeout=60)
        except XcompileError as err:
            text = err.details() if isinstance(err, CommandFailed) else str(err)
            if "setting rlimit" in text:
                return Check(
                    "podman run",
                    "fail",
                    "the runtime cannot set podman's default ulimits (above this host's hard limits)",
                    "add a containers.conf.d/*.conf with [containers] default_ulimits"
                    ' = ["nofile=N:N", "nproc=M:M"] at or under `ulimit -Hn`/`-Hu`',
                )
            if "xcompile-probe" not in text:  # anything but the missing program: it did not start
                return Check("podman run", "fail", f"cannot start a container: {err}", err.hint or "")
    return Check("podman run", "pass", "containers start")


_ENGINE_CHECKS: dict[str, Callable[[Runner], list[Check]]] = {"docker": _docker, "podman": _podman}


def _proof(config: Config, host: dict[str, emulation.Assessment]) -> Check:
    """What the proof needs of this host: the machine probe runs the image's own qemu and needs
    no binfmt entry; a proof command starts programs through the kernel's binfmt, so it needs one."""
    probe = "the machine probe runs each image's own qemu, so it needs no binfmt entry"
    commands = [arch for arch in config.targets if config.proof_command_for(arch) is not None]
    if not commands:
        return Check("proof", "pass", f"{probe}; no proof_command is configured")
    cannot = [arch.name for arch in commands if host[arch.name].status == "fail" and not host[arch.name].native]
    if cannot:
        return Check(
            "proof",
            "fail",
            f"{probe}, but proof_command starts programs through the kernel's binfmt, and"
            f" {', '.join(cannot)} has no working entry",
            emulation.FIX,
        )
    return Check("proof", "pass", f"{probe}; proof_command starts programs through binfmt, whose entries work")


def _qemu(arch: Arch, runner: Runner, qemu_host: Arch) -> Check:
    """The qemu on PATH, which goes into the images: a static ELF for the qemu host."""
    name = arch.qemu_binary
    found = runner.which(name)
    if found is None:
        return Check(name, "warn", "not on PATH", "`xcompile qemu` installs or downloads it (build does it for you)")
    try:
        elf.check_static(found.resolve(), qemu_host, str(found))
    except XcompileError as err:
        return Check(name, "fail", err.message, "install a static build (Debian's qemu-user-static)")
    return Check(name, "pass", f"{found}, static")


def _keys(explicit: Path | None, bundled: Path = trust.BUNDLED_KEYRING) -> Check:
    """The keys a qemu download is checked with. The bundled ones are part of
    the package: an install without them (a wheel missing its data files) can
    verify nothing on a host without Debian's keyring."""
    if explicit is not None:
        return Check("keys", "pass", f"--keyring {explicit} (replaces the bundled and the host's keys)")
    try:
        size = bundled.stat().st_size
    except OSError:
        size = 0
    if size == 0:
        return Check(
            "keys",
            "fail",
            f"the bundled Debian archive keys are missing at {bundled}: this install of xcompile is incomplete",
            "reinstall xcompile (`pip install --force-reinstall xcompile`), or give --keyring",
        )
    host = len(trust.host_keyrings())
    return Check("keys", "pass", f"the bundled Debian archive keys at {bundled}, and {host} keyring(s) of the host's")


class _Pin:
    """Where a build would take the pinned qemu from, as ``settle.ensure_all`` settles it (PATH, apt,
    the download, as the source allows), installing and downloading nothing: of the mirror, its
    Releases and indexes only. Without it, a pin no suite holds was found at the first build (issue 27)."""

    def __init__(self, config: Config, runner: Runner) -> None:
        self.config, self.runner = config, runner
        self.pin = str(config.qemu_version)
        self._mirror: str | XcompileError | None = None

    def checks(self) -> list[Check]:
        return [self._check(arch) for arch in platforms.one_per_emulator(self.config.targets)]

    def _check(self, arch: Arch) -> Check:
        name = f"qemu pin {arch.qemu_binary}"
        status, said, others = self._local(arch)
        if status is not None:
            return Check(name, status, said, "" if status == "pass" else "use --qemu-source download")
        if self.config.qemu_url:  # the download takes that URL, whose version is known once it is had
            return Check(name, "warn", f"{self.pin}: checked once {redact(self.config.qemu_url)} is downloaded")
        found = self.mirror()
        if isinstance(found, XcompileError):
            return Check(name, "fail", found.message, found.hint or "")
        passed = f" ({'; '.join(others)}: not used)" if others else ""
        return Check(name, "pass", f"{self.pin}: {found}{passed}")

    def _local(self, arch: Arch) -> tuple[Status | None, str, list[str]]:
        """PATH's and apt's answer: pass or fail and why, where the source settles it there (else
        None), and what was passed over on the way to the download."""
        source, others = self.config.qemu_source, []
        if source in ("auto", "path"):
            on_path = self.runner.which(arch.qemu_binary)
            version = settle.version_of(on_path, self.runner)[0] if on_path is not None else ""
            said = f"{on_path} on PATH is {version or 'of no known version'}" if on_path else "not on PATH"
            if on_path is not None and pins.satisfies(version, self.pin):
                return "pass", f"{self.pin}: {said}", []
            if source == "path":
                return "fail", f"{said}, not the pinned {self.pin}", []
            others += [said] if on_path else []
        if source == "apt" or (source == "auto" and not self.config.offline and settle.apt_usable(self.runner)):
            candidate = settle.apt_candidate(self.runner, settle.APT_PACKAGES[0]) or ""
            said = f"apt would install {settle.APT_PACKAGES[0]} {candidate or '(none)'}"
            if candidate and pins.satisfies(candidate, self.pin):
                return "pass", f"{self.pin}: {said}", []
            if source == "apt":
                return "fail", f"{said}, not the pinned {self.pin}", []
            others.append(said)
        return None, "", others

    def mirror(self) -> str | XcompileError:
        """The version and suite of the mirror that the pin takes, or why none does: read once."""
        if self._mirror is None:
            from xcompile.archive import fetcher
            from xcompile.commands import qemu_versions

            try:
                shown = qemu_versions.archive(self.config, self.runner).shown
                offers, passed_over = qemu_versions.offers(self.config, self.runner) or ([], [])
                offer = fetcher.pick(offers, self.pin, shown, passed_over)
                self._mirror = f"{offer.version} in {offer.suite} of {shown}, to be downloaded"
            except XcompileError as err:
                self._mirror = err
        return self._mirror


def _docker_config(path: Path) -> Check:
    try:
        edit = dockerconfig.plan(path)
    except XcompileError as err:
        return Check("docker config", "fail", err.message, err.hint or "")
    folder = path.resolve().parent if path.exists() else _existing_parent(path)
    target = path.resolve() if path.exists() else folder
    if not os.access(target, os.W_OK):
        return Check("docker config", "fail", f"{target} is not writable", "fix its permissions, or set DOCKER_CONFIG")
    state = "does not exist yet (it will be created)" if edit.action == "create" else "readable and writable"
    return Check("docker config", "pass", f"{path} {state}")


def _existing_parent(path: Path) -> Path:
    for parent in path.parents:
        if parent.exists():
            return parent
    return Path("/")


def _registry(config: Config, runner: Runner, chosen: Chosen) -> list[Check]:
    """The build's registry check (registry/check.py), as checks, with the chosen engine's credentials."""
    try:
        found = registry_check.for_repo(config.repo, config.insecure, runner, chosen.engine)
    except XcompileError as err:
        return [Check("registry Docker Hub", "warn", f"cannot ask the daemon for its address: {err.message}")]
    return registry_check.check(found, chosen.auth_files)
