"""Every error xcompile reports, each class with the exit code the README documents.

Errors are raised deep down and translated to one line and an exit code once,
in ``cli.main`` (the pipx model). They carry what ``--verbose`` shows: argv,
exit status and output of the command that failed.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Any

from xcompile.urls import redact


class XcompileError(Exception):
    """Base class. ``str(err)`` is the one line the user sees."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} — {self.hint}" if self.hint else self.message

    def details(self) -> str:
        """Extra lines for --verbose; empty when there is nothing more to say."""
        return ""


class UsageError(XcompileError):
    """Bad switches, configuration or input: exit 2."""

    exit_code = 2


class ConfigError(UsageError):
    """A configuration file, key or value that cannot be used."""


class EnvironmentProblem(XcompileError):
    """The host lacks something xcompile needs (docker, a daemon, qemu): exit 3."""

    exit_code = 3


class ProgramMissing(EnvironmentProblem):
    def __init__(self, program: str, hint: str | None = None) -> None:
        super().__init__(f"{program}: not found on PATH", hint=hint)
        self.program = program


class EngineUnavailable(EnvironmentProblem):
    """The engine's client is there but cannot work: docker's daemon does not answer, or podman cannot run."""


class QemuUnavailable(EnvironmentProblem):
    """No static qemu could be found, installed or fetched."""


class DownloadError(QemuUnavailable):
    """A file could not be fetched (exit 3). ``status`` is the HTTP status, if there was one."""

    def __init__(self, url: str, reason: str, *, status: int | None = None, hint: str | None = None) -> None:
        url = redact(url)
        super().__init__(f"download of {url} failed: {reason}", hint=hint)
        self.url = url
        self.status = status


class VerificationError(XcompileError):
    """What the mirror served does not match what the signed chain promises (exit 1)."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None, detail: str = "") -> None:
        super().__init__(message, hint=hint)
        self.detail = detail

    def details(self) -> str:
        return self.detail


class ReleaseExpired(VerificationError):
    """A Release past its Valid-Until: the mirror is stale, or replays an old one (exit 1)."""


class ProofFailed(XcompileError):
    """A built image is not what it claims to be, or does not run (exit 1): it is not pushed.

    Distinct from ``VerificationError``, which is about downloads and their signed chain.
    """

    exit_code = 1
    run: Any = None
    """Where the user's proof command failed: its run (plan.ProofRun), for the report."""


class JoinFailed(XcompileError):
    """A part that `xcompile join` needs is missing or is not what its name says (exit 1)."""


class RegistryUnreadable(XcompileError):
    """The registry would not say what it holds (exit 1, but callers build instead).
    ``why``: the reason alone, where the registry could not be reached at all."""

    def __init__(self, message: str, *, why: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.why = why


class ImageDiffers(XcompileError):
    """`xcompile verify`: an image is not what xcompile makes from the base and qemu its labels record (exit 1)."""


class LayerRefused(ImageDiffers):
    """`xcompile verify`: a layer it will not read on: too large, a bomb, or an entry xcompile never writes (exit 1)."""


class CannotTell(XcompileError):
    """`xcompile verify`: the registry or the archive cannot say whether an image is what it claims (exit 3)."""

    exit_code = 3


class BaseUnavailable(XcompileError):
    """An image's base can be neither pulled nor found on this host, or the one here is made
    for another platform: that image fails (exit 1)."""


class CacheError(EnvironmentProblem):
    """The download cache cannot be written (exit 3)."""


class PackageMissing(QemuUnavailable):
    """The archive has no qemu-user-static for this architecture, or the package lacks the binary (exit 3)."""


class Stopped(XcompileError):
    """A program not started because the run is being stopped (a signal, Ctrl-C)."""

    def __init__(self, program: str) -> None:
        super().__init__(f"{program}: not started, the run is being interrupted")


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread so that it unwinds like
    Ctrl-C's KeyboardInterrupt; the exit code is 128 + the signal number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class CommandFailed(XcompileError):
    """A program ran and failed (or timed out)."""

    exit_code = 1

    def __init__(
        self,
        argv: Sequence[str],
        retcode: int | None,
        stdout: str = "",
        stderr: str = "",
        *,
        reason: str | None = None,
        status: str | None = None,
    ) -> None:
        self.argv = tuple(argv)
        self.retcode = retcode
        self.stdout = stdout
        self.stderr = stderr
        self.reason = reason
        why = reason or _last_line(stderr) or _last_line(stdout) or "no output"
        status = status or ("timed out" if retcode is None else f"exit {retcode}")
        super().__init__(
            f"{self.argv[0]} {self.argv[1] if len(self.argv) > 1 else ''}".rstrip() + f" failed ({status}): {why}"
        )

    @property
    def output(self) -> str:
        """What the program said, stderr then stdout: the text its failure is judged by."""
        return f"{self.stderr}\n{self.stdout}".strip("\n")

    @property
    def last_words(self) -> str:
        """The last line it said, or the one-line error where it said nothing."""
        lines = [line.strip() for line in self.output.splitlines() if line.strip()]
        return lines[-1] if lines else str(self)

    def details(self) -> str:
        parts = [f"command: {shlex.join(self.argv)}", f"exit status: {self.retcode}"]
        if self.stdout.strip():
            parts.append("stdout:\n" + self.stdout.rstrip())
        if self.stderr.strip():
            parts.append("stderr:\n" + self.stderr.rstrip())
        return "\n".join(parts)


class OutputTooLarge(CommandFailed):
    """A program that printed more than its caller reads (a credential helper's
    800 MB): stopped there, having been held in memory no further."""

    def __init__(self, argv: Sequence[str], limit: int) -> None:
        super().__init__(argv, None, reason=f"it printed more than {limit >> 10} KiB", status="stopped")
        self.limit = limit


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""
