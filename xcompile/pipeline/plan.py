"""What a run makes, decided before anything runs: every image and manifest list, and how each ended.

The plan is a pure function of the config and the host's binfmt
registrations (``plan``). ``Outcome`` and ``Result`` are what the summary and
the report show.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from xcompile import engine, registry
from xcompile.host import emulation
from xcompile.host.platforms import Arch
from xcompile.settings.config import Config

ImageStatus = Literal["pushed", "built", "unchanged", "failed", "skipped", "planned", "interrupted"]
"""How an image or a list ended, as the summary and the report say it (a check's verdict is system/terminal.py's
``Status``)."""

QEMU_LAYER = "qemu-layer"
"""The build context's tree of qemu at each path the image has it (see pipeline/context.py)."""


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
        where = ", ".join(self.qemu_paths)
        return f"FROM {{base}}\n# {QEMU_LAYER}/ holds {self.arch.qemu_binary} at {where}\nCOPY {QEMU_LAYER}/ /\n"

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

    @property
    def label(self) -> str:
        return self.name.rsplit(":", 1)[1]

    def members(self) -> list[tuple[str, engine.Platform]]:
        return [(image.name, engine.Platform.of(image.arch)) for image in self.images]


@dataclass(frozen=True)
class Plan:
    images: tuple[Image, ...]
    manifests: tuple[ManifestList, ...]


@dataclass(frozen=True)
class ProofRun:
    """The user's proof command in one image: what ran, how it ended, and under which qemu."""

    command: str
    exit: int | None
    seconds: float
    qemu: str
    """Which qemu ran the programs it started, in words: the shipped one, or the host's (binfmt F)."""
    host_qemu: str | None = None
    """Where the host's qemu ran them: its --version line (or path); None: the shipped one did."""
    same_bytes: bool = False
    """Where the host's qemu ran them: whether it is the same bytes as the shipped one."""


@dataclass
class Outcome:
    name: str
    platform: str
    base: str | None
    status: ImageStatus = "skipped"
    digest: str | None = None
    seconds: float = 0.0
    error: str | None = None
    qemu_version: str | None = None
    qemu_source: str | None = None
    qemu_host: str | None = None
    """The machine whose CPU the qemu inside is built for (amd64, arm64v8, ...)."""
    ran: str | None = None
    """How the proof ran the image: natively, or through which qemu."""
    proof: ProofRun | None = None

    @classmethod
    def of(cls, image: Image) -> Outcome:
        return cls(image.name, image.platform, image.base)


@dataclass
class Result:
    outcomes: list[Outcome]
    versions: engine.Versions
    """The engine's name and versions."""

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
            name=registry.part_name(config.repo, tag, arch.name) if several else f"{config.repo}:{tag}",
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
