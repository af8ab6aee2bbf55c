"""`xcompile join`: one manifest list per configured tag, from parts that CI
matrix cells (`xcompile build --only TAG/ARCH`) already pushed.

This is the last job of a matrix, the way Docker describes multi-platform
builds across runners: push each part, then merge. Every part is checked
before any list is made (it exists, and its image config says the right
platform), and a list that already holds exactly those parts is left alone,
so a join can be run again.

Two tools make the list: `docker buildx imagetools create` where the engine
is docker and the buildx plugin is present (no experimental flag, nothing
pulled), else the chosen engine's own manifest commands (`docker manifest`,
`podman manifest`: the engine's command shapes), with the parts read through
the registry API (registry.py).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from xcompile import dockerconfig, engine, preflight, reference
from xcompile.config import Config
from xcompile.engine import Platform
from xcompile.errors import CommandFailed, UsageError, XcompileError
from xcompile.platforms import Arch
from xcompile.runner import Runner

if TYPE_CHECKING:  # requests loads only when a registry is read (issue 8: start-up time)
    from xcompile import registry

Say = Callable[[str], None]
_LIST_TYPES = (
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
)
# What each tool says when the registry has no such tag.
_MISSING = ("no such manifest", "not found", "manifest unknown")


class JoinFailed(XcompileError):
    """A part is missing or is not what its name says (exit 1)."""


@dataclass(frozen=True)
class Remote:
    """A tag in the registry: one image, or a list of them."""

    ref: str
    digest: str
    platform: Platform | None = None
    """An image's own, from its config."""
    members: tuple[tuple[str, Platform], ...] | None = None
    """A list's (digest, platform) pairs; None for an image."""


@dataclass(frozen=True)
class Part:
    arch: Arch
    ref: str
    """Where a cell pushed it: repo:tag-<arch>."""


@dataclass(frozen=True)
class Joined:
    name: str
    digest: str | None
    changed: bool
    platforms: tuple[str, ...]


class ListTool(Protocol):
    name: str

    def inspect(self, ref: str) -> Remote | None: ...

    def create(self, name: str, parts: list[tuple[str, Arch]]) -> str | None:
        """Push the list; its digest where the tool says it."""
        ...


class Imagetools:
    """`docker buildx imagetools`: reads and writes the registry directly."""

    name = "docker buildx imagetools"

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    def inspect(self, ref: str) -> Remote | None:
        try:
            out = self.runner.run("docker", "buildx", "imagetools", "inspect", "--format", "{{json .}}", ref)
        except CommandFailed as err:
            _raise_unless_missing(err)
            return None
        data = json.loads(out)
        manifest = data.get("manifest") or {}
        digest = str(manifest.get("digest", ""))
        if manifest.get("mediaType") in _LIST_TYPES:
            members = tuple((str(m["digest"]), _platform(m.get("platform") or {})) for m in manifest["manifests"])
            return Remote(ref, digest, members=members)
        return Remote(ref, digest, platform=_platform(data.get("image") or {}))

    def create(self, name: str, parts: list[tuple[str, Arch]]) -> str | None:
        # The platforms come from each part's image config.
        self.runner.run("docker", "buildx", "imagetools", "create", "-t", name, *(ref for ref, _ in parts))
        return None


class EngineManifest:
    """The chosen engine's `manifest` commands make the list (docker's needs the
    client's experimental flag before 20.10); the registry API reads the parts,
    with that engine's credentials, so no engine has to inspect anything."""

    def __init__(
        self, runner: Runner, shapes: engine.Engine, reader: Callable[[], registry.Reader], *, insecure: bool
    ) -> None:
        self.runner = runner
        self.shapes = shapes
        self.reader = reader
        self.insecure = insecure
        self.name = f"{shapes.program} manifest"

    def inspect(self, ref: str) -> Remote | None:
        from xcompile import registry

        path, tag = registry.split(ref)
        found = self.reader().read(path, tag)
        if found is None:
            return None
        if found.is_list:
            # Only the members' digests are compared, not their platforms.
            return Remote(ref, found.digest, members=tuple((d, Platform("", "")) for d in sorted(found.parts)))
        return Remote(ref, found.digest, platform=Platform(*found.platform) if found.platform else None)

    def create(self, name: str, parts: list[tuple[str, Arch]]) -> str | None:
        members = [(ref, Platform.of(arch)) for ref, arch in parts]
        with tempfile.TemporaryDirectory(prefix="xcompile-join-") as scratch:
            return self.shapes.push_list(self.runner, name, members, insecure=self.insecure,
                                         digest_file=Path(scratch) / "list.digest")  # fmt: skip


def choose_tool(config: Config, runner: Runner, say: Say) -> ListTool:
    """buildx's imagetools where the engine has it and the plugin answers,
    else the engine's own manifest commands."""
    shapes, why = engine.choose(config.engine, runner)
    if config.engine == "auto":
        say(why)
    if shapes.has_imagetools:
        try:
            runner.run(shapes.program, "buildx", "version")
        except CommandFailed:
            pass
        else:
            return Imagetools(runner)
    if not runner.dry_run and shapes.needs_experimental(shapes.versions(runner)):
        say(dockerconfig.enable_experimental(config.docker_config).describe(done=True))
    auth_files = shapes.auth_files(config.docker_config, config.podman_auth_file)
    readers: list[registry.Reader] = []

    def reader() -> registry.Reader:
        from xcompile import registry

        if not readers:
            (where,) = preflight.for_config(config, runner, shapes)
            readers.append(registry.Reader(where, auth_files, runner))
        return readers[0]

    return EngineManifest(runner, shapes, reader, insecure=reference.plain_http(config.repo, config.insecure))


def parts(config: Config) -> dict[str, list[Part]]:
    """Each configured tag's list name and its parts, as `build --only` names them."""
    return {
        f"{config.repo}:{tag}": [Part(arch, f"{config.repo}:{tag}-{arch.name}") for arch in config.targets]
        for tag in config.tags
    }


def join(config: Config, runner: Runner, say: Say) -> list[Joined]:
    """Check every part of every tag, then make (or leave) each tag's list."""
    if config.only:
        raise UsageError("join makes every configured tag's list; --only is for build")
    if len(config.targets) < 2:
        # Not an error: the same CI pipeline works while a project has one arch.
        say(f"nothing to join: with one architecture ({config.arches[0]}) each tag is pushed as the image itself")
        return []
    tool = choose_tool(config, runner, say)
    say(f"join: with {tool.name}")
    wanted = parts(config)
    if runner.dry_run:
        for name, its_parts in wanted.items():
            tool.create(name, [(part.ref, part.arch) for part in its_parts])
        return [Joined(name, None, True, tuple(p.arch.platform for p in ps)) for name, ps in wanted.items()]
    found: dict[str, list[Remote]] = {}
    problems: list[str] = []
    for name, its_parts in wanted.items():
        found[name] = []
        for part in its_parts:
            remote, problem = _check(tool, part)
            if problem:
                problems.append(problem)
            elif remote is not None:
                found[name].append(remote)
    if problems:
        raise JoinFailed(
            "cannot join: " + "; ".join(problems),
            hint="run `xcompile build --only TAG/ARCH` for each missing cell first (see `xcompile matrix`)",
        )
    return [_join_one(tool, name, wanted[name], found[name], say) for name in wanted]


def _check(tool: ListTool, part: Part) -> tuple[Remote | None, str | None]:
    remote = tool.inspect(part.ref)
    if remote is None:
        return None, f"{part.ref} is not in the registry"
    if remote.members is not None:
        return None, f"{part.ref} is a manifest list, not one {part.arch.platform} image"
    got = remote.platform
    if got is None or not part.arch.matches(got.os, got.architecture, got.variant):
        return None, f"{part.ref} is {_text(got)}, not {part.arch.platform}"
    return remote, None


def _join_one(tool: ListTool, name: str, its_parts: list[Part], remotes: list[Remote], say: Say) -> Joined:
    platforms = tuple(part.arch.platform for part in its_parts)
    repo = name.rsplit(":", 1)[0]
    # By digest, so the list holds exactly what was checked, even if a cell
    # pushes again meanwhile.
    pinned = [(f"{repo}@{remote.digest}", part.arch) for part, remote in zip(its_parts, remotes, strict=True)]
    current = tool.inspect(name)
    held = sorted(digest for digest, _ in current.members) if current and current.members is not None else None
    if held == sorted(remote.digest for remote in remotes):
        say(f"{name}: already holds these {len(remotes)} parts; unchanged")
        return Joined(name, current.digest or None if current else None, False, platforms)
    pushed = tool.create(name, pinned)
    made = tool.inspect(name)
    if made is None or made.members is None:
        raise JoinFailed(f"{name}: {tool.name} reported success, but the registry has no list there")
    return Joined(name, made.digest or pushed, True, platforms)


def _platform(data: dict[str, Any]) -> Platform:
    return Platform(str(data.get("os", "")), str(data.get("architecture", "")), data.get("variant") or None)


def _text(platform: Platform | None) -> str:
    if platform is None:
        return "of no platform"
    return "/".join(p for p in (platform.os, platform.architecture, platform.variant) if p)


def _raise_unless_missing(err: CommandFailed) -> None:
    text = f"{err.stderr}\n{err.stdout}".lower()
    if not any(word in text for word in _MISSING):
        raise err
