"""Step 4 (per image): prove a built image before it is pushed — gather what to judge, and judge it (pipeline/judge.py).

- The image config (one `image inspect`): labelled for the target platform.
- qemu's bytes at each path (the layer folders, else copied out of a
  container that never starts): the qemu that was copied in.
- The machine probe: one run whose entrypoint is the **image's own qemu**,
  running python3 (else uname). It proves the bytes that hosts without the
  binfmt F flag run, whatever this host's entry says, and needs no entry.
- The user's proof command, where one is configured: run as a downstream
  `RUN` runs (shell form through /bin/sh -c, the engine's network), so every
  program it starts goes through this host's binfmt entry. Which qemu that
  is, the shipped one or the host's, is said (``runs_under``).
"""

from __future__ import annotations

import contextlib
import functools
import shlex
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from xcompile.engine import Engine, classify
from xcompile.errors import CommandFailed, XcompileError
from xcompile.host import binfmt
from xcompile.host.platforms import Arch
from xcompile.pipeline import judge
from xcompile.pipeline.context import Workspace
from xcompile.pipeline.plan import Image, ProofRun
from xcompile.system import files
from xcompile.system.runner import Runner
from xcompile.system.terminal import Say
from xcompile.urls import scrub

REMOVE_TIMEOUT = 60
"""Seconds to remove a proof container that outlived its run: an engine that
lost the container's exit does not answer at all."""


class Prover:
    def __init__(self, runner: Runner, engine: Engine, say: Say, *, timeout: float) -> None:
        self.runner = runner
        self.engine = engine
        self.say = say
        self.timeout = timeout

    def prove(
        self,
        image: Image,
        qemu_sha256: str,
        work: Workspace,
        command: str | tuple[str, ...] | None,
    ) -> tuple[bool, ProofRun | None]:
        """The whole proof of a built image: ``verify``, then the user's proof command where
        there is one. A stop lets it end: its containers would outlive their clients.
        Whether it was judged (``verify``), and the command's run."""
        with self.runner.finishing():
            judged = self.verify(image, qemu_sha256, work)
            return judged, self.run_command(image, command, qemu_sha256) if command is not None else None

    def verify(self, image: Image, qemu_sha256: str, work: Workspace) -> bool:
        """Prove the image: labelled right, qemu inside, and its own qemu runs it (raises
        ProofFailed where it is not). The labels come first, since a mislabelled image would
        not even start for the target platform. False where nothing could be looked at (a
        dry run): then nothing was judged."""
        config = self.look_at(image)
        if config is None:
            self.run_inside(image, judge.PROBES[:1])  # the plan shows the run
            return False
        judge.check_labels(image.arch, config)
        judge.check_qemu_inside(self.qemu_inside(image, qemu_sha256, config, work))
        probes = judge.probes_for(config)
        if not probes:
            raise judge.nothing_to_run()
        machine = self.run_inside(image, probes)
        if machine is None:
            return False
        judge.check_machine(image.arch, machine)
        return True

    def look_at(self, image: Image) -> judge.ImageConfig | None:
        """The image's config, labels and layer folders: one native call (None: not asked)."""
        out = self.runner.ask(*self.engine.inspect_cmd(image.name), label=image.label)
        return None if out is None else judge.ImageConfig.from_inspect(out)

    def qemu_inside(self, image: Image, wanted: str, config: judge.ImageConfig, work: Workspace) -> judge.QemuSeen:
        """The SHA256 of what the image has at each qemu path, read natively."""
        if config.layer_dirs:
            found = tuple(
                (path, files.sha256_or_none(judge.find_in_layers(config.layer_dirs, path))) for path in image.qemu_paths
            )
            return judge.QemuSeen(wanted, found)
        # Where the layers are not on this host (a remote daemon, another
        # storage driver), copy the files out of a container that never starts.
        run = self.runner.run
        container = run(*self.engine.create_cmd(image.platform, image.name, "true"), label=image.label)
        container = container.strip() or "CONTAINER"
        copies: list[tuple[str, str | None]] = []
        try:
            for path in image.qemu_paths:
                copied = work.scratch / f"{image.label}-{Path(path).name}"
                try:
                    run(*self.engine.copy_out_cmd(container, path, copied), label=image.label)
                except CommandFailed:
                    copies.append((path, None))
                else:
                    copies.append((path, files.sha256_or_none(copied)))
        finally:
            with contextlib.suppress(CommandFailed):
                run(*self.engine.remove_container_cmd(container), label=image.label)
        return judge.QemuSeen(wanted, tuple(copies))

    def run_inside(self, image: Image, probes: tuple[judge.Probe, ...]) -> judge.Machine | None:
        """The first probe whose program the image has, run by the image's own qemu (None: not run)."""
        qemu = image.arch.qemu_path_in_image
        for probe in probes:
            container = self._container()
            argv = self.engine.run_cmd(
                image.platform, image.name, probe.program, *probe.args, entrypoint=qemu, name=container
            )
            remove = functools.partial(self._remove_container, container, image.label)
            try:
                out = self.runner.ask(*argv, label=image.label, timeout=self.timeout, on_timeout=remove)
            except CommandFailed as err:
                failure = classify(err, probe.program)
                # qemu 7.2 says nothing, and exits 1, where the image lacks the program
                if failure.kind == "missing-program" or (err.retcode == 1 and not err.output.strip()):
                    continue
                raise judge.run_failed(qemu, probe, failure, err, self.engine.program) from None
            return None if out is None else judge.read_probe(probe, out)
        raise judge.nothing_to_run()

    def run_command(self, image: Image, command: str | tuple[str, ...], qemu_sha256: str) -> ProofRun:
        """The user's proof command in the image, as a downstream RUN runs it; fails the image
        (ProofFailed) on a non-zero exit or a timeout, with its last lines of output. The command and
        its output may carry secrets (a token in a URL, an Authorization header): every word of them
        that is shown or recorded is scrubbed."""
        shown = scrub(command if isinstance(command, str) else shlex.join(command))
        entrypoint, args = ("/bin/sh", ("-c", command)) if isinstance(command, str) else (command[0], command[1:])
        container = self._container()
        argv = self.engine.run_cmd(
            image.platform, image.name, *args, entrypoint=entrypoint, name=container, network=True
        )
        under = runs_under(image.arch, qemu_sha256, self.runner)
        started = time.monotonic()
        remove = functools.partial(self._remove_container, container, image.label)
        try:
            said = self.runner.stream(*argv, label=image.label, timeout=self.timeout, on_timeout=remove, scrubbed=True)
        except CommandFailed as err:
            failed = judge.command_failed(image.arch, shown, err, classify(err, entrypoint))
            failed.run = under.ran(shown, err.retcode, time.monotonic() - started)
            raise failed from None
        if said is None:  # not run (a dry run): planned, not passed
            return under.ran(shown, None, 0.0)
        seconds = time.monotonic() - started
        self.say(f"proof command passed in {seconds:.1f} s, under {under.said}", image.label)
        return under.ran(shown, 0, seconds)

    @staticmethod
    def _container() -> str:
        # Named, so that a run that outlives --proof-timeout can be removed: its
        # program, as PID 1, ignores the SIGTERM the client passes on, and the client waits.
        return f"xcompile-proof-{uuid.uuid4().hex[:12]}"

    def _remove_container(self, container: str, label: str) -> None:
        try:
            argv = self.engine.remove_container_cmd(container, force=True)
            with self.runner.undoing():  # a stop never cuts the removal of what the run made
                self.runner.run(*argv, label=label, timeout=REMOVE_TIMEOUT)
        except XcompileError as err:  # the image has failed already; this is worth a line, no more
            self.say(f"its container {container} is left: {err}", label)


@dataclass(frozen=True)
class Under:
    """Which qemu runs the programs a command starts in an image on this host."""

    said: str
    """In words, for the summary and the report."""
    host_qemu: str | None = None
    """The host's qemu (binfmt F): its --version line, or its path; None: not the host's."""
    same_bytes: bool = False

    def ran(self, command: str, exit_code: int | None, seconds: float) -> ProofRun:
        """A proof command's run under this qemu."""
        return ProofRun(command, exit_code, seconds, self.said, self.host_qemu, self.same_bytes)


def runs_under(arch: Arch, shipped_sha256: str, runner: Runner, root: Path = binfmt.ROOT) -> Under:
    """Which qemu runs the programs a command starts in an ``arch`` image on this host.

    With the F flag the kernel runs the host's own qemu (opened when it was
    registered); without it, the kernel looks the interpreter up inside the
    container, where xcompile put the shipped qemu.
    """
    entry = binfmt.read(arch.binfmt_name, root) if binfmt.mounted(root) else None
    if entry is None or not entry.enabled:
        return Under("no qemu: this host has no enabled binfmt entry for it, so its programs cannot start")
    if not entry.fix_binary:
        return Under(
            f"the shipped qemu (binfmt {entry.name} has no F flag: the kernel runs {entry.interpreter} in the image)"
        )
    host = Path(entry.interpreter).resolve()
    version = ""
    with contextlib.suppress(XcompileError):
        version = (runner.ask(host, "--version", timeout=30) or "").strip().partition("\n")[0]
    same = files.sha256_or_none(host) == shipped_sha256
    bytes_said = "the same bytes as the shipped one" if same else "NOT the shipped one"
    said = f"the host's qemu ({version or host}, binfmt {entry.name} with F: {bytes_said})"
    return Under(said, version or str(host), same)
