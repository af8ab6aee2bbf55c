"""The original bash flow, step for step, and nothing but the order of the steps:

1. settle qemu            (qemu/settle.py: apt-get install qemu-user-static, or find or download it)
2. cp it into a context   (pipeline/context.py: one per emulator)
3. enable experimental    (engine/dockerconfig.py: only where this docker client needs it)
4. for each image: build (pipeline/build.py), prove (pipeline/prove.py), push (pipeline/push.py)
5. join each tag's images in a manifest list, for several architectures (pipeline/push.py)

Before the steps, the run asks at once what it needs to know (``_prepare``):
the engine, the local store (pipeline/store.py), the registries (registry/check.py)
and the newest bases. Each step's room holds its own work; this class
orders them, times them, and stops the rest after a failure or an interrupt.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from xcompile.engine import Engine, Versions, dockerconfig
from xcompile.engine.choice import Chosen, choose
from xcompile.errors import CommandFailed, ProofFailed, XcompileError
from xcompile.host import emulation
from xcompile.pipeline import build, context, prove, push, store
from xcompile.pipeline.plan import Image, ManifestList, Outcome, Result, plan
from xcompile.qemu import machines, settle
from xcompile.registry import recipe
from xcompile.settings.config import Config
from xcompile.system.runner import Runner
from xcompile.system.terminal import Say

if TYPE_CHECKING:
    from xcompile.archive import download


class Pipeline:
    engine: Engine
    """docker's or podman's command shapes: chosen once, in _prepare (auto asks)."""

    def __init__(self, config: Config, runner: Runner, say: Say, progress: download.ProgressCallback | None = None):
        self.config, self.runner, self.say, self.progress = config, runner, say, progress
        self.result: Result | None = None
        """The run's result so far, for the summary when it is interrupted."""
        self._stop, self._interrupted = threading.Event(), threading.Event()
        self._sha256: dict[str, str] = {}
        self._qemu: dict[str, settle.Qemu] = {}
        self.ran: str | None = None  # how the proof runs the shipped qemu on the engine's machine (qemu/machines.py)

    def run(self) -> Result:
        """The original's steps. Raises only for problems that stop everything;
        per-image failures are in the result."""
        with self._prepare() as (result, images, manifests):
            arches = tuple(dict.fromkeys(image.arch for image in images))
            emulators = settle.ensure_all(arches, self.runner, self.config, self.say, self.progress)
            self._qemu = {one.binary: one for one in emulators}
            with context.workspace(self.runner) as work:
                self._sha256 = context.copy_qemu(self.runner, emulators, work, images)
                ran = machines.ask_remote(self.config, self.runner, self.engine, self.machine, emulators, work.scratch)
                if ran is not None:  # a remote engine's machine, asked before any build
                    self.ran = ran
                    self.say(f"qemu host: {self.config.qemu_host}; the proof runs its qemu {ran}", None)
                self.say(dockerconfig.step(self.engine, result.versions, self.config.docker_config, self.runner), None)
                self.build_all(images, work)
                for manifest, outcome in manifests.items():
                    self.join(manifest, outcome, [images[image] for image in manifest.images], work)
        return result

    @contextlib.contextmanager
    def _prepare(self) -> Iterator[tuple[Result, dict[Image, Outcome], dict[ManifestList, Outcome]]]:
        """Plan, and ask at once what the run needs before it builds: once the
        engine answers, the local store, the registries and the newest bases.
        The store and the registries are awaited here, each base's pull by its
        build, so that qemu is settled and copied while the bases come."""
        if self.config.push:
            from xcompile.registry import check

            self.runner.look(check.load_http)
        chosen, versions = _start(self.config, self.runner, self.say)
        self.engine = chosen.engine
        machine, self.ran = machines.settle(self.config, self.engine.name, versions.arch, dry_run=self.runner.dry_run)
        self.machine = machine
        if self.ran is not None:
            self.say(f"qemu host: {self.config.qemu_host}; the proof runs its qemu {self.ran}", None)
        # The engine's machine runs the images: its machine type judges its binfmt entries (read here
        # only where it is this machine's; elsewhere this machine's stand in, as before issue 26).
        host = emulation.survey(self.config.targets, machine.arch.uname_m if machine.local else None)
        the_plan = plan(self.config, host)
        self.local, self.published = (
            store.Store(self.runner, self.engine, self.say, pull=self.config.pull),
            push.Published(self.config, self.runner, chosen, self.say),
        )
        with ThreadPoolExecutor(max_workers=self.config.jobs + 1, thread_name_prefix="xcompile-ask") as asking:
            try:
                ready = asking.submit(self.published.check)
                self.local.start_pulls(the_plan.images, asking)
                self.local.survey(the_plan.images)
                said = ready.result()  # a registry that cannot take the push stops the run here
                if said:
                    self.say(said, None)
                planned = {image.arch.name for image in the_plan.images}
                for name, assessment in host.items():
                    if name in planned:  # a CI matrix cell's arches, not every target's
                        self.say(assessment.note, None)
                images = {image: Outcome.of(image) for image in the_plan.images}
                manifests = {m: Outcome(m.name, m.platform, None) for m in the_plan.manifests}
                self.result = Result([*images.values(), *manifests.values()], versions)
                with _interruptible(self.result):
                    yield self.result, images, manifests
            except BaseException:
                self.runner.terminate_all()  # the pulls still running: a base can take minutes
                raise

    def build_all(self, images: dict[Image, Outcome], work: context.Workspace) -> None:
        # The removals close last: an image still running takes them to the end.
        with (
            self.local.cleaning(),
            ThreadPoolExecutor(self.runner.concurrency(self.config.jobs), thread_name_prefix="xcompile") as pool,
        ):
            try:  # a stop may come while the first images are being handed out
                futures = [
                    pool.submit(self.build_prove_push, image, outcome, work) for image, outcome in images.items()
                ]
                for future in futures:
                    future.result()
            except BaseException as err:
                if isinstance(err, KeyboardInterrupt):
                    self._interrupted.set()  # before any child is stopped, so its image reads "interrupted"
                self._stop.set()
                self.runner.terminate_all()
                raise

    def build_prove_push(self, image: Image, outcome: Outcome, work: context.Workspace) -> None:
        if self._stopped(outcome, "not started: an earlier image failed"):
            return
        with self._attempt(outcome):
            emulator = self._qemu[image.arch.qemu_binary]
            outcome.qemu_version, outcome.qemu_source = emulator.version or None, emulator.source or None
            outcome.qemu_host = self.config.qemu_host
            outcome.ran = None if self.ran is None else f"through the shipped {emulator.binary}, run {self.ran}"
            labels = recipe.labels(
                image.base,
                self.local.newest_base(image),
                self._sha256[emulator.binary],
                image.dockerfile_template,
                qemu_version=emulator.version,
                qemu_source=emulator.source,
                qemu_host=self.config.qemu_host,
            )
            remote = self.published.unchanged(image, labels) if self.config.rebuild == "changed" else None
            if remote is not None:
                outcome.status, outcome.digest = "unchanged", remote.digest
                return
            replaced, said = self.local.image_id(image), None
            try:  # a stop lets it end: the classic builder's daemon would commit its step after its client is gone
                with self.runner.finishing():
                    said = build.build(self.runner, self.engine, image, work, labels)
            except CommandFailed as err:
                said = err.output
                raise
            finally:
                if self._interrupted.is_set():  # it ended after the stop: what it made goes, the name goes back
                    self.local.undo_build(image, replaced, build.made(said))
            if self._interrupted.is_set():
                outcome.status, outcome.error = "interrupted", "interrupted"
                return
            self.local.drop_replaced(image, replaced, build.made(said))
            outcome.status = "built"
            if self.config.verify:
                prover = prove.Prover(self.runner, self.engine, self.say, timeout=self.config.proof_timeout)
                command = self.config.proof_command_for(image.arch)
                try:
                    _, outcome.proof = prover.prove(image, self._sha256[emulator.binary], work, command)
                except ProofFailed as err:
                    outcome.proof = err.run  # the command's exit and seconds, where it was the command that failed
                    raise
            if self.config.push and not self._stopped(outcome, "not pushed: an earlier image failed"):
                digest_file = work.scratch / f"{image.label}.digest"
                outcome.digest = push.push(self.runner, self.engine, self.config, image, digest_file)
                outcome.status = "pushed"

    def join(self, manifest: ManifestList, outcome: Outcome, parts: list[Outcome], work: context.Workspace) -> None:
        if self._stop.is_set() or any(p.status not in ("pushed", "unchanged", "planned") for p in parts):
            outcome.error = "not joined: not every image of this tag was pushed"
            return
        if all(p.status == "unchanged" for p in parts):
            current = self.published.unchanged_list(manifest, [str(p.digest) for p in parts])
            if current is not None:
                outcome.status, outcome.digest = "unchanged", current.digest
                return
        with self._attempt(outcome):
            digest_file = work.scratch / f"{manifest.label}.list.digest"
            outcome.digest = push.push_list(self.runner, self.engine, self.config, manifest, digest_file)
            outcome.status = "pushed"

    # --- stopping ---------------------------------------------------------------

    def _stopped(self, outcome: Outcome, why: str) -> bool:
        """Has an earlier failure or an interrupt stopped the run? Then say so on this outcome."""
        if self._interrupted.is_set():
            started = outcome.status != "skipped"
            outcome.status, outcome.error = "interrupted", "interrupted" if started else "interrupted before it started"
            return True
        if self._stop.is_set():
            outcome.error = why
            return True
        return False

    @contextlib.contextmanager
    def _attempt(self, outcome: Outcome) -> Iterator[None]:
        """Time the work and record how it ended. A failure fails this outcome
        only, and stops the images not yet started unless --keep-going."""
        started = time.monotonic()
        try:
            yield
            if self.runner.dry_run:
                outcome.status = "planned"
        except XcompileError as err:
            if self._interrupted.is_set():  # its program was stopped, it did not fail
                outcome.status, outcome.error = "interrupted", "interrupted"
                return
            outcome.status, outcome.error = "failed", str(err)
            if not self.config.keep_going:
                self._stop.set()
        finally:
            outcome.seconds = time.monotonic() - started


def _start(config: Config, runner: Runner, say: Say) -> tuple[Chosen, Versions]:
    """The engine, made once, and what it says of itself; before any work, a file the run
    could not do without is refused: an auth file the user named, a docker config step 3 edits."""
    chosen = choose(config.engine, runner, config.auth_places, Path.home(), say)
    chosen.refuse_broken()
    versions = chosen.engine.versions(runner)  # where it cannot answer, that is the one thing said
    if chosen.engine.needs_experimental(versions):
        dockerconfig.plan(config.docker_config)
    say(chosen.why + (f" {versions.client}" if versions.client else ""), None)
    if chosen.fitted:
        say(chosen.fitted, None)
    return chosen, versions


@contextlib.contextmanager
def _interruptible(result: Result) -> Iterator[None]:
    """On Ctrl-C, SIGTERM or SIGHUP (errors.Interrupted), once the
    workspace is gone and every child stopped: say which never finished."""
    try:
        yield
    except KeyboardInterrupt:
        for outcome in result.outcomes:
            if outcome.status == "skipped" and outcome.error is None:
                outcome.status, outcome.error = "interrupted", "interrupted"
        raise
