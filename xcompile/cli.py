"""The command line: the only module that prints or chooses an exit code.

Exit codes (docs/configuration.md): 0 every image done, 1 some image failed,
2 bad usage/configuration/input, 3 environment problem, 128 + N on signal N.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from plumbum import cli
from plumbum.cli.application import ShowCompletion, ShowHelp, ShowHelpAll, ShowVersion
from plumbum.cli.switches import SwitchError

from xcompile import __version__
from xcompile.commands import doctor, doctor_fix, inspect_image, join, matrix, qemu_versions, trial, verify
from xcompile.console import Console
from xcompile.engine import dockerconfig
from xcompile.errors import Interrupted, UsageError, XcompileError
from xcompile.pipeline import report
from xcompile.pipeline.plan import Result
from xcompile.pipeline.run import Pipeline
from xcompile.qemu import settle
from xcompile.settings import config, switches
from xcompile.system.runner import Runner
from xcompile.system.terminal import Escaping, show
from xcompile.urls import scrub

_PLUMBUM_EXITS = (ShowHelp, ShowHelpAll, ShowVersion, ShowCompletion)


class _Session(NamedTuple):
    """What every command starts from."""

    console: Console
    settings: config.Config
    runner: Runner


class _Command(switches.Common):
    def session(self) -> _Session:
        console = Console()
        given = switches.given(self)
        config_file = switches.path_or_none("--config", given.pop("config_file", None), "a file")
        settings, warnings = config.load(
            given,
            env=os.environ,
            cwd=Path.cwd(),
            home=Path.home(),
            config_file=config_file,
        )
        for warning in warnings:
            console.say(f"warning: {warning}")
        return _Session(console, settings, Runner(console.echo, dry_run=settings.dry_run))

    # Plumbum prints a switch error followed by the whole help text, and offers
    # no public hook for that (its handler sits inside _parse_and_dispatch); we
    # want one line and exit code 2, like every other bad input.
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


class _Build(_Command, switches.Build):
    def build(self) -> int:
        console, settings, runner = self.session()
        config.check_report(settings.report)
        if settings.dry_run:
            console.say(f"dry run, settings from {settings.source}: nothing runs, nothing is written")
        if not settings.verify and (settings.proof_command is not None or settings.proof_commands):
            console.say("warning: the proof command is not run: --no-verify (verify = false) skips the whole proof")
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


class XcompileApp(_Build):
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
            msg = f"unknown command '{args[0]}'"
            raise UsageError(msg, hint=hint)
        if self.nested_command:
            return 0
        return self.build()


@XcompileApp.subcommand("build")
class BuildCommand(_Build):
    """Run the whole flow: qemu, cp, experimental, then build, prove and push every image."""

    def main(self) -> int:
        return self.build()


@XcompileApp.subcommand("matrix")
class MatrixCommand(_Command, switches.Cells, switches.QemuHost):
    """Print the configured cells (tag x arch) as JSON, for a CI matrix."""

    fmt = cli.SwitchAttr(
        "--format",
        str,
        default="json",
        argname="FORMAT",
        help='json: a list of {tag, arch, only}; github: one line {"include": [...]} for $GITHUB_OUTPUT;'
        " lines: one TAG/ARCH a line",
    )

    def main(self) -> int:
        if self.fmt not in matrix.FORMATS:
            msg = f"--format: expected one of {', '.join(matrix.FORMATS)}, got {self.fmt!r}"
            raise UsageError(msg)
        console, settings, _ = self.session()
        console.result(matrix.render(settings, self.fmt))
        return 0


@XcompileApp.subcommand("join")
class JoinCommand(_Command, switches.Tags, switches.Registry, switches.QemuHost):
    """Push one manifest list per configured tag from parts that `build --only` pushed."""

    def main(self) -> int:
        console, settings, runner = self.session()
        for done in join.join(settings, runner, console.say):
            state = "planned" if done.digest is None and done.changed else "joined" if done.changed else "unchanged"
            console.result(f"{done.name}  {', '.join(done.platforms)}  {state}  {done.digest or '-'}")
        return 0


@XcompileApp.subcommand("qemu")
class QemuCommand(_Command, switches.QemuSource):
    """Find, install or download the static qemu for each target and print its path;
    --versions lists the qemu versions the mirror serves instead."""

    dest = cli.SwitchAttr("--dest", str, default=None, argname="DIR", help="also copy the binary into DIR")
    versions = cli.Flag("--versions", help="list every qemu version the mirror's suites hold, and who signed each")
    fmt = cli.SwitchAttr("--format", cli.Set("text", "json"), default="text", help="with --versions: text or json")

    def main(self) -> int:
        console, settings, runner = self.session()
        if self.versions:
            listing = qemu_versions.offers(settings, runner)
            if listing is not None:
                offers, skipped = listing
                if (warning := qemu_versions.passed_over(skipped)) is not None:
                    console.say(f"warning: {warning}")
                shown = qemu_versions.as_json(offers, settings.targets) if self.fmt == "json" else None
                console.result(
                    json.dumps(shown, indent=2) if shown is not None else qemu_versions.table(offers, settings.targets)
                )
            return 0
        dest = switches.path_or_none("--dest", self.dest, "a folder")
        if dest is not None and not dest.is_dir():
            msg = f"--dest {dest}: {'not a folder' if dest.exists() else 'no such folder'}"
            raise UsageError(msg)
        for found in settle.ensure_all(settings.targets, runner, settings, console.say, console.progress):
            path = found.path if dest is None else settle.copy_to(found, dest, runner)
            console.result(str(path))
        return 0


class _PushedImages(_Command):
    """A command about pushed images, named on the command line, answered as text or JSON."""

    fmt = cli.SwitchAttr("--format", cli.Set("text", "json"), default="text", help="text or json")

    @staticmethod
    def named(names: tuple[str, ...], command: str) -> list[str]:
        if not names:
            msg = f"{command} needs at least one image"
            raise UsageError(msg, hint=f"e.g. `xcompile {command} HOST/team/app:3.7`")
        return list(names)


@XcompileApp.subcommand("inspect")
class InspectCommand(_PushedImages, switches.EngineSwitch):
    """What pushed images are made of (base, qemu, recipe), read from the registry without pulling them."""

    def main(self, *names: str) -> int:
        named = self.named(names, "inspect")
        console, settings, runner = self.session()
        found, failed = inspect_image.inspect(named, settings, runner, console.say)
        if failed and not found and len(failed) == 1:
            raise failed[0]
        if found or self.fmt == "json":
            shown = json.dumps([seen.as_dict() for seen in found], indent=2) if self.fmt == "json" else None
            console.result(shown if shown is not None else inspect_image.text(found))
        for err in failed:  # each name the registry could not answer for, in a line of its own
            console.say(f"error: {err}")
        # 3 where a registry gave no answer at all: that is to be fixed first, and no name's 1 should hide it.
        return max((err.exit_code for err in failed), default=0)


@XcompileApp.subcommand("verify")
class VerifyCommand(_PushedImages, switches.ArchiveMirror, switches.EngineSwitch):
    """Is a pushed image exactly its recorded base plus the qemu of a signed Debian package? Pulls nothing.
    Exit 0: verified; 1: an image differs; 3: cannot tell (see docs/verify.md)."""

    def main(self, *names: str) -> int:
        named = self.named(names, "verify")
        console, settings, runner = self.session()
        verdicts = verify.verify(named, settings, runner, console.say)
        if self.fmt == "json":
            console.result(json.dumps([one.as_dict() for one in verdicts], indent=2))
        else:
            console.result(verify.text(verdicts))
        return verify.exit_code(verdicts)


@XcompileApp.subcommand("trial")
class TrialCommand(_Command, switches.Images):
    """Which qemu works for my images? Build and prove every image with each qemu VERSION; push nothing."""

    def main(self, *given: str) -> int:
        console, settings, runner = self.session()
        versions = list(dict.fromkeys(given))
        if len(versions) < len(given):  # one column each: two cells would build, prove and remove one image
            console.say("warning: versions: duplicates dropped, each version is tried once")
        cells = trial.trial(settings, versions, runner, console.say)
        console.result(trial.table(cells, versions))
        good = trial.passing(cells, versions)
        if not settings.dry_run:
            console.say(f"every image passes with qemu {', '.join(good)}" if good else "no version passes every image")
        return 0 if good or settings.dry_run else 1


@XcompileApp.subcommand("experimental")
class ExperimentalCommand(_Command):
    """Set "experimental": "enabled" in the docker client config."""

    def main(self) -> int:
        console, settings, runner = self.session()
        edit, written = dockerconfig.enable_experimental(settings.docker_config, runner)
        console.result(edit.describe(done=written))
        return 0


@XcompileApp.subcommand("doctor")
class DoctorCommand(_Command, switches.QemuSource, switches.Registry):
    """Check this host for building and running foreign images; --fix repairs binfmt."""

    push = switches.Toggle("push", "do not check the registry")
    as_json = cli.Flag("--json", help="print the checks as JSON")
    fix = cli.Flag("--fix", help="(root) mount binfmt_misc and register missing or broken qemu entries")
    no_fix_binary = cli.Flag("--no-fix-binary", help="with --fix: register without the F flag, as older hosts do")

    def main(self) -> int:
        if self.no_fix_binary and not self.fix:
            msg = "--no-fix-binary goes with --fix"
            raise UsageError(msg)
        console, settings, loud = self.session()
        if self.fix:
            doctor_fix.fixes(settings, loud, fix_binary=not self.no_fix_binary, show=console.echo)
        # The probes are an implementation detail here; -v shows them.
        quiet = Runner(console.echo if settings.verbose else (lambda *_: None))
        found = doctor.checks(settings, quiet, console.say)
        console.result(json.dumps(doctor.as_json(found), indent=2) if self.as_json else doctor.table(found))
        return 3 if doctor.worst(found) == "fail" else 0


STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
"""Stop like Ctrl-C: CI cancels a job with SIGTERM, and `timeout` sends it too."""


def _on_stop_signal(signum: int, frame: object) -> None:
    del frame
    # Once: a second signal must not cut the cleanup (children, temp folder) short.
    for other in STOP_SIGNALS:
        signal.signal(other, signal.SIG_IGN)
    raise Interrupted(signum)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = any(arg in ("-v", "--verbose") for arg in args)
    if logging.lastResort is not None:  # where a library's warnings go: python-debian quotes a Depends in its
        logging.lastResort.setFormatter(Escaping())
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
        show(f"xcompile: error: {err}", sys.stderr)
        if verbose:
            details = err.details()
            if details:
                show(scrub(details), sys.stderr)
            _traceback()
        return err.exit_code
    except KeyboardInterrupt as stop:
        signum = stop.signum if isinstance(stop, Interrupted) else signal.SIGINT
        by = "" if signum == signal.SIGINT else f" by {signal.Signals(signum).name}"
        with contextlib.suppress(OSError):
            show(f"xcompile: interrupted{by}", sys.stderr)
        return 128 + signum
    except Exception as err:  # a bug: still one line unless -v
        said = f"xcompile: internal error: {type(err).__name__}: {err} (run with -v for the traceback)"
        show(scrub(said), sys.stderr)
        if verbose:
            _traceback()
        return 1


def _traceback() -> None:
    # A library's exception chained below ours may quote a URL whole: its
    # password or token (a query, a presigned signature) is cut out here.
    show(scrub(traceback.format_exc()), sys.stderr, end="")
