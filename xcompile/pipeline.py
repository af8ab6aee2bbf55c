"""The original bash flow, step for step:

1. ensure qemu            (apt-get install qemu-user-static, or find it)
2. cp it into the build context (one per emulator)
3. enable experimental    (only where this docker client needs it)
4. for each image: docker build, prove it runs, then docker push
   (and, for several architectures, join each tag's images in a manifest list)

The plan (which images, which Dockerfiles) is a pure function of the config
and the host's binfmt registrations; only the runner and the config edit
touch the world.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

from xcompile import (
    dockerconfig,
    emulation,
    engine,
    files,
    preflight,
    proof,
    qemu,
    recipe,
    reference,
)
from xcompile.config import Config
from xcompile.errors import BaseUnavailable, CommandFailed, XcompileError
from xcompile.platforms import Arch
from xcompile.runner import Runner

if TYPE_CHECKING:  # requests loads only when a registry is read (issue 8: start-up time)
    from xcompile import download, registry

Status = Literal["pushed", "built", "unchanged", "failed", "skipped", "planned", "interrupted"]
Say = Callable[[str, "str | None"], None]
# What one `image inspect` of many names says of each one it found.
_INSPECT_FORMAT = "{{json .RepoTags}} {{json .RepoDigests}} {{.Id}}"


@dataclass(frozen=True)
class Local:
    """An image in the local store, as `image inspect` shows it."""

    id: str
    repo_digests: tuple[str, ...] = ()


QEMU_LAYER = "qemu-layer"
"""The build context's tree of qemu at each path the image has it. Its files
and folders get one mode and one time (QEMU_LAYER_MODE, QEMU_LAYER_MTIME), so
that the layer `COPY qemu-layer/ /` makes is the same bytes on every base and
in every run: the registry stores it once, a push after the first uploads it
no more, and a device pulling several tags downloads it once."""
QEMU_LAYER_MODE = 0o755
QEMU_LAYER_MTIME = 1
"""1970-01-01 00:00:01 UTC: fixed, and not 0, which some tools read as "no time"."""


@dataclass(frozen=True)
class Image:
    tag: str
    arch: Arch
    base: str
    """The foreign base, e.g. arm32v7/python:3.7."""
    name: str
    """What is built and pushed, e.g. brewblox/rpi-python:3.7."""
    label: str
    """How its output lines are prefixed: the tag, plus the arch when there are several."""
    extra_qemu_paths: tuple[str, ...] = ()
    """Where this host's binfmt registration (without F) looks for qemu, beyond /usr/bin."""

    @property
    def platform(self) -> str:
        return self.arch.platform

    @property
    def qemu_paths(self) -> tuple[str, ...]:
        return (self.arch.qemu_path_in_image, *self.extra_qemu_paths)

    @property
    def dockerfile_name(self) -> str:
        return f"Dockerfile.{self.label}"

    @property
    def dockerfile_template(self) -> str:
        # The original's two lines, with qemu in a tree of its own (QEMU_LAYER)
        # and the comment naming where the tree puts it. The paths matter:
        # hosts whose binfmt entry lacks the F flag make the kernel look the
        # emulator up in the image.
        return (f"FROM {{base}}\n# {QEMU_LAYER}/ holds {self.arch.qemu_binary} at {', '.join(self.qemu_paths)}\n"
                f"COPY {QEMU_LAYER}/ /\n")  # fmt: skip

    @property
    def dockerfile(self) -> str:
        return self.dockerfile_template.replace("{base}", self.base)


@dataclass(frozen=True)
class ManifestList:
    name: str
    images: tuple[Image, ...]

    @property
    def platform(self) -> str:
        return ",".join(image.platform for image in self.images)


@dataclass(frozen=True)
class Workspace:
    """A run's temporary folder: a docker build context per emulator (so each
    build sends only its own qemu), and room for checks outside them."""

    root: Path

    def context(self, qemu_binary: str) -> Path:
        return self.root / f"context-{qemu_binary}"

    @property
    def scratch(self) -> Path:
        return self.root / "check"


@dataclass(frozen=True)
class Plan:
    images: tuple[Image, ...]
    manifests: tuple[ManifestList, ...]


@dataclass
class Outcome:
    name: str
    platform: str
    base: str | None
    status: Status = "skipped"
    digest: str | None = None
    seconds: float = 0.0
    error: str | None = None


@dataclass
class Result:
    outcomes: list[Outcome]
    engine: engine.Versions

    @property
    def ok(self) -> bool:
        return all(o.error is None for o in self.outcomes)


def plan(config: Config, host: Mapping[str, emulation.Assessment]) -> Plan:
    """Every image and manifest list the config asks for, given how this host runs each arch."""
    several = len(config.targets) > 1
    images = tuple(
        Image(
            tag=tag,
            arch=arch,
            base=f"{config.base_for(arch)}:{tag}",
            name=f"{config.repo}:{tag}-{arch.name}" if several else f"{config.repo}:{tag}",
            label=f"{tag}-{arch.name}" if several else tag,
            extra_qemu_paths=host[arch.name].extra_qemu_paths if arch.name in host else (),
        )
        for tag in config.tags
        for arch in config.targets
        # A CI matrix cell builds its share; the names stay those of the whole
        # configured set, so that `xcompile join` finds every part.
        if not config.only or f"{tag}/{arch.name}" in config.only
    )
    manifests: tuple[ManifestList, ...] = ()
    if several and config.push and config.manifest and not config.only:
        manifests = tuple(
            ManifestList(f"{config.repo}:{tag}", tuple(i for i in images if i.tag == tag)) for tag in config.tags
        )
    return Plan(images, manifests)


class Pipeline:
    def __init__(
        self, config: Config, runner: Runner, say: Say, progress: download.ProgressCallback | None = None
    ) -> None:
        self.config = config
        self.progress = progress
        self.runner = runner
        self.say = say
        self.engine: engine.Engine = engine.ENGINES.get(config.engine, engine.DOCKER)
        """docker or podman: every container command comes from it. Settled in _prepare (auto asks)."""
        self._stop = threading.Event()
        self._interrupted = threading.Event()
        self.result: Result | None = None
        """The run's result so far, for the summary when it is interrupted."""
        self._sha256: dict[str, str] = {}
        """Each qemu binary's SHA256, taken when it is copied in (the proof compares against it)."""
        self._lock = threading.Lock()
        self._registry: registry.Reader | None = None
        self._registries: list[preflight.Registry] = []
        """Where the run pushes, as the registry check found it."""
        self._local: dict[str, Local | None] = {}
        """What the store held under each base and target name at the start (None: nothing);
        a name missing here is looked up on its own."""
        self._cleanup: ThreadPoolExecutor | None = None
        self._pulls: dict[Image, Future[str | None]] = {}
        """Each base's pull, started in _prepare: None when it worked, else why not."""

    # --- the flow -----------------------------------------------------------

    def run(self) -> Result:
        """The original's four steps. Raises only for problems that stop
        everything; per-image failures are in the result."""
        with self._prepare() as (result, images, manifests):
            emulators = self.ensure_qemu(images)
            with self.workspace() as work:
                self.copy_qemu(emulators, work, images)
                self.enable_experimental(result.engine)
                self.build_all(images, work)
                self.join_all(manifests, images, work)
        return result

    @contextlib.contextmanager
    def _prepare(self) -> Iterator[tuple[Result, dict[Image, Outcome], dict[ManifestList, Outcome]]]:
        """Plan, and ask at once what the run needs to know before it builds
        (issue 8: this fixed cost is what stands between xcompile and the
        floor): once the engine answers, the local store, the registries and
        the newest bases. The store and the registries are awaited here, each
        base's pull by its build, so that qemu is settled and copied while
        the bases come. Whatever still runs when the run stops is stopped."""
        dockerconfig.plan(self.config.docker_config)  # refuse a broken file before any work
        if self.config.push and not self.runner.dry_run:
            preflight.load_http()
        self.engine, why = engine.choose(self.config.engine, self.runner)
        # The engine answers first: where it cannot, that is the one thing to say.
        versions = self.engine.versions(self.runner)
        self.engine.check_setup(self.config.named_auth_files)
        self.say(why + (f" {versions.client}" if versions.client else ""), None)
        host = emulation.survey(self.config.targets)
        the_plan = plan(self.config, host)
        # A dry run asks nothing more here, so its plan reads in order.
        with ThreadPoolExecutor(max_workers=self.config.jobs + 1, thread_name_prefix="xcompile-ask") as asking:
            try:
                ready = asking.submit(self.check_registries)
                self._pulls = {image: asking.submit(self._pull, image) for image in self._prefetched(the_plan.images)}
                self.survey_store(the_plan.images)
                said = ready.result()  # before any work: a registry that cannot take the push stops the run here
                if said:
                    self.say(said, None)
                planned = {image.arch.name for image in the_plan.images}
                for name, assessment in host.items():
                    if name in planned:  # a CI matrix cell's arches, not every target's
                        self.say(assessment.note, None)
                images = {image: _outcome(image) for image in the_plan.images}
                manifests = {m: Outcome(m.name, m.platform, None) for m in the_plan.manifests}
                self.result = Result([*images.values(), *manifests.values()], versions)
                with self._interruptible(self.result):
                    yield self.result, images, manifests
            except BaseException:
                # Nothing waits for the answers any more: stop the pulls still
                # running (a base can take minutes) rather than wait for them.
                self.runner.terminate_all()
                raise

    def _prefetched(self, images: tuple[Image, ...]) -> tuple[Image, ...]:
        """The images whose base is pulled while the run prepares (policy
        ``always``). A dry run lists each pull in its image's place instead."""
        return images if self.config.pull == "always" and not self.runner.dry_run else ()

    def check_registries(self) -> str | None:
        """Each registry answers, and has credentials where it wants them: the line that says so."""
        if not self.config.push or self.runner.dry_run:
            return None
        self._registries = preflight.for_config(self.config, self.runner, self.engine)
        return preflight.ensure(self._registries, self._auth_files())

    def survey_store(self, images: tuple[Image, ...]) -> None:
        """What every base and target name points to now, in one `image inspect`
        instead of two per image; a name it cannot place is looked up later on its own."""
        names = sorted({image.base for image in images} | {image.name for image in images})
        if not names or self.runner.dry_run:
            return
        try:
            out, missing = self.runner.run(*self.engine.inspect_all(names, _INSPECT_FORMAT)), ""
        except CommandFailed as err:
            if err.retcode not in self.engine.missing_image_codes:
                return
            out, missing = err.stdout, err.stderr
        self._local = _placed(names, out, missing)

    def ensure_qemu(self, images: Collection[Image]) -> list[qemu.Qemu]:
        """A qemu for each emulator the planned images need (a CI matrix cell's, not every target's)."""
        arches = tuple(dict.fromkeys(image.arch for image in images))
        return qemu.ensure_all(arches, self.runner, self.config, lambda line: self.say(line, None),
                               self.progress)  # fmt: skip

    @contextlib.contextmanager
    def workspace(self) -> Iterator[Workspace]:
        """A fresh folder, removed afterwards even on failure or Ctrl-C."""
        with self.runner.temp_folder("xcompile-") as folder:
            work = Workspace(folder)
            self.runner.make_folder(work.scratch)
            yield work

    def copy_qemu(self, found: list[qemu.Qemu], work: Workspace, images: Collection[Image]) -> None:
        """cp each qemu into its build context, at every path its images have
        it, then give the tree fixed modes and times (see QEMU_LAYER)."""
        for one in found:
            tree = work.context(one.binary) / QEMU_LAYER
            paths = sorted({path for image in images if image.arch.qemu_binary == one.binary
                            for path in image.qemu_paths})  # fmt: skip
            stamped = {tree}
            for path in paths:
                target = tree / path.lstrip("/")
                self.runner.make_folder(target.parent)
                self.runner.run("cp", one.path, target)
                stamped |= {target, *(folder for folder in target.parents if folder.is_relative_to(tree))}
            self.runner.stamp(sorted(stamped), mode=QEMU_LAYER_MODE, mtime=QEMU_LAYER_MTIME)
            self._sha256[one.binary] = _sha256_or_none(one.path) or f"<SHA256 of {one.path}>"

    def enable_experimental(self, versions: engine.Versions) -> dockerconfig.Edit | None:
        if not self.engine.has_experimental:
            self.say(f"experimental: docker only; nothing to do with {self.engine.name}", None)
            return None
        if not self.engine.needs_experimental(versions):
            self.say(f"experimental: not needed with docker client {versions.client}", None)
            return None
        edit = dockerconfig.enable_experimental(self.config.docker_config, dry_run=self.runner.dry_run)
        line = edit.describe(done=not self.runner.dry_run)
        if versions.client is None and edit.action != "unchanged":
            line += f" (only where the docker client is older than {engine.EXPERIMENTAL_SINCE_TEXT})"
        self.say(line, None)
        return edit

    def build_all(self, images: dict[Image, Outcome], work: Workspace) -> None:
        # Different images are independent; a dry run stays sequential so the
        # plan reads in order.
        jobs = 1 if self.runner.dry_run else self.config.jobs
        # The removals' pool closes last: an image still running takes it to the end.
        with (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="xcompile-rm") as self._cleanup,
            ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="xcompile") as pool,
        ):
            futures = [pool.submit(self.build_verify_push, image, outcome, work) for image, outcome in images.items()]
            try:
                for future in futures:
                    future.result()
            except BaseException as err:
                if isinstance(err, KeyboardInterrupt):
                    self._interrupted.set()  # before any child is stopped, so its image reads "interrupted"
                self._stop.set()
                self.runner.terminate_all()
                raise

    def build_verify_push(self, image: Image, outcome: Outcome, work: Workspace) -> None:
        if self._stopped(outcome, "not started: an earlier image failed"):
            return
        with self._attempt(outcome):
            base_digest = self.newest_base(image)
            labels = recipe.labels(image.base, base_digest, self._sha256[image.arch.qemu_binary],
                                   image.dockerfile_template)  # fmt: skip
            if self.unchanged(image, labels, outcome):
                return
            replaced = self.image_id(image)
            built = self.build(image, work.context(image.arch.qemu_binary), labels)
            self.drop_replaced(image, replaced, built)
            outcome.status = "built"
            if self.config.verify:
                self.verify(image, work)
            if self.config.push:
                if self._stopped(outcome, "not pushed: an earlier image failed"):
                    return
                outcome.digest = self.push(image, work)
                outcome.status = "pushed"

    def newest_base(self, image: Image) -> str:
        """Pull the base (policy ``pull``), and return its digest: the registry's
        where it came from one, else the local image ID."""
        why = None
        if self.config.pull == "always":
            pulling = self._pulls.pop(image, None)
            why = pulling.result() if pulling is not None else self._pull(image)
        # A pull that failed changed nothing: what the store held at the start stands.
        found = self._base_digest(image, known=why is not None or self.config.pull != "always")
        if found is None and self.config.pull == "missing":
            why = self._pull(image)
            found = self._base_digest(image)
        if found is None:
            if self.runner.dry_run:
                return f"<digest of {image.base}>"
            pulled = f", and the pull failed: {why}" if why else ""
            raise BaseUnavailable(f"base {image.base} is not on this host{pulled}",
                                  hint="check its name, or log in to its registry")  # fmt: skip
        if why:
            self.say(f"base {image.base}: not pulled ({why}); using the one on this host, {found[:19]}", image.label)
        return found

    def _pull(self, image: Image) -> str | None:
        """None when the pull worked, else why not (in one line)."""
        try:
            insecure = reference.plain_http(image.base)
            self.runner.run(*self.engine.pull(image.base, image.platform, insecure=insecure), label=image.label)
        except CommandFailed as err:
            return _last_words(err)
        return None

    def _base_digest(self, image: Image, *, known: bool = False) -> str | None:
        if known and image.base in self._local:
            local = self._local[image.base]
        else:
            local = self._inspect(image.base, image.label)
        if local is None:
            return None
        name = image.base.rsplit(":", 1)[0]
        for entry in local.repo_digests:
            repo, _, digest = entry.partition("@")
            if repo == name or repo.endswith("/" + name):
                return digest
        return local.id

    def _inspect(self, name: str, label: str) -> Local | None:
        try:
            out = self.runner.run(*self.engine.inspect(name, _INSPECT_FORMAT), label=label)
        except CommandFailed:
            return None
        return _parse_inspect(out)

    def unchanged(self, image: Image, labels: dict[str, str], outcome: Outcome) -> bool:
        """Is the registry's image under this tag already what a build would make?"""
        if self.config.rebuild == "always" or not self.config.push:
            return False
        remote = self._read_remote(image.name, image.label)
        if remote is None or remote.is_list:
            return False
        differs = recipe.differences(labels, remote.labels)
        if differs:
            self.say(f"changed since {remote.digest[:19]}: {', '.join(differs)}; building", image.label)
            return False
        self.say(f"unchanged: {image.name} is {remote.digest} (same base, qemu and recipe)", image.label)
        outcome.status = "unchanged"
        outcome.digest = remote.digest
        return True

    def _read_remote(self, name: str, label: str) -> registry.Remote | None:
        # A dry run reads nothing: it plans every build.
        if self.runner.dry_run:
            return None
        from xcompile import registry

        path, tag = registry.split(name)
        try:
            return self._reader().read(path, tag)
        except (registry.RegistryUnreadable, ValueError) as err:
            self.say(f"cannot read {name} from the registry ({err}); building", label)
            return None

    def _reader(self) -> registry.Reader:
        from xcompile import registry

        with self._lock:
            if self._registry is None:
                # The registry check found it (a Docker Hub repo asked the daemon its address): not again.
                (where,) = self._registries or preflight.for_config(self.config, self.runner, self.engine)
                self._registry = registry.Reader(where, self._auth_files(), self.runner)
            return self._registry

    def build(self, image: Image, context: Path, labels: dict[str, str]) -> str | None:
        """Build; returns the start of the new image's ID where the builder printed it."""
        dockerfile = context / image.dockerfile_name
        # One LABEL line, not one `--label` each: the classic builder makes
        # every label switch a step of its own, with a container commit each.
        text = image.dockerfile + "LABEL " + " ".join(f"{key}={json.dumps(value)}" for key, value in labels.items())
        self.runner.write_file(dockerfile, text + "\n", label=image.label)
        out = self.runner.run(*self.engine.build(image.platform, dockerfile, image.name, context),
                              label=image.label, stream=True)  # fmt: skip
        found = _BUILT.search(out)
        return found.group(1) if found else None

    def image_id(self, image: Image) -> str | None:
        """The ID the image's name points to now (at the start of the run, where known), if any."""
        if image.name in self._local:
            local = self._local.pop(image.name)
            return local.id if local else None
        out = self.runner.run(*self.engine.inspect(image.name, "{{.Id}}"), label=image.label,
                              ok_codes=self.engine.missing_image_codes)  # fmt: skip
        return engine.image_id(out)

    def drop_replaced(self, image: Image, replaced: str | None, built: str | None = None) -> None:
        """Remove the image the new build took the name from, so that reruns
        leave no `<none>` images behind. Docker refuses (and so nothing goes)
        where a container, a child image or another tag still uses it.
        It runs beside the proof and the push, off the image's path."""
        if replaced is None:
            return
        if built is not None:
            if replaced.removeprefix("sha256:").startswith(built):
                return
        elif replaced == self.image_id(image):
            return
        if self._cleanup is None or self.runner.dry_run:
            self._remove(image, replaced)
        else:
            self._cleanup.submit(self._remove, image, replaced)

    def _remove(self, image: Image, replaced: str) -> None:
        try:
            self.runner.run(*self.engine.remove_images(replaced), label=image.label, ok_codes=(0, 1))
        except XcompileError as err:  # the new image is built and good: a leftover is worth a line, no more
            self.say(f"the image it replaced, {replaced[:19]}, is left: {err}", image.label)

    def verify(self, image: Image, work: Workspace) -> None:
        """Prove the image before it is pushed: labelled right, qemu inside, and it
        runs (see proof.py). The labels come first, since a mislabelled image
        would not even start for the target platform."""
        config = self.look_at(image)
        self._judge(proof.check_labels, image, config)
        self._judge(proof.check_qemu_inside, image, self.qemu_inside(image, config, work))
        self._judge(proof.check_machine, image, self.run_inside(image, proof.probes_for(config)))

    def _judge(self, check: Callable[[Arch, _Seen], None], image: Image, seen: _Seen) -> None:
        # A dry run has run nothing, so it has nothing to judge: the commands were the plan.
        if not self.runner.dry_run:
            check(image.arch, seen)

    def look_at(self, image: Image) -> proof.ImageConfig:
        """The image's config, labels and layer folders: one native call."""
        out = self.runner.run(*self.engine.inspect(image.name), label=image.label)
        return proof.ImageConfig.from_inspect(out)

    def qemu_inside(self, image: Image, config: proof.ImageConfig, work: Workspace) -> proof.QemuSeen:
        """The SHA256 of what the image has at each qemu path, read natively."""
        wanted = self._sha256[image.arch.qemu_binary]
        if config.layer_dirs:
            found = tuple((path, _sha256_or_none(proof.find_in_layers(config.layer_dirs, path)))
                          for path in image.qemu_paths)  # fmt: skip
            return proof.QemuSeen(wanted, found)
        # Where the layers are not on this host (a remote daemon, another
        # storage driver), copy the files out of a container that never starts.
        run = self.runner.run
        container = run(*self.engine.create(image.platform, image.name, "true"), label=image.label)
        container = container.strip() or "CONTAINER"
        copies: list[tuple[str, str | None]] = []
        try:
            for path in image.qemu_paths:
                copied = work.scratch / f"{image.label}-{Path(path).name}"
                try:
                    run(*self.engine.copy_out(container, path, copied), label=image.label)
                except CommandFailed:
                    copies.append((path, None))
                else:
                    copies.append((path, _sha256_or_none(copied)))
        finally:
            with contextlib.suppress(CommandFailed):
                run(*self.engine.remove_container(container), label=image.label)
        return proof.QemuSeen(wanted, tuple(copies))

    def run_inside(self, image: Image, probes: tuple[proof.Probe, ...]) -> proof.Machine:
        """One emulated run: the first probe whose program the image has."""
        for probe in probes:
            # Named, so that a run that outlives --proof-timeout can be removed:
            # its program, as PID 1, ignores the SIGTERM the client passes on,
            # and the client waits for it.
            container = f"xcompile-proof-{uuid.uuid4().hex[:12]}"
            argv = self.engine.run(image.platform, image.name, *probe.args, entrypoint=probe.entrypoint,
                                   name=container)  # fmt: skip
            remove = functools.partial(self._remove_container, container, image.label)
            try:
                out = self.runner.run(*argv, label=image.label, timeout=self.config.proof_timeout, on_timeout=remove)
            except CommandFailed as err:
                if proof.lacks_program(err, probe.entrypoint):
                    continue
                raise proof.run_failed(image.arch, err, self.engine.program) from None
            machine = proof.read_probe(probe, out)
            if machine.python is None and machine.uname is not None:
                self.say("no python3 in the image; checked with uname only", image.label)
            return machine
        raise proof.nothing_to_run()

    def _remove_container(self, container: str, label: str) -> None:
        try:
            self.runner.run(*self.engine.remove_container(container, force=True), label=label,
                            timeout=_REMOVE_TIMEOUT)  # fmt: skip
        except XcompileError as err:  # the image has failed already; this is worth a line, no more
            self.say(f"its container {container} is left: {err}", label)

    def push(self, image: Image, work: Workspace) -> str | None:
        digest_file = work.scratch / f"{image.label}.digest"
        argv = self.engine.push(image.name, insecure=self._insecure(), digest_file=digest_file)
        try:
            out = self.runner.run(*argv, label=image.label, stream=True)
        except CommandFailed as err:
            raise preflight.gone(err, self.config.repo) or err from None
        return self.engine.pushed_digest(out, digest_file)

    def join_all(self, manifests: dict[ManifestList, Outcome], images: dict[Image, Outcome], work: Workspace) -> None:
        for manifest, outcome in manifests.items():
            self.push_manifest(manifest, outcome, [images[image] for image in manifest.images], work)

    def push_manifest(self, manifest: ManifestList, outcome: Outcome, parts: list[Outcome], work: Workspace) -> None:
        if self._stop.is_set() or any(p.status not in ("pushed", "unchanged", "planned") for p in parts):
            outcome.error = "not joined: not every image of this tag was pushed"
            return
        if all(p.status == "unchanged" for p in parts):
            label = manifest.name.rsplit(":", 1)[1]
            remote = self._read_remote(manifest.name, label)
            if remote is not None and remote.parts == {p.digest for p in parts}:
                self.say(f"unchanged: {manifest.name} is {remote.digest} (every image in it unchanged)", label)
                outcome.status, outcome.digest = "unchanged", remote.digest
                return
        insecure = self._insecure()
        label = manifest.name.rsplit(":", 1)[1]
        digest_file = work.scratch / f"{label}.list.digest"
        members = [(image.name, engine.Platform.of(image.arch)) for image in manifest.images]
        with self._attempt(outcome):
            outcome.digest = self.engine.push_list(self.runner, manifest.name, members, insecure=insecure,
                                                   digest_file=digest_file, label=label)  # fmt: skip
            outcome.status = "pushed"

    # --- helpers ------------------------------------------------------------

    @contextlib.contextmanager
    def _interruptible(self, result: Result) -> Iterator[None]:
        """On Ctrl-C, SIGTERM or SIGHUP (errors.Interrupted), once the
        workspace is gone and every child stopped: say which never finished."""
        try:
            yield
        except KeyboardInterrupt:
            for outcome in result.outcomes:
                if outcome.status == "skipped" and outcome.error is None:
                    outcome.status, outcome.error = "interrupted", "interrupted"
            raise

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
            outcome.status = "failed"
            outcome.error = str(err)
            if not self.config.keep_going:
                self._stop.set()
        finally:
            outcome.seconds = time.monotonic() - started

    def _auth_files(self) -> tuple[Path, ...]:
        return self.engine.auth_files(self.config.docker_config, self.config.podman_auth_file)

    def _insecure(self) -> bool:
        return reference.plain_http(self.config.repo, self.config.insecure)


_Seen = TypeVar("_Seen")


def _outcome(image: Image) -> Outcome:
    return Outcome(image.name, image.platform, image.base)


_REMOVE_TIMEOUT = 60
"""Seconds to remove a proof container that outlived its run: an engine that
lost the container's exit does not answer at all."""
_BUILT = re.compile(r"^Successfully built ([0-9a-f]{12,64})$", re.MULTILINE)
_NO_SUCH_IMAGE = re.compile(r"No such image: (\S+)")


def _parse_inspect(line: str) -> Local | None:
    """One line of _INSPECT_FORMAT (podman prints the ID without "sha256:")."""
    rest = line.strip().partition(" ")[2]
    digests, _, printed = rest.rpartition(" ")
    image_id = engine.image_id(printed)
    if image_id is None:
        return None
    return Local(image_id, tuple(str(d) for d in json.loads(digests or "null") or ()))


def _placed(names: list[str], out: str, missing: str) -> dict[str, Local | None]:
    """Each name that one `image inspect` of ``names`` answered for: its image,
    or None where the engine said it has no such image. Names it cannot place
    (spelled otherwise in RepoTags) are left out."""
    placed: dict[str, Local | None] = {}
    for line in out.splitlines():
        local = _parse_inspect(line)
        if local is None:
            continue
        tags = {_familiar(str(tag)) for tag in json.loads(line.strip().partition(" ")[0] or "null") or ()}
        placed.update((name, local) for name in names if _familiar(name) in tags)
    for name in _NO_SUCH_IMAGE.findall(missing):
        if name in names and name not in placed:
            placed[name] = None
    return placed


def _familiar(name: str) -> str:
    """A name as RepoTags shows it (docker.io/library/ left out)."""
    for prefix in ("docker.io/", "index.docker.io/"):
        name = name.removeprefix(prefix)
    if name.startswith("library/") and name.count("/") == 1:
        name = name.removeprefix("library/")
    return name


def _sha256_or_none(path: Path | None) -> str | None:
    return files.sha256_of(path) if path is not None and path.is_file() else None


def _last_words(err: CommandFailed) -> str:
    lines = [line.strip() for line in f"{err.stderr}\n{err.stdout}".splitlines() if line.strip()]
    return lines[-1] if lines else str(err)
