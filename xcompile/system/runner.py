"""The one way out to the OS: every program xcompile runs goes through ``Runner``, and so does
every write a run makes to the user's machine (docker's config.json, binfmt_misc, the build
context), so that a dry run makes none of them, and logging, dry-run, secret handling and
error translation each exist once. Files of xcompile's own are written whole through system/files.py, and not
echoed: the download cache (archive/: each file put in place by
archive/download.py's ``cached``) and the JSON report (pipeline/report.py;
never in a dry run). Scratch files in a temporary folder are written in
place: an index on its way into the cache (archive/suites.py), gpgv's inputs
(archive/trust.py) and a remote engine's qemu probe (qemu/machines.py).

The verbs say what they do:

- ``run``: a program that does something; its output comes back at the end.
- ``stream``: a long program whose output the user watches line by line.
- ``ask``: a program whose answer steers the run. A dry run echoes it and
  answers None: unknown, which every caller handles, never a fake success.
- ``look``: a question asked without a program (a registry over HTTP, a
  download): None in a dry run, like ``ask``.
- ``write_file``, ``write_proc``, ``stamp``: changes to files, each echoed on
  one line; ``make_folder``, ``temp_folder``, ``replacing``: room for them.

Programs are resolved when they run, never at import time: ``start_program``
starts each, the one place a child process begins; a runner made with another
``start`` (a test's, answering for programs this machine lacks) changes only
that, never the echo, dry run, timeouts or stops around it. A stop
(``terminate_all``) ends them at once, but for the steps a thread marks
``finishing`` (let end, bounded) and the removals it marks ``undoing``
(never cut): see system/children.py.
"""

from __future__ import annotations

import collections
import contextlib
import os
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from plumbum import local
from plumbum.commands.processes import CommandNotFound

from xcompile.errors import CommandFailed, EnvironmentProblem, OutputTooLarge, ProgramMissing
from xcompile.system import children, files
from xcompile.system.terminal import Say
from xcompile.urls import scrub

T = TypeVar("T")

# What to tell a user whose PATH lacks one of the programs xcompile drives.
INSTALL_HINTS = {
    "docker": "install Docker (e.g. `sudo apt-get install docker.io`) and make sure `docker` is on PATH",
    "podman": "install podman (e.g. `sudo apt-get install podman`, or `sudo dnf install podman`)",
    "apt-get": "this host has no apt; put a static qemu on PATH instead",
    "sudo": "run as root, or install sudo",
}
_OUTPUT_TAIL = 400

Start = Callable[[list[str], tuple[str, ...], dict[str, Any]], "subprocess.Popen[bytes]"]
"""How a program starts: its argv, the environment variables it runs without
(``run_without``) and Popen's options (pipes, session) give the running child.
The real one is ``start_program``."""


def start_program(argv: list[str], without: tuple[str, ...], popen: dict[str, Any]) -> subprocess.Popen[bytes]:
    """``argv``, its program looked up on PATH now (ProgramMissing, with a hint, where it is
    not), run as `env -u VAR ... program` for each of ``without``, with Popen's options."""
    child: subprocess.Popen[bytes] = _command(argv, _unsetting(without)).popen(**popen)
    return child


def _as_is(text: str) -> str:
    return text


class _Programs:
    """The programs: run, ask, stream; each child tracked, so that a stop reaches it (system/children.py)."""

    def __init__(self, echo: Say, *, dry_run: bool = False, start: Start = start_program) -> None:
        self.echo = echo
        self.dry_run = dry_run
        self._launch = start
        self._children = children.Children()
        self._without: dict[str, tuple[str, ...]] = {}
        """Per program, the environment variables it runs without (``run_without``)."""

    def which(self, program: str) -> Path | None:
        try:
            return Path(str(local.which(program)))
        except CommandNotFound:
            return None

    def finishing(self) -> contextlib.AbstractContextManager[None]:
        """``with runner.finishing():`` the programs this thread starts make one step
        that a stop lets end (a build, a proof), for children.FINISH_WITHIN seconds."""
        return self._children.finishing()

    def undoing(self) -> contextlib.AbstractContextManager[None]:
        """``with runner.undoing():`` the programs this thread starts remove what the
        run made: they start even during a stop, and a stop never cuts them."""
        return self._children.undoing()

    def run_without(self, program: str, *variables: str) -> None:
        """From now on, run ``program`` with ``variables`` taken out of its
        environment: as `env -u VAR program ...`, which is both what runs and
        what the echo shows. For the whole run, so that every caller's command
        of that program gets it, and only names leave the environment, never values."""
        self._without[program] = tuple(dict.fromkeys((*self._without.get(program, ()), *variables)))

    def _env_prefix(self, program: str) -> list[str]:
        """`env -u VAR ...` where ``program`` runs without some variables (``run_without``), else nothing."""
        return _unsetting(self._without.get(program, ()))

    # --- programs ---------------------------------------------------------------

    def run(
        self,
        *argv: str | Path,
        label: str | None = None,
        timeout: float | None = None,
        ok_codes: tuple[int, ...] = (0,),
    ) -> str:
        """Echo argv, run it (unless dry-run: then "") and return its stdout."""
        found = self._run(argv, label, None, timeout, None, ok_codes)
        return "" if found is None else found

    def ask(
        self,
        *argv: str | Path,
        label: str | None = None,
        stdin: str | None = None,
        timeout: float | None = None,
        on_timeout: Callable[[], None] | None = None,
        ok_codes: tuple[int, ...] = (0,),
        limit: int | None = None,
    ) -> str | None:
        """Echo argv and return its stdout; a dry run asks nothing and returns None (unknown).

        ``stdin`` is fed to the program and never echoed: secrets go here.
        ``on_timeout`` runs when ``timeout`` has passed, or a stop cuts the program,
        before it is stopped: what makes it end at once (a container to remove, which the
        `docker run` client would otherwise wait on past SIGTERM).
        ``limit``: the most of its stdout (and of its stderr) read; a program that prints
        more is stopped there (OutputTooLarge), with no more than that held in memory.
        """
        return self._run(argv, label, stdin, timeout, on_timeout, ok_codes, limit)

    def stream(
        self,
        *argv: str | Path,
        label: str | None = None,
        stdin: str | None = None,
        terminal: bool = False,
        timeout: float | None = None,
        on_timeout: Callable[[], None] | None = None,
        scrubbed: bool = False,
    ) -> str | None:
        """Echo argv, run it, and pass each output line (stdout and stderr merged,
        in order) to ``echo`` as it comes; return the last lines. A dry run runs
        nothing and returns None.

        ``terminal`` lets the program talk to the user's terminal (sudo's
        password prompt) instead of running in a session of its own.
        ``timeout`` and ``on_timeout`` as for ``ask``. ``scrubbed``: argv and
        output are a user's (a proof command) and may carry secrets: they are
        echoed, returned and raised with URL credentials, queries and
        Authorization values cut (urls.scrub).
        """
        shown = scrub if scrubbed else _as_is
        args = self._start_echo(argv, label, shown)
        if self.dry_run:
            return None
        stdin_from = subprocess.PIPE if stdin is not None else None if terminal else subprocess.DEVNULL
        # Its own process group (unless terminal), so that stopping it stops its
        # children too: a grandchild holding the pipe open would block the reader.
        popen = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "start_new_session": not terminal}
        proc = self._start(args, on_timeout, stdin=stdin_from, **popen)
        expired = threading.Event()
        watchdog = _watchdog(proc, timeout, on_timeout, expired)
        try:
            tail = _relay(proc, stdin, shown, self.echo, label)
            retcode = proc.wait()
        finally:
            if watchdog is not None:
                watchdog.cancel()
            self._children.finish(proc)
        output = "\n".join(tail)
        said = [shown(arg) for arg in args]
        if expired.is_set():
            raise CommandFailed(said, None, "", output, reason=f"timed out after {timeout:g} s")
        if retcode != 0:
            raise CommandFailed(said, retcode, "", output)
        return output

    def look(self, question: Callable[[], T]) -> T | None:
        """``question()``, asked without a program; a dry run asks nothing and returns None (unknown)."""
        return None if self.dry_run else question()

    def concurrency(self, jobs: int) -> int:
        """How many pieces of work run at once: one in a dry run, so that its plan reads in order."""
        return 1 if self.dry_run else jobs

    def _start_echo(
        self, argv: tuple[str | Path, ...], label: str | None, shown: Callable[[str], str] = _as_is
    ) -> list[str]:
        args = [str(arg) for arg in argv]
        # Echo before stdin is attached: str(cmd << secret) would show it.
        self.echo("+ " + shown(shlex.join([*self._env_prefix(args[0]), *args])), label)
        return args

    def _run(
        self,
        argv: tuple[str | Path, ...],
        label: str | None,
        stdin: str | None,
        timeout: float | None,
        on_timeout: Callable[[], None] | None,
        ok_codes: tuple[int, ...],
        limit: int | None = None,
    ) -> str | None:
        args = self._start_echo(argv, label)
        if self.dry_run:
            return None
        proc = self._start(
            args,
            on_timeout,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        data = None if stdin is None else stdin.encode()
        try:
            if limit is None:
                out, err = proc.communicate(data, timeout=timeout)
            else:
                out, err = children.communicate(proc, data, timeout, limit)
        except subprocess.TimeoutExpired:
            if on_timeout is not None:
                on_timeout()
            raise CommandFailed(args, None, reason=f"timed out after {timeout:g} s") from None
        except children.TooMuchOutput:
            raise OutputTooLarge(args, limit or 0) from None
        finally:
            self._children.finish(proc)
        if proc.returncode not in ok_codes:
            raise CommandFailed(args, proc.returncode, _text(out), _text(err))
        return _text(out)

    def _start(self, args: list[str], on_timeout: Callable[[], None] | None, **popen: Any) -> subprocess.Popen[bytes]:
        # Every child is tracked from its start, so that terminate_all (a signal,
        # Ctrl-C) reaches it: ``on_timeout`` ends it at once there too.
        without = self._without.get(args[0], ())
        return self._children.start(" ".join(args[:2]), lambda: self._launch(args, without, popen), on_timeout)

    def terminate_all(self) -> None:
        """Stop every program still running, and start no more, but for steps that a
        stop lets end (``finishing``) and removals (``undoing``): after Ctrl-C or
        SIGTERM/SIGHUP in the main thread."""
        self._children.stop_all()


class Runner(_Programs):
    """The one way out to the OS: the programs, and the file system, each verb echoed once
    and acting only for real (a dry run echoes and does nothing)."""

    def write_file(
        self, path: Path, text: str, *, label: str | None = None, echo: bool = True, mode: int = 0o644
    ) -> bool:
        """Replace ``path`` with ``text``, whole or not at all (files.atomic), keeping
        an existing file's mode and owner; a missing folder is made (mode 0700).
        Echoes the text on one line, unless ``echo`` is False: then the caller
        reports the write in words of its own (a file that may hold secrets).
        Returns whether it was written (False in a dry run)."""
        if echo:
            self.echo(f"write {path}: " + "; ".join(text.strip().splitlines()), label)
        if self.dry_run:
            return False
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        files.write_atomic(path, text, mode=mode)
        return True

    def write_proc(self, path: Path, text: str, *, what: str) -> None:
        """One write to the kernel (binfmt_misc), shown as the shell line that makes it;
        ``what`` says what it does, for the error should the kernel refuse it."""
        self.echo(f"+ echo '{text}' > {path}", None)
        if self.dry_run:
            return
        try:
            with path.open("w") as out:
                out.write(text)
        except OSError as err:
            # The kernel answers a refused registration with an errno; so does
            # a folder that is not binfmt_misc. Both are the host's, not ours.
            msg = f"cannot {what}: {err.strerror or err}"
            raise EnvironmentProblem(msg) from None

    def stamp(self, paths: list[Path], *, mode: int, mtime: int) -> None:
        """Give each path the same mode and modification time (whatever the umask
        and the clock were when it was made), echoing it on one line."""
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(mtime))
        self.echo(f"stamp {mode:04o}, {when}: " + " ".join(str(path) for path in paths), None)
        if not self.dry_run:
            for path in paths:
                os.chmod(path, mode)
                os.utime(path, (mtime, mtime))

    def make_folder(self, path: Path) -> None:
        if not self.dry_run:
            path.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def temp_folder(self, prefix: str) -> Iterator[Path]:
        """A fresh folder, removed afterwards even on failure or Ctrl-C. A dry
        run names one (mkdtemp's XXXXXX left in) and makes nothing."""
        if self.dry_run:
            yield Path(tempfile.gettempdir()) / f"{prefix}XXXXXX"
            return
        folder = Path(tempfile.mkdtemp(prefix=prefix))
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    @contextlib.contextmanager
    def replacing(self, target: Path, *, mode: int = 0o644) -> Iterator[Path]:
        """A private temp path beside ``target`` to fill (with `cp`, say); put in
        place whole on a clean exit (files.atomic). A dry run names one and makes nothing."""
        if self.dry_run:
            yield target.parent / f".{target.name}.XXXXXX.part"
            return
        with files.atomic(target, mode=mode) as part:
            yield part


def _command(args: list[str], prefix: list[str]) -> Any:
    """The plumbum command for ``args`` (a missing program is ProgramMissing), through
    ``prefix`` (`env -u VAR`) where there is one: plumbum can add to a child's
    environment, not take from it."""
    try:
        program = local[args[0]]
        return local[prefix[0]][[*prefix[1:], str(program.executable), *args[1:]]] if prefix else program[args[1:]]
    except CommandNotFound as missing:
        name = args[0] if missing.program == args[0] else str(missing.program)
        raise ProgramMissing(name, INSTALL_HINTS.get(name)) from None


def _unsetting(without: tuple[str, ...]) -> list[str]:
    """`env -u VAR ...` for each of ``without``; nothing for none."""
    return ["env", *(word for variable in without for word in ("-u", variable))] if without else []


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def _watchdog(
    proc: subprocess.Popen[bytes],
    timeout: float | None,
    on_timeout: Callable[[], None] | None,
    expired: threading.Event,
) -> threading.Timer | None:
    """A started timer that, after ``timeout``, sets ``expired``, calls ``on_timeout`` and stops ``proc``."""
    if timeout is None:
        return None

    def expire() -> None:
        expired.set()
        if on_timeout is not None:
            on_timeout()
        children.stop(proc)

    watchdog = threading.Timer(timeout, expire)
    watchdog.daemon = True
    watchdog.start()
    return watchdog


def _relay(
    proc: subprocess.Popen[bytes], stdin: str | None, shown: Callable[[str], str], echo: Say, label: str | None
) -> collections.deque[str]:
    """Feed ``stdin``, pass each output line (as ``shown``) to ``echo`` as it comes; the last lines."""
    if stdin is not None and proc.stdin is not None:
        proc.stdin.write(stdin.encode())
        proc.stdin.close()
    tail: collections.deque[str] = collections.deque(maxlen=_OUTPUT_TAIL)
    for raw in proc.stdout or ():
        line = shown(raw.decode("utf-8", "replace").rstrip("\r\n"))
        tail.append(line)
        echo(line, label)
    return tail
