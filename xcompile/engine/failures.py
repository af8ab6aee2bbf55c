"""A failed engine command, in words: one reading of what it said, for the steps to act on."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from xcompile.errors import CommandFailed, EngineUnavailable

DOCKER_PROBE_TIMEOUT = 30.0
"""Seconds `docker version` may take to answer before the daemon counts as not answering."""


FailureKind = Literal[
    "timeout", "unreachable", "denied", "missing-program", "exec-format", "missing-file", "missing-image", "other"
]


@dataclass(frozen=True)
class Failure:
    """What a failed engine command meant."""

    kind: FailureKind
    words: str
    """The words that said so, else the last line the command printed."""


_UNREACHABLE = re.compile(
    r"connection refused|connection reset|no such host|i/o timeout|unexpected EOF|server misbehaving", re.IGNORECASE
)
_DENIED = re.compile(r"denied|unauthorized|no basic auth credentials|authentication required", re.IGNORECASE)
_MISSING_IMAGE = re.compile(r"no such image|no such manifest|manifest unknown|not found", re.IGNORECASE)


def classify(err: CommandFailed, program: str | None = None) -> Failure:
    """One reading of a failed engine command. ``program``: the program a
    `run` started, so that "the image has no such program" is told apart."""
    text = err.output
    if err.retcode is None:
        return Failure("timeout", err.reason or "timed out")
    if program is not None:
        name = re.escape(program)
        found = re.search(
            rf"executable file not found|stat {name}: no such file|exec: \"{name}\": stat"
            # qemu run as the entrypoint, on a program the image lacks (10.x; 7.2 says nothing)
            rf"|Error while loading {name}: No such file|Could not open '{name}'",
            text,
        )
        if found:
            return Failure("missing-program", found.group(0))
    for kind, pattern in (
        ("unreachable", _UNREACHABLE),
        ("exec-format", re.compile("exec format error")),
        ("missing-file", re.compile("no such file or directory")),
        ("denied", _DENIED),
        ("missing-image", _MISSING_IMAGE),
    ):
        found = pattern.search(text)
        if found:
            return Failure(kind, found.group(0))  # type: ignore[arg-type]  # the table's kinds are FailureKinds
    return Failure("other", err.last_words)


def docker_unavailable(err: CommandFailed) -> EngineUnavailable:
    text = err.stderr or err.stdout
    if err.retcode is None:
        return EngineUnavailable(
            f"docker daemon did not answer within {DOCKER_PROBE_TIMEOUT:g} s",
            hint="check that dockerd is running and healthy",
        )
    found = re.search(r"Cannot connect to the Docker daemon at (\S+?)\.? Is the docker daemon running", text)
    if found:
        return EngineUnavailable(
            f"docker daemon not reachable at {found.group(1)}",
            hint="start it (e.g. `sudo systemctl start docker`, or `sudo dockerd &`), or use `--engine podman`",
        )
    if "permission denied" in text.lower():
        return EngineUnavailable(
            "permission denied on the docker daemon's socket",
            hint="add yourself to the docker group, or run as root",
        )
    return EngineUnavailable(f"docker daemon not usable: {err}")
