"""The original bash flow, step for step:

1. ensure qemu            (apt-get install qemu-user-static, or find it)
2. cp it into the build context
3. enable experimental    ("experimental": "enabled" in the docker config)
4. for each image: docker build, then docker push

The plan (which images, which Dockerfiles) is a pure function of the config;
only the runner and the config edit touch the world.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from xcompile import dockerconfig, qemu
from xcompile.config import Config
from xcompile.errors import CommandFailed, DockerUnavailable, XcompileError
from xcompile.runner import Runner

Status = Literal["pushed", "built", "failed", "skipped", "planned"]
DOCKER_PROBE_TIMEOUT = 30.0
_DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64})")


@dataclass(frozen=True)
class Image:
    tag: str
    base: str
    """The foreign base, e.g. arm32v7/python:3.7."""
    name: str
    """What is built and pushed, e.g. brewblox/rpi-python:3.7."""
    platform: str
    qemu_binary: str

    @property
    def dockerfile_name(self) -> str:
        return f"Dockerfile.{self.tag}"

    @property
    def dockerfile(self) -> str:
        # The original's two lines. The path matters: hosts whose binfmt entry
        # lacks the F flag make the kernel look the emulator up in the image.
        return f"FROM {self.base}\nCOPY {self.qemu_binary} /usr/bin/{self.qemu_binary}\n"


@dataclass
class Outcome:
    image: Image
    status: Status = "skipped"
    digest: str | None = None
    seconds: float = 0.0
    error: str | None = None


@dataclass(frozen=True)
class DockerVersions:
    client: str | None = None
    server: str | None = None


@dataclass
class Result:
    outcomes: list[Outcome]
    docker: DockerVersions
    qemu: qemu.Qemu | None = None
    edit: dockerconfig.Edit | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(o.error is None for o in self.outcomes)


def plan_images(config: Config) -> list[Image]:
    arch = config.target
    return [
        Image(
            tag=tag,
            base=f"{config.base}:{tag}",
            name=f"{config.repo}:{tag}",
            platform=arch.platform,
            qemu_binary=arch.qemu_binary,
        )
        for tag in config.tags
    ]


class Pipeline:
    def __init__(self, config: Config, runner: Runner, say: Callable[[str, str | None], None]) -> None:
        self.config = config
        self.run_ = runner.run
        self.runner = runner
        self.say = say
        self._stop = threading.Event()

    # --- the flow -----------------------------------------------------------

    def run(self) -> Result:
        """Check the environment, then run the four steps. Raises only for
        problems that stop everything; per-image failures are in the result."""
        images = plan_images(self.config)
        dockerconfig.plan(self.config.docker_config)  # refuse a broken file before any work
        result = Result([Outcome(image) for image in images], self.check_docker())
        result.qemu = self.ensure_qemu()
        with self.build_context() as context:
            self.copy_qemu(result.qemu, context)
            result.edit = self.enable_experimental()
            self.build_and_push_all(result.outcomes, context)
        return result

    def check_docker(self) -> DockerVersions:
        try:
            out = self.run_("docker", "version", "--format", "{{json .}}", timeout=DOCKER_PROBE_TIMEOUT)
        except CommandFailed as err:
            raise _docker_unavailable(err) from None
        if self.runner.dry_run:
            return DockerVersions()
        try:
            info = json.loads(out)
        except json.JSONDecodeError:
            return DockerVersions()
        return DockerVersions(
            client=(info.get("Client") or {}).get("Version"),
            server=(info.get("Server") or {}).get("Version"),
        )

    def ensure_qemu(self) -> qemu.Qemu:
        found = qemu.ensure(self.config.target, self.runner)
        for note in found.notes:
            self.say(f"warning: {note}", None)
        self.say(f"qemu: {found.path} ({found.how})", None)
        return found

    @contextlib.contextmanager
    def build_context(self) -> Iterator[Path]:
        """A fresh folder, removed afterwards even on failure or Ctrl-C."""
        if self.runner.dry_run:
            yield Path(tempfile.gettempdir()) / "xcompile-XXXXXX"
            return
        folder = Path(tempfile.mkdtemp(prefix="xcompile-"))
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def copy_qemu(self, found: qemu.Qemu, context: Path) -> None:
        self.run_("cp", found.path, context / self.config.target.qemu_binary)

    def enable_experimental(self) -> dockerconfig.Edit:
        edit = dockerconfig.enable_experimental(self.config.docker_config, dry_run=self.runner.dry_run)
        self.say(edit.describe(done=not self.runner.dry_run), None)
        return edit

    def build_and_push_all(self, outcomes: list[Outcome], context: Path) -> None:
        # Different tags are independent; a dry run stays sequential so the
        # plan reads in order.
        jobs = 1 if self.runner.dry_run else self.config.jobs
        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="xcompile") as pool:
            futures = [pool.submit(self.build_and_push, outcome, context) for outcome in outcomes]
            try:
                for future in futures:
                    future.result()
            except BaseException:
                self._stop.set()
                self.runner.terminate_all()
                raise

    def build_and_push(self, outcome: Outcome, context: Path) -> None:
        image = outcome.image
        if self._stop.is_set():
            outcome.error = "not started: an earlier image failed"
            return
        started = time.monotonic()
        try:
            self.build(image, context)
            outcome.status = "built"
            if self.config.push and self._stop.is_set():
                outcome.error = "not pushed: an earlier image failed"
            elif self.config.push:
                outcome.digest = self.push(image)
                outcome.status = "pushed"
            if self.runner.dry_run:
                outcome.status = "planned"
        except XcompileError as err:
            outcome.status = "failed"
            outcome.error = str(err)
            if not self.config.keep_going:
                self._stop.set()
        finally:
            outcome.seconds = time.monotonic() - started

    def build(self, image: Image, context: Path) -> None:
        dockerfile = context / image.dockerfile_name
        if self.runner.dry_run:
            self.say(f"write {dockerfile}: " + image.dockerfile.replace("\n", "; ").rstrip("; "), image.tag)
        else:
            dockerfile.write_text(image.dockerfile, encoding="utf-8")
        self.run_(
            "docker", "build",
            "--platform", image.platform,
            "--no-cache",
            "-f", dockerfile,
            "-t", image.name,
            context,
            label=image.tag, stream=True,
        )  # fmt: skip

    def push(self, image: Image) -> str | None:
        out = self.run_("docker", "push", image.name, label=image.tag, stream=True)
        match = _DIGEST.search(out)
        return match.group(1) if match else None


def _docker_unavailable(err: CommandFailed) -> DockerUnavailable:
    text = err.stderr or err.stdout
    if err.retcode is None:
        return DockerUnavailable(
            f"docker daemon did not answer within {DOCKER_PROBE_TIMEOUT:g} s",
            hint="check that dockerd is running and healthy",
        )
    found = re.search(r"Cannot connect to the Docker daemon at (\S+?)\.? Is the docker daemon running", text)
    if found:
        return DockerUnavailable(
            f"docker daemon not reachable at {found.group(1)}",
            hint="start it (e.g. `sudo systemctl start docker`, or `sudo dockerd &`)",
        )
    if "permission denied" in text.lower():
        return DockerUnavailable(
            "permission denied on the docker daemon's socket",
            hint="add yourself to the docker group, or run as root",
        )
    return DockerUnavailable(f"docker daemon not usable: {err}")
