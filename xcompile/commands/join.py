"""Step 5, on its own: `xcompile join` makes one manifest list per configured tag,
from parts that CI matrix cells (`xcompile build --only TAG/ARCH`) already pushed.

This is the last job of a matrix, the way Docker describes multi-platform
builds across runners: push each part, then merge. Every part is checked
before any list is made (it exists, and its image config says the right
platform), and a list that already holds exactly those parts is left alone,
so a join can be run again. A part that BuildKit pushed as an index with
attestation manifests beside the image (`docker buildx build --provenance`)
counts as its image, read by its digest, so that the list never holds the
index and the image's own config says its platform. The tools that make
lists are in registry/lists.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from xcompile import registry
from xcompile.engine import Platform, dockerconfig
from xcompile.engine.choice import Chosen, choose
from xcompile.errors import CommandFailed, JoinFailed
from xcompile.host.platforms import Arch
from xcompile.registry import Remote, recipe, reference
from xcompile.settings.config import Config
from xcompile.system.runner import Runner
from xcompile.system.terminal import Say

if TYPE_CHECKING:  # requests loads only when a registry is read (start-up time)
    from xcompile.registry.lists import ListTool
    from xcompile.registry.reader import Reader


@dataclass(frozen=True)
class Part:
    arch: Arch
    ref: str
    """Where a cell pushed it: registry.part_name."""


@dataclass(frozen=True)
class Joined:
    name: str
    digest: str | None
    changed: bool
    platforms: tuple[str, ...]


def choose_tool(config: Config, chosen: Chosen, runner: Runner, say: Say) -> ListTool:
    """buildx's imagetools where the engine has it and the plugin answers,
    else the engine's own manifest commands."""
    from xcompile.registry import check, lists
    from xcompile.registry.reader import Reader

    engine = chosen.engine
    if config.engine == "auto":
        say(chosen.why, None)
    if chosen.fitted:
        say(chosen.fitted, None)
    if engine.has_imagetools:
        try:
            answer = runner.ask(engine.program, "buildx", "version")
        except CommandFailed:
            pass  # no buildx plugin
        else:
            if answer is not None:
                return lists.Imagetools(runner)
            say(
                "join: buildx was not asked (a dry run); where it answers, `docker buildx imagetools` makes the lists",
                None,
            )
    versions = engine.versions(runner)
    if engine.needs_experimental(versions):
        edit, written = dockerconfig.enable_experimental(config.docker_config, runner)
        say(edit.describe(done=written), None)
    readers: list[Reader] = []

    def reader() -> Reader:
        if not readers:
            (where,) = check.for_repo(config.repo, config.insecure, runner, engine)
            readers.append(Reader(where, chosen.auth_files, runner))
        return readers[0]

    return lists.EngineManifest(runner, engine, reader, insecure=reference.plain_http(config.repo, config.insecure))


def parts(config: Config) -> dict[str, list[Part]]:
    """Each configured tag's list name and its parts, as `build --only` names them."""
    return {
        f"{config.repo}:{tag}": [Part(arch, registry.part_name(config.repo, tag, arch.name)) for arch in config.targets]
        for tag in config.tags
    }


def join(config: Config, runner: Runner, say: Say) -> list[Joined]:
    """Check every part of every tag, then make (or leave) each tag's list."""
    if len(config.targets) < 2:
        # Not an error: the same CI pipeline works while a project has one arch.
        say(f"nothing to join: with one architecture ({config.arches[0]}) each tag is pushed as the image itself", None)
        return []
    chosen = choose(config.engine, runner, config.auth_places, Path.home(), say)
    tool = choose_tool(config, chosen, runner, say)
    say(f"join: with {tool.name}", None)
    wanted = parts(config)
    seen = runner.look(lambda: {part.ref: _image_of(tool, part) for its_parts in wanted.values() for part in its_parts})
    if seen is None:  # not asked (a dry run): the plan makes each list from the names
        for name, its_parts in wanted.items():
            tool.create(name, [(part.ref, Platform.of(part.arch)) for part in its_parts])
        return [Joined(name, None, True, tuple(p.arch.platform for p in ps)) for name, ps in wanted.items()]
    found: dict[str, list[Remote]] = {}
    problems: list[str] = []
    for name, its_parts in wanted.items():
        checked = [_check(part, seen[part.ref], config.qemu_host) for part in its_parts]
        problems += [problem for _, problem in checked if problem]
        found[name] = [remote for remote, _ in checked if remote is not None]
    if problems:
        raise JoinFailed(
            "cannot join: " + "; ".join(problems),
            hint="run `xcompile build --only TAG/ARCH` for each missing cell first (see `xcompile matrix`)",
        )
    return [_join_one(tool, name, wanted[name], found[name], say) for name in wanted]


def _image_of(tool: ListTool, part: Part) -> Remote | None:
    """What the registry holds under the part's name; for BuildKit's index of one
    image and its attestation manifests (buildx >= 0.10 with --provenance or
    --sbom, as GitHub's build-push-action pushes), that image, read by its
    digest: a list member is never an index, and its platform is the one its
    own config says, not the one the index claims for it."""
    remote = tool.inspect(part.ref)
    if remote is None or not remote.is_list:
        return remote
    real = [member for member in remote.members or () if not member.is_attestation]
    if len(real) != 1:
        return remote  # a list of several images: _check refuses it
    image = tool.inspect(f"{part.ref.rsplit(':', 1)[0]}@{real[0].digest}")
    return None if image is None else Remote(part.ref, real[0].digest, image.labels, image.platform)


def _check(part: Part, remote: Remote | None, qemu_host: str) -> tuple[Remote | None, str | None]:
    """The part as the registry holds it, or what is wrong with it (its qemu built for another qemu host too)."""
    if remote is None:
        return None, f"{part.ref} is not in the registry"
    if remote.is_list:
        return None, f"{part.ref} is a manifest list, not one {part.arch.platform} image"
    got = remote.platform
    if got is None or not part.arch.matches(got.os, got.architecture, got.variant):
        return None, f"{part.ref} is {got or 'of no platform'}, not {part.arch.platform}"
    built_for = remote.labels.get(recipe.QEMU_HOST, "amd64")  # no label: from before it, for amd64
    if built_for != qemu_host:
        return None, f"{part.ref} carries qemu for the qemu host {built_for}, not {qemu_host}"
    return remote, None


def _join_one(tool: ListTool, name: str, its_parts: list[Part], remotes: list[Remote], say: Say) -> Joined:
    from xcompile.registry import lists

    platforms = tuple(part.arch.platform for part in its_parts)
    repo = name.rsplit(":", 1)[0]
    # By digest, so the list holds exactly what was checked, even if a cell pushes again meanwhile.
    pinned = [
        (f"{repo}@{remote.digest}", Platform.of(part.arch)) for part, remote in zip(its_parts, remotes, strict=True)
    ]
    current = tool.inspect(name)
    if lists.holds_exactly(current, (remote.digest for remote in remotes)) and current is not None:
        say(f"{name}: already holds these {len(remotes)} parts; unchanged", None)
        return Joined(name, current.digest or None, False, platforms)
    pushed = tool.create(name, pinned)
    made = tool.inspect(name)
    if made is None or not made.is_list:
        msg = f"{name}: {tool.name} reported success, but the registry has no list there"
        raise JoinFailed(msg)
    return Joined(name, made.digest or pushed, True, platforms)
