"""`xcompile trial VERSION...`: which qemu works for my images?

Every configured image is built once with each qemu version (pinned as
``qemu_version`` pins: an exact Debian version or an upstream prefix), and
each build gets the whole proof, the user's proof command included. The
cells run at once, bounded by ``--jobs``. Nothing is pushed and nothing is
left: each trial image is removed once judged, and the build contexts with
the run's temporary folder. The answer is a table, one row per image and one
column per version, and the exit code: 0 when some version passes every image.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import re
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from xcompile.engine import Engine
from xcompile.engine.choice import choose
from xcompile.errors import UsageError, XcompileError
from xcompile.host import emulation
from xcompile.pipeline import build, context, prove, store
from xcompile.pipeline.plan import Image, ProofRun, plan
from xcompile.qemu import machines, settle
from xcompile.settings.config import Config
from xcompile.settings.keys import KEYS
from xcompile.system.runner import Runner
from xcompile.system.terminal import Say


@dataclass
class Cell:
    image: Image
    version: str
    passed: bool | None = None
    """None: not run (a dry run, or stopped)."""
    seconds: float = 0.0
    error: str | None = None
    qemu: str = ""
    """The qemu the version pin settled on, in the image's label's words."""
    command: ProofRun | None = None
    """The proof command's run, where one ran."""


def trial(config: Config, versions: list[str], runner: Runner, say: Say) -> list[Cell]:
    """Build, prove and remove every image with each qemu version; the cells, image by image."""
    _check(versions)
    settings = dataclasses.replace(config, push=False, rebuild="always", verify=True)
    chosen = choose(settings.engine, runner, settings.auth_places, Path.home(), say)
    engine = chosen.engine
    answered = engine.versions(runner)
    say(chosen.why, None)
    machine, ran = machines.settle(settings, engine.name, answered.arch, dry_run=runner.dry_run)
    say(f"qemu host: {settings.qemu_host}; the proof runs its qemu {ran}", None)
    if chosen.fitted:
        say(chosen.fitted, None)
    images = plan(settings, emulation.survey(settings.targets)).images
    local = store.Store(runner, engine, say, pull=settings.pull)
    arches = tuple(dict.fromkeys(image.arch for image in images))
    said: set[str] = set()

    def once(line: str, label: str | None) -> None:  # a mirror's note (a suite passed over) is one for every version
        if line not in said:
            said.add(line)
            say(line, label)

    session = uuid.uuid4().hex[:8]
    cells = [Cell(_named(image, version, session), version) for image in images for version in versions]
    with context.workspace(runner) as work, contextlib.ExitStack() as stack:
        pool = stack.enter_context(
            ThreadPoolExecutor(runner.concurrency(settings.jobs), thread_name_prefix="xcompile-trial")
        )
        # The store is surveyed and each base pulled once, all at once, while qemu is settled;
        # the pool takes tasks in order, so a cell only ever waits for a pull already under way.
        surveyed = pool.submit(local.survey, images)
        bases = {image.base: pool.submit(_newest_base, local, surveyed, image) for image in images}
        try:
            emulators = {
                v: settle.ensure_all(arches, runner, dataclasses.replace(settings, qemu_version=v), once)
                for v in versions
            }
            spaces = {v: context.Workspace(work.root / f"qemu-{i}") for i, v in enumerate(versions)}
            sha256 = {v: context.copy_qemu(runner, emulators[v], spaces[v], images) for v in versions}
            if remote := machines.ask_remote(settings, runner, engine, machine, emulators[versions[0]], work.scratch):
                say(f"qemu host: {settings.qemu_host}; the proof runs its qemu {remote}", None)
        except BaseException:
            runner.terminate_all()  # the pulls still running: a base can take minutes
            raise
        trier = _Trier(settings, runner, engine, say)
        futures = []
        for cell in cells:
            one = {e.binary: e for e in emulators[cell.version]}[cell.image.arch.qemu_binary]
            cell.qemu = one.version or one.source
            futures.append(pool.submit(trier.run, cell, spaces[cell.version], sha256[cell.version][one.binary], bases))
        try:
            for future in futures:
                future.result()
        except BaseException:
            runner.terminate_all()  # Ctrl-C, a signal: every build and run still going stops
            raise
    return cells


def _check(versions: list[str]) -> None:
    """At least one version, each a pin as --qemu-version takes it."""
    if not versions:
        msg = "trial needs at least one qemu version"
        raise UsageError(msg, hint="e.g. `xcompile trial 7.2 10.0 11.1`")
    for version in versions:
        KEYS["qemu_version"](version, "trial")


def _newest_base(local: store.Store, surveyed: Future[None], image: Image) -> str:
    surveyed.result()  # what the store held at the start, before any pull
    return local.newest_base(image)


class _Trier:
    def __init__(self, config: Config, runner: Runner, engine: Engine, say: Say) -> None:
        self.config, self.runner, self.engine, self.say = config, runner, engine, say

    def run(self, cell: Cell, space: context.Workspace, sha256: str, bases: dict[str, Future[str]]) -> None:
        image = cell.image
        try:
            bases[image.base].result()  # pulled, or refused (BaseUnavailable): the cell fails
        except XcompileError as err:
            cell.passed, cell.error = False, str(err)
            return
        started = time.monotonic()
        try:
            # A stop lets the build and its proof end (the classic builder would commit its step anyway),
            # then the trial image goes. The image carries no labels: it is never kept nor pushed, and
            # the classic builder would commit a LABEL line as a step of its own.
            with self._removed(image):
                with self.runner.finishing():
                    build.build(self.runner, self.engine, image, space, {})
                prover = prove.Prover(self.runner, self.engine, self.say, timeout=self.config.proof_timeout)
                judged, run = prover.prove(image, sha256, space, self.config.proof_command_for(image.arch))
        except XcompileError as err:
            cell.passed, cell.error = False, str(err)
        else:
            # Not judged (a dry run): planned, never a pass.
            cell.passed = True if judged and (run is None or run.exit == 0) else None
            cell.command = run
        cell.seconds = time.monotonic() - started

    @contextlib.contextmanager
    def _removed(self, image: Image) -> Iterator[None]:
        """The trial image goes once judged, whatever the judgement."""
        try:
            yield
        finally:
            with contextlib.suppress(XcompileError), self.runner.undoing():
                self.runner.run(*self.engine.remove_images_cmd(image.name), label=image.label, ok_codes=(0, 1))


def _named(image: Image, version: str, session: str) -> Image:
    """The image as a trial builds it: a local name of the trial's own, never the repo's, one per cell.

    The tag is a readable part and a short hash of the exact tag, arch and version: the readable
    part alone gave 1:10.0.2+ds-2 and 1:10.0.2~ds-2 (7.2+b1 and 7.2-b1, 7.2 and 7.2.) one image,
    and tags that differ only past 128 characters would be cut to one too.
    """
    slug = re.sub(r"[^a-z0-9._-]+", "-", version.lower()).strip("-.") or "v"
    exact = hashlib.sha256(f"{image.tag}\0{image.arch.name}\0{version}".encode()).hexdigest()[:12]
    readable = f"{image.tag}-{image.arch.name}-qemu-{slug}"[: 128 - len(exact) - 1].rstrip("-.")
    tag = f"{readable}-{exact}"
    return dataclasses.replace(image, name=f"xcompile-trial-{session}/image:{tag}", label=f"{image.label}@{version}")


def table(cells: list[Cell], versions: list[str]) -> str:
    """One row per image, one column per version: pass or fail, with the seconds."""
    rows: dict[str, dict[str, Cell]] = {}
    for cell in cells:
        rows.setdefault(cell.image.label.rsplit("@", 1)[0], {})[cell.version] = cell
    header = ["image", *versions]
    body = [[label, *(_cell(by[v]) for v in versions)] for label, by in rows.items()]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *body]
    ]
    qemus = {cell.version: cell.qemu for cell in cells if cell.qemu}
    lines += [f"{version}: {qemus[version]}" for version in versions if version in qemus]
    lines += _host_notes(cells, versions)
    lines += [f"{cell.image.label}: {cell.error}" for cell in cells if cell.error]
    return "\n".join(lines)


def _host_notes(cells: list[Cell], versions: list[str]) -> list[str]:
    """Where the host's qemu (binfmt F) ran the proof command's programs: which one, and in which
    columns that was not the version tried (only the machine probe ran each version's own qemu)."""
    runs = [(cell.version, cell.command) for cell in cells if cell.command is not None]
    hosts = dict.fromkeys(run.host_qemu for _, run in runs if run.host_qemu is not None)
    notes = []
    for host in hosts:
        other = [v for v in versions if any(run.host_qemu == host and not run.same_bytes for w, run in runs if w == v)]
        if other:
            notes.append(
                f"note: this host's binfmt entry has the F flag, so the proof command's programs ran under the"
                f" host's qemu ({host}), not under the version tried, in the columns {', '.join(other)}; try them"
                " on a host whose entry has no F flag"
            )
    return notes


def _cell(cell: Cell) -> str:
    state = {True: "pass", False: "fail", None: "planned"}[cell.passed]
    return f"{state} {cell.seconds:.1f}s" if cell.passed is not None and cell.seconds else state


def passing(cells: list[Cell], versions: list[str]) -> list[str]:
    """The versions under which every image passed."""
    return [v for v in versions if all(cell.passed for cell in cells if cell.version == v)]
