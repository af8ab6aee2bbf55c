"""The command line: the only module that prints or chooses an exit code.

Exit codes (see the README): 0 every image done, 1 some image failed,
2 bad usage/configuration/input, 3 environment problem, 130 interrupted.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TextIO

from plumbum import cli
from plumbum.cli.application import ShowCompletion, ShowHelp, ShowHelpAll, ShowVersion
from plumbum.cli.switches import SwitchError

from xcompile import __version__, config, dockerconfig, doctor, engine, join, matrix, platforms, qemu, report
from xcompile.errors import Interrupted, UsageError, XcompileError
from xcompile.pipeline import Pipeline, Result
from xcompile.runner import Runner

if TYPE_CHECKING:
    from xcompile import download

_PLUMBUM_EXITS = (ShowHelp, ShowHelpAll, ShowVersion, ShowCompletion)


class Console:
    """Log lines go to stderr (like `set -x`), results to stdout, so that
    `path=$(xcompile qemu)` captures just the path."""

    def __init__(self, log: TextIO | None = None, out: TextIO | None = None) -> None:
        self.log = log or sys.stderr
        self.out = out or sys.stdout
        self._lock = threading.Lock()
        self._quarters: dict[str, int] = {}

    def echo(self, line: str, label: str | None = None) -> None:
        # Concurrent images each prefix their lines, so output stays readable.
        text = f"[{label}] {line}" if label else line
        with self._lock:
            print(text, file=self.log, flush=True)

    def say(self, line: str, label: str | None = None) -> None:
        self.echo(line if label else f"xcompile: {line}", label)

    def result(self, text: str) -> None:
        with self._lock:
            print(text, file=self.out, flush=True)

    def progress(self, event: download.ProgressEvent) -> None:
        """A byte bar on a terminal; off one, a line at start, each quarter, and the end."""
        total = event.total_bytes
        done_mb = event.done_bytes / 1e6
        size = f"{done_mb:.1f}/{total / 1e6:.1f} MB" if total else f"{done_mb:.1f} MB"
        with self._lock:
            if self.log.isatty():
                filled = int(30 * event.done_bytes / total) if total else 0
                bar = "#" * filled + "." * (30 - filled)
                end = "\n" if event.finished else ""
                print(f"\r{event.what} [{bar}] {size}", end=end, file=self.log, flush=True)
                return
            quarter = int(4 * event.done_bytes / total) if total else 0
            if event.finished or event.done_bytes == 0 or quarter > self._quarters.get(event.what, 0):
                self._quarters[event.what] = quarter
                state = "done" if event.finished else "downloading"
                print(f"{event.what}: {state} {size}", file=self.log, flush=True)


class _Setting(cli.SwitchAttr[Any]):
    """A switch for one ``Config`` key, named once: its spellings come from the
    key and ``config.ALIASES``, and its text goes to ``config.load`` unparsed
    (``config.KEYS`` parses it, so a switch and a file say the same errors)."""

    def __init__(self, key: str, help: str, argname: str = "VALUE") -> None:
        self.key = key
        names = [f"--{name}" for name in config.switch_names(key)]
        super().__init__(names, str, default=None, list=config.repeatable(key), argname=argname, help=help)

    def given(self, value: Any) -> Any:
        return value or None


class _Toggle(cli.Flag):
    """A flag for a true/false ``Config`` key: ``--KEY`` where it defaults to
    false, ``--no-KEY`` where it defaults to true (--no-push)."""

    def __init__(self, key: str, help: str, *, short: str | None = None) -> None:
        self.key = key
        self.turns_off = bool(config.DEFAULTS[key])
        prefix = "--no-" if self.turns_off else "--"
        names = [f"{prefix}{name}" for name in config.switch_names(key)] + ([short] if short else [])
        super().__init__(names, help=help)

    def given(self, value: Any) -> bool | None:
        return (not self.turns_off) if value else None


class _Session(NamedTuple):
    """What every command starts from."""

    console: Console
    settings: config.Config
    runner: Runner


class _Switches(cli.Application):
    """Switches every command takes."""

    config_file = cli.SwitchAttr(
        "--config", str, default=None, argname="FILE",
        help="read settings from FILE ([xcompile] in .cfg/.ini, [tool.xcompile] in .toml)",
    )  # fmt: skip
    arches = _Setting(
        "arches", argname="ARCH",
        help=f"target architecture (repeatable); known: {', '.join(a.name for a in platforms.ARCHES)}",
    )  # fmt: skip
    dry_run = _Toggle("dry_run", "print every command and edit, run and write nothing")
    verbose = _Toggle("verbose", "show failing commands' output and tracebacks", short="-v")

    def given(self) -> dict[str, Any]:
        """The switches given on the command line, the parent's first."""
        values: dict[str, Any] = {}
        if isinstance(self.parent, _Switches):
            values.update(self.parent.given())
        if self.config_file is not None:
            values["config_file"] = self.config_file
        for attr in dir(type(self)):
            switch = getattr(type(self), attr)
            if isinstance(switch, (_Setting, _Toggle)):
                value = switch.given(getattr(self, attr))
                if value is not None:
                    values[switch.key] = value
        return values

    def load_config(self, console: Console) -> config.Config:
        given = self.given()
        config_file = given.pop("config_file", None)
        settings, warnings = config.load(
            given,
            env=os.environ,
            cwd=Path.cwd(),
            home=Path.home(),
            config_file=Path(config_file) if config_file else None,
        )
        for warning in warnings:
            console.say(f"warning: {warning}")
        return settings

    def session(self) -> _Session:
        console = Console()
        settings = self.load_config(console)
        return _Session(console, settings, Runner(console.echo, dry_run=settings.dry_run))

    # Plumbum prints a switch error followed by the whole help text; we want
    # one line and exit code 2, like every other bad input.
    def _parse_args(self, argv: list[str]) -> Any:
        with self._one_line_errors():
            return super()._parse_args(argv)

    def _validate_args(self, swfuncs: Any, tailargs: Any) -> Any:
        with self._one_line_errors():
            return super()._validate_args(swfuncs, tailargs)

    @contextlib.contextmanager
    def _one_line_errors(self) -> Iterator[None]:
        try:
            yield
        except _PLUMBUM_EXITS:
            raise
        except SwitchError as err:
            raise UsageError(str(err), hint=f"see `{self.PROGNAME} --help`") from None


class _QemuSwitches(_Switches):
    """Where the static qemu comes from, when it is not on PATH."""

    mirror = _Setting("mirror", "Debian archive to download qemu from", argname="URL")
    suite = _Setting("suite", "its suite: stable (the default), oldstable, testing, or a codename", argname="SUITE")
    keyring = _Setting(
        "keyring", "check its signature with FILE only (default: Debian's keys, bundled, and the host's)",
        argname="FILE",
    )  # fmt: skip
    allow_unsigned = _Toggle("allow_unsigned", "take an archive whose signature cannot be verified (warns)")
    offline = _Toggle("offline", "use only qemu already on PATH or in the cache")
    qemu_url = _Setting("qemu_url", "a static qemu binary to download", argname="URL")
    qemu_sha256 = _Setting("qemu_sha256", "its SHA256 (required)", argname="HEX")
    qemu_source = _Setting(
        "qemu_source", f"where qemu comes from: {', '.join(config.QEMU_SOURCES)}; auto (the default) tries PATH,"
        " then apt, then the download", argname="SOURCE",
    )  # fmt: skip


class _EngineSwitches(_QemuSwitches):
    """The container engine, for the commands that drive one."""

    engine = _Setting(
        "engine", f"container engine: {', '.join(engine.CHOICES)} (default docker; auto: docker when its daemon"
        " answers, else podman)", argname="ENGINE",
    )  # fmt: skip


class _BuildSwitches(_EngineSwitches):
    image = _Setting("image", "official image to start from (base: <arch namespace>/NAME)", argname="NAME")
    base = _Setting(
        "base", "foreign base image name, without tag; {namespace} stands for the arch's namespace", argname="IMAGE"
    )
    repo = _Setting("repo", "repository to build and push to", argname="NAME")
    tags = _Setting("tags", "a tag to build (repeatable; replaces the configured list)", argname="TAG")
    push = _Toggle("push", "build only, do not push")
    verify = _Toggle("verify", "do not prove each image (labels, qemu inside, runs) before pushing")
    manifest = _Toggle("manifest", "with several --arch, do not join each tag in a manifest list")
    jobs = _Setting("jobs", f"images at once (default {config.DEFAULT_JOBS})", argname="N")
    proof_timeout = _Setting(
        "proof_timeout", f"seconds each image's emulated proof run may take (default {config.DEFAULT_PROOF_TIMEOUT})",
        argname="SECONDS",
    )  # fmt: skip
    keep_going = _Toggle("keep_going", "go on with the other images after a failure")
    report = _Setting("report", "also write the summary as JSON", argname="FILE")
    rebuild = _Setting(
        "rebuild", "changed (the default): only images whose base, qemu or recipe differ from the registry's;"
        " always: every image", argname="WHEN",
    )  # fmt: skip
    pull = _Setting("pull", "pull each base first: always (the default), missing, never", argname="POLICY")
    only = _Setting(
        "only", "build, prove and push only this cell (repeatable), as a CI matrix job does; never a manifest"
        " list (see `xcompile matrix` and `xcompile join`)", argname="TAG/ARCH",
    )  # fmt: skip

    def build(self) -> int:
        console, settings, runner = self.session()
        if settings.dry_run:
            console.say(f"dry run, settings from {settings.source}: nothing runs, nothing is written")
        pipeline = Pipeline(settings, runner, console.say, console.progress)
        try:
            result = pipeline.run()
        except KeyboardInterrupt:
            if pipeline.result is not None:  # the summary still tells the truth: what finished, what not
                with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone
                    self._summary(console, settings, pipeline.result)
            raise
        self._summary(console, settings, result)
        return 0 if result.ok else 1

    @staticmethod
    def _summary(console: Console, settings: config.Config, result: Result) -> None:
        console.result(report.table(result))
        if settings.report and not settings.dry_run:
            report.write(result, settings.report)
            console.say(f"report written to {settings.report}")


class XcompileApp(_BuildSwitches):
    """Build cross-compile-ready base images: a foreign base image plus a static qemu."""

    PROGNAME = "xcompile"
    VERSION = __version__
    DESCRIPTION = (
        "Build cross-compile-ready Docker base images (a foreign base image plus a static "
        "qemu at /usr/bin/qemu-<arch>-static) and push them. Without a command, runs `build`."
    )

    def main(self, *args: str) -> int:
        if args:
            near = difflib.get_close_matches(args[0], self._subcommands, n=1)
            hint = f"did you mean '{near[0]}'?" if near else f"commands: {', '.join(self._subcommands)}"
            raise UsageError(f"unknown command '{args[0]}'", hint=hint)
        if self.nested_command:
            return 0
        return self.build()


@XcompileApp.subcommand("build")
class BuildCommand(_BuildSwitches):
    """Run the whole flow: qemu, cp, experimental, then build and push every image."""

    def main(self) -> int:
        return self.build()


@XcompileApp.subcommand("matrix")
class MatrixCommand(_BuildSwitches):
    """Print the configured cells (tag x arch) as JSON, for a CI matrix."""

    fmt = cli.SwitchAttr(
        "--format", str, default="json", argname="FORMAT",
        help="json: a list of {tag, arch, only}; github: one line {\"include\": [...]} for $GITHUB_OUTPUT;"
        " lines: one TAG/ARCH a line",
    )  # fmt: skip

    def main(self) -> int:
        if self.fmt not in matrix.FORMATS:
            raise UsageError(f"--format: expected one of {', '.join(matrix.FORMATS)}, got {self.fmt!r}")
        console, settings, _ = self.session()
        console.result(matrix.render(settings, self.fmt))
        return 0


@XcompileApp.subcommand("join")
class JoinCommand(_BuildSwitches):
    """Push one manifest list per configured tag from parts that `build --only` pushed."""

    def main(self) -> int:
        console, settings, runner = self.session()
        for done in join.join(settings, runner, console.say):
            state = "planned" if settings.dry_run else "joined" if done.changed else "unchanged"
            console.result(f"{done.name}  {', '.join(done.platforms)}  {state}  {done.digest or '-'}")
        return 0


@XcompileApp.subcommand("qemu")
class QemuCommand(_QemuSwitches):
    """Find, install or download the static qemu for each target and print its path."""

    dest = cli.SwitchAttr("--dest", str, default=None, argname="DIR", help="also copy the binary into DIR")

    def main(self) -> int:
        console, settings, runner = self.session()
        dest = Path(self.dest) if self.dest else None
        if dest is not None and not dest.is_dir():
            raise UsageError(f"--dest {dest}: no such folder")
        for found in qemu.ensure_all(settings.targets, runner, settings, console.say, console.progress):
            path = found.path if dest is None else qemu.copy_to(found, dest, runner)
            console.result(str(path))
        return 0


@XcompileApp.subcommand("experimental")
class ExperimentalCommand(_Switches):
    """Set "experimental": "enabled" in the docker client config."""

    def main(self) -> int:
        console, settings, _ = self.session()
        edit = dockerconfig.enable_experimental(settings.docker_config, dry_run=settings.dry_run)
        console.result(edit.describe(done=not settings.dry_run))
        return 0


@XcompileApp.subcommand("doctor")
class DoctorCommand(_EngineSwitches):
    """Check this host for building and running foreign images; --fix repairs binfmt."""

    repo = _Setting("repo", "repository whose registry to check", argname="NAME")
    push = _Toggle("push", "do not check the registry")
    as_json = cli.Flag("--json", help="print the checks as JSON")
    fix = cli.Flag("--fix", help="(root) mount binfmt_misc and register missing or broken qemu entries")
    no_fix_binary = cli.Flag("--no-fix-binary", help="with --fix: register without the F flag, as older hosts do")

    def main(self) -> int:
        if self.no_fix_binary and not self.fix:
            raise UsageError("--no-fix-binary goes with --fix")
        console, settings, loud = self.session()
        if self.fix:
            doctor.fixes(settings, loud, fix_binary=not self.no_fix_binary, show=console.echo)
        # The probes are an implementation detail here; -v shows them.
        quiet = Runner(console.echo if settings.verbose else (lambda line, label: None))
        found = doctor.checks(settings, quiet)
        if self.as_json:
            console.result(json.dumps(doctor.as_json(found), indent=2))
        else:
            console.result(doctor.table(found))
        return 3 if doctor.worst(found) == "fail" else 0


STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
"""Stop like Ctrl-C: CI cancels a job with SIGTERM, and `timeout` sends it too."""


def _on_stop_signal(signum: int, frame: object) -> None:
    # Once: a second signal must not cut the cleanup (children, temp folder) short.
    for other in STOP_SIGNALS:
        signal.signal(other, signal.SIG_IGN)
    raise Interrupted(signum)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = any(arg in ("-v", "--verbose") for arg in args)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {signum: signal.signal(signum, _on_stop_signal) for signum in STOP_SIGNALS}
    try:
        return _main(args, verbose)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _main(args: list[str], verbose: bool) -> int:
    try:
        _, code = XcompileApp.run(["xcompile", *args], exit=False)
        return code
    except XcompileError as err:
        print(f"xcompile: error: {err}", file=sys.stderr)
        if verbose:
            details = err.details()
            if details:
                print(details, file=sys.stderr)
            traceback.print_exc()
        return err.exit_code
    except KeyboardInterrupt as stop:
        signum = stop.signum if isinstance(stop, Interrupted) else signal.SIGINT
        by = "" if signum == signal.SIGINT else f" by {signal.Signals(signum).name}"
        with contextlib.suppress(OSError):
            print(f"xcompile: interrupted{by}", file=sys.stderr)
        return 128 + signum
    except Exception as err:  # a bug: still one line unless -v
        print(f"xcompile: internal error: {type(err).__name__}: {err} (run with -v for the traceback)", file=sys.stderr)
        if verbose:
            traceback.print_exc()
        return 1
