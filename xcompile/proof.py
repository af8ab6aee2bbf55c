"""The proof of a built image, before it is pushed: what to look at, and the checks.

It proves three things, at about the cost of one container run:

- the labels: the image config's os/architecture/variant are the target's.
  Read natively, from one ``image inspect``.
- qemu's bytes at each path the image must carry it. Read natively from the
  image's layer folders where the engine keeps them on this host (overlay2),
  else copied out of a created container.
- that it runs: one emulated run prints ``uname -m`` and, where the image
  has python3, ``platform.machine()``. Images without a shell are run with
  python3, else uname, as their entrypoint.

prove.py gathers (it owns the runner); this module judges.
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
from xcompile.platforms import Arch

PYTHON_MACHINE = "import platform; print(platform.machine())"
# One emulated run for images with a shell: uname, then python3 where it exists.
SCRIPT = (
    'if command -v uname >/dev/null 2>&1; then m=$(uname -m) || exit 1; echo "uname $m"; fi; '
    "if command -v python3 >/dev/null 2>&1; then "
    f"p=$(python3 -c '{PYTHON_MACHINE}') || exit 1; echo \"python $p\"; fi"
)


@dataclass(frozen=True)
class Probe:
    """One way to make the image say what machine it is, as entrypoint + arguments."""

    entrypoint: str
    args: tuple[str, ...]
    says: str
    """What its one line of output is: "script" (tagged lines), "uname" or "python"."""


# Tried in order; the next only when the image lacks the previous one's program.
PROBES = (
    Probe("/bin/sh", ("-c", SCRIPT), "script"),
    Probe("python3", ("-c", PYTHON_MACHINE), "python"),
    Probe("uname", ("-m",), "uname"),
)
# Where the layers show what the image has, one emulated program says it all:
# python3 reports both (os.uname() is the syscall `uname -m` makes), else uname.
PYTHON_BOTH = Probe(
    "python3",
    ("-c", 'import os, platform; print("uname", os.uname().machine); print("python", platform.machine())'),
    "script",
)
_PYTHON_PATHS = ("/usr/local/bin/python3", "/usr/bin/python3")
_UNAME_PATHS = ("/bin/uname", "/usr/bin/uname")


def probes_for(config: ImageConfig) -> tuple[Probe, ...]:
    """The probes to try, cheapest first: a single program where the layers
    show what the image has, then the general chain should that fail."""
    if not config.layer_dirs:
        return PROBES
    if any(exists_in_layers(config.layer_dirs, path) for path in _PYTHON_PATHS):
        return (PYTHON_BOTH, *PROBES)
    if any(exists_in_layers(config.layer_dirs, path) for path in _UNAME_PATHS):
        return (PROBES[2], *PROBES)
    return PROBES


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
            raise ProofFailed("image inspect printed something that is not JSON") from None
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
    """What the image said about itself under emulation."""

    uname: str | None
    python: str | None
    """platform.machine() of its python3; None: the image has no python3."""
    probe: str = "script"


def read_probe(probe: Probe, output: str) -> Machine:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    if probe.says == "script":
        said = dict(line.split(" ", 1) for line in lines if " " in line)
        return Machine(said.get("uname"), said.get("python"), probe.says)
    value = lines[-1] if lines else ""
    if probe.says == "python":
        return Machine(None, value, probe.says)
    return Machine(value, None, probe.says)


# --- the checks ---------------------------------------------------------------


def check_labels(arch: Arch, config: ImageConfig) -> None:
    os_, architecture, variant = [*config.platform.split("/"), "", "", ""][:3]
    if not config.variant_known:
        # The build's --platform set it; os and architecture are still checked.
        variant = arch.variant or ""
    if not arch.matches(os_, architecture, variant):
        raise ProofFailed(
            f"image config says {config.platform.rstrip('/')}, not {arch.platform}",
            hint="the base or the build ran for the wrong platform (an emulated build labelled with"
            " the host's architecture?)",
        )


def check_qemu_inside(seen: QemuSeen) -> None:
    for path, sha256 in seen.found:
        if sha256 is None:
            raise ProofFailed(f"{path} is missing from the image")
        if sha256 != seen.wanted:
            raise ProofFailed(f"{path} in the image is not the qemu that was copied in")


def check_machine(arch: Arch, machine: Machine) -> None:
    if machine.uname is None and machine.python is None:
        raise ProofFailed("the image has a shell, but neither uname nor python3 to say what machine it is")
    wanted = arch.uname_m
    if wanted is None:
        return  # i386 reports the host kernel's view
    if machine.uname is not None and machine.uname != wanted:
        raise ProofFailed(f"`uname -m` in the image printed {machine.uname!r}, not {wanted!r}")
    if machine.python is not None and machine.python != wanted:
        raise ProofFailed(f"python3 in the image reports {machine.python!r}, not {wanted!r}")


# --- a run that failed, in words ----------------------------------------------


def run_failed(arch: Arch, failure: Failure, err: CommandFailed, program: str = "docker") -> ProofFailed:
    if failure.kind == "timeout":  # the runner's timeout stopped it
        return ProofFailed(
            f"the proof's emulated run of the image did not end: {err.reason}",
            hint=f"a slow image needs a longer --proof-timeout; a container that `{program} ps` still shows as"
            " Up after its program ended means the engine lost its exit, and restarting the engine clears it",
        )
    if failure.kind == "exec-format":
        return ProofFailed(
            f"the image does not run: 'exec format error', so this host has no working binfmt entry for {arch.name}",
            hint="run `xcompile doctor`",
        )
    if failure.kind == "missing-file":
        return ProofFailed(
            f"the image does not run: 'no such file or directory', so the emulator that binfmt names for"
            f" {arch.name} is not in the image",
            hint="run `xcompile doctor` to see where binfmt looks for it",
        )
    return ProofFailed(f"running the image failed: {err}")


def nothing_to_run() -> ProofFailed:
    names = ", ".join(probe.entrypoint for probe in PROBES)
    return ProofFailed(
        f"the image has none of {names} to prove that it runs",
        hint="prove it yourself, or build with --no-verify",
    )
