"""The proof of a built image, before it is pushed: what to look at, and the checks.

It proves three things, at about the cost of one container run:

- the labels: the image config's os/architecture/variant are the target's.
  Read natively, from one ``image inspect``.
- qemu's bytes at each path the image must carry it. Read natively from the
  image's layer folders where the engine keeps them on this host (overlay2),
  else copied out of a created container.
- that the qemu it ships runs it: one run whose entrypoint is the image's
  own qemu, running python3 (else uname) to print the machine. So the proof
  covers the bytes that hosts without the F flag will run, whatever this
  host's binfmt entry says; the probe needs no binfmt entry at all.

pipeline/prove.py gathers (it owns the runner); this module judges.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xcompile.engine import Failure
from xcompile.errors import CommandFailed, ProofFailed
from xcompile.host import emulation
from xcompile.host.platforms import Arch

PYTHON_PATHS = ("/usr/local/bin/python3", "/usr/bin/python3")
UNAME_PATHS = ("/bin/uname", "/usr/bin/uname")
MACHINE = "import os; print(os.uname().machine)"
"""All python3 needs to say: the machine the program sees (platform.machine() is this, and `uname -m`'s syscall)."""


@dataclass(frozen=True)
class Probe:
    """A program of the image, and its arguments, that prints the machine it runs on.
    It is run by the image's own qemu (the container's entrypoint), so no binfmt entry is needed."""

    program: str
    args: tuple[str, ...]

    @property
    def says(self) -> str:
        return "python3" if "python" in self.program else "uname"


# Tried in order where the layers cannot be read; the next only when the image lacks the program.
# -I -S: no site, no user paths: what is left of python's start under emulation is the interpreter's own.
PROBES = tuple(Probe(path, ("-I", "-S", "-c", MACHINE)) for path in PYTHON_PATHS) + tuple(
    Probe(path, ("-m",)) for path in UNAME_PATHS
)


def probes_for(config: ImageConfig) -> tuple[Probe, ...]:
    """The probes to try: where the layers show what the image has, just the first program
    it has (none: nothing to run), else every probe in turn."""
    if not config.layer_dirs:
        return PROBES
    return tuple(probe for probe in PROBES if exists_in_layers(config.layer_dirs, probe.program))[:1]


@dataclass(frozen=True)
class ImageConfig:
    """What one ``image inspect`` says of a built image."""

    platform: str
    """os/architecture/variant."""
    id: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    layer_dirs: tuple[Path, ...] = ()
    """Its layer folders, topmost first, when the engine keeps them readable on this host."""
    variant_known: bool = True
    """False where the engine's inspect has no Variant field at all (podman 4)."""

    @classmethod
    def from_inspect(cls, text: str) -> ImageConfig:
        """From `docker image inspect IMAGE` (a JSON array of one). Empty text (a dry run) gives an empty record."""
        if not text.strip():
            return cls("")
        try:
            found = json.loads(text)
        except json.JSONDecodeError:
            msg = "image inspect printed something that is not JSON"
            raise ProofFailed(msg) from None
        info: dict[str, Any] = found[0] if isinstance(found, list) and found else {}
        platform = "/".join(str(info.get(key) or "") for key in ("Os", "Architecture", "Variant"))
        config = info.get("Config") or {}
        return cls(
            platform=platform,
            id=str(info.get("Id") or ""),
            labels={str(k): str(v) for k, v in (config.get("Labels") or {}).items()},
            layer_dirs=_layer_dirs(info.get("GraphDriver") or {}),
            variant_known="Variant" in info,
        )


def _layer_dirs(driver: dict[str, Any]) -> tuple[Path, ...]:
    # overlay2 names the image's top layer (UpperDir) and the ones below it
    # (LowerDir, topmost first). They are on this host only when the daemon
    # is local, and readable only as root: check, else fall back.
    if driver.get("Name") not in ("overlay2", "overlay"):
        return ()
    data = driver.get("Data") or {}
    dirs = [data.get("UpperDir") or "", *str(data.get("LowerDir") or "").split(":")]
    paths = tuple(Path(d) for d in dirs if d)
    if not paths or not all(p.is_dir() and os.access(p, os.R_OK | os.X_OK) for p in paths):
        return ()
    return paths


def _topmost(layer_dirs: tuple[Path, ...], path: str) -> tuple[Path, int] | None:
    """The entry at ``path`` in the topmost layer that has one, with its mode;
    None where no layer has one, or a whiteout (a 0/0 character device) deletes it."""
    for layer in layer_dirs:
        candidate = layer / path.lstrip("/")
        try:
            mode = candidate.lstat().st_mode
        except (FileNotFoundError, NotADirectoryError):
            continue
        return None if stat.S_ISCHR(mode) else (candidate, mode)
    return None


def find_in_layers(layer_dirs: tuple[Path, ...], path: str) -> Path | None:
    """The regular file at ``path`` as the image sees it, or None where it has none."""
    found = _topmost(layer_dirs, path)
    return found[0] if found is not None and stat.S_ISREG(found[1]) else None


def exists_in_layers(layer_dirs: tuple[Path, ...], path: str) -> bool:
    """Is there a file or link at ``path`` as the image sees it?"""
    return _topmost(layer_dirs, path) is not None


@dataclass(frozen=True)
class QemuSeen:
    wanted: str
    """SHA256 of the qemu copied in."""
    found: tuple[tuple[str, str | None], ...]
    """(path in the image, SHA256 of what is there or None), for each place qemu must be."""


@dataclass(frozen=True)
class Machine:
    """What the image said about itself, run by its own qemu."""

    value: str
    """The machine it printed (armv7l, aarch64, ...)."""
    probe: Probe


def read_probe(probe: Probe, output: str) -> Machine:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return Machine(lines[-1] if lines else "", probe)


# --- the checks ---------------------------------------------------------------


def check_labels(arch: Arch, config: ImageConfig) -> None:
    os_, architecture, variant = [*config.platform.split("/"), "", "", ""][:3]
    if not config.variant_known:
        # The build's --platform set it; os and architecture are still checked.
        variant = arch.variant or ""
    if not arch.matches(os_, architecture, variant):
        msg = f"image config says {config.platform.rstrip('/')}, not {arch.platform}"
        raise ProofFailed(
            msg,
            hint="the base or the build ran for the wrong platform (an emulated build labelled with"
            " the host's architecture?)",
        )


def check_qemu_inside(seen: QemuSeen) -> None:
    for path, sha256 in seen.found:
        if sha256 is None:
            msg = f"{path} is missing from the image"
            raise ProofFailed(msg)
        if sha256 != seen.wanted:
            msg = f"{path} in the image is not the qemu that was copied in"
            raise ProofFailed(msg)


def check_machine(arch: Arch, machine: Machine) -> None:
    wanted = arch.uname_m
    if wanted is None:
        return  # i386 reports the host kernel's view
    if machine.value != wanted:
        said = "`uname -m`" if machine.probe.says == "uname" else "python3"
        msg = f"{said} in the image, run by its own qemu, printed {machine.value!r}, not {wanted!r}"
        raise ProofFailed(msg)


# --- a run that failed, in words ----------------------------------------------


def run_failed(qemu: str, probe: Probe, failure: Failure, err: CommandFailed, program: str) -> ProofFailed:
    """Why the image's own qemu (at ``qemu`` in it) did not print the machine."""
    if failure.kind == "timeout":  # the runner's timeout stopped it
        return ProofFailed(
            f"the proof's emulated run of the image did not end: {err.reason}",
            hint=f"a slow image needs a longer --proof-timeout; a container that `{program} ps` still shows as"
            " Up after its program ended means the engine lost its exit, and restarting the engine clears it",
        )
    if failure.kind == "exec-format":
        return ProofFailed(
            f"{qemu} in the image is not a program this host can run ('exec format error')",
            hint="the qemu that ships must be a static binary for the machine that builds and runs the images",
        )
    if "Unable to reserve" in err.output:
        return ProofFailed(
            f"the image's own qemu ({qemu}) cannot reserve its guest's address space: {err.last_words}",
            hint="where it runs nested (a --qemu-host of another CPU than the engine's machine), the engine"
            " machine's qemu for that CPU is too old to host it (Debian's 7.2 is; 10.0 is not): register a newer"
            " one with F",
        )
    return ProofFailed(
        f"the image's own qemu ({qemu}) does not run its {probe.program}: {err.last_words}",
        hint="hosts without the binfmt F flag would run this qemu; use another (--qemu-version, --qemu-source)",
    )


def command_failed(arch: Arch, command: str, err: CommandFailed, failure: Failure, lines: int = 5) -> ProofFailed:
    """The user's proof command failed or did not end: its last lines of output."""
    if failure.kind in ("exec-format", "missing-file") and err.retcode in (126, 127, 1):
        return ProofFailed(
            f"the proof command `{command}` cannot start here: {failure.words}, so this host has no working binfmt"
            f" entry for {arch.name} (a proof command starts programs through the kernel's binfmt; the machine"
            " probe needs none)",
            hint=f"run {emulation.FIX}",
        )
    tail = [line for line in err.output.splitlines() if line.strip()][-lines:]
    said = " | ".join(tail) if tail else "no output"
    if err.retcode is None:
        return ProofFailed(
            f"the proof command `{command}` did not end: {err.reason}; last output: {said}",
            hint="a slow command needs a longer --proof-timeout",
        )
    return ProofFailed(f"the proof command `{command}` exited {err.retcode}; last output: {said}")


def nothing_to_run() -> ProofFailed:
    names = ", ".join(dict.fromkeys(probe.program for probe in PROBES))
    return ProofFailed(
        f"the image has none of {names} to prove that it runs",
        hint="prove it yourself, or build with --no-verify",
    )
