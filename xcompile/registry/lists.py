"""Manifest lists: made afresh from pushed images, pushed, read back, and judged unchanged.

Two tools make a list. `docker buildx imagetools` reads and writes the
registry directly (no experimental flag, nothing pulled) where the engine is
docker and the plugin answers; else the engine's own `manifest` commands,
with the parts read through the registry API (``reader``).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

from xcompile import registry
from xcompile.engine import Engine, Platform, classify
from xcompile.errors import CommandFailed, RegistryUnreadable
from xcompile.registry import Member, Remote
from xcompile.registry.reader import Reader
from xcompile.system.runner import Runner


def holds_exactly(current: Remote | None, digests: Iterable[str]) -> bool:
    """Is ``current`` a list of exactly these images? Then making it again changes nothing."""
    return current is not None and current.is_list and current.parts == frozenset(digests)


def push_list(
    runner: Runner,
    engine: Engine,
    name: str,
    members: list[tuple[str, Platform]],
    *,
    insecure: bool,
    digest_file: Path,
    label: str | None = None,
) -> str | None:
    """Make the manifest list ``name`` afresh from ``members`` (each pushed image
    with its platform) with the engine's `manifest` commands, push it, and return its digest."""
    runner.run(*engine.manifest_remove_cmd(name), label=label, ok_codes=(0, 1))
    runner.run(*engine.manifest_create_cmd(name, [ref for ref, _ in members], insecure=insecure), label=label)
    for ref, platform in members:
        runner.run(*engine.manifest_member_cmd(name, ref, platform, insecure=insecure), label=label)
    out = runner.run(*engine.manifest_push_cmd(name, insecure=insecure, digest_file=digest_file), label=label)
    return engine.manifest_digest(out, digest_file)


class ListTool(Protocol):
    name: str

    def inspect(self, ref: str) -> Remote | None:
        """The image or list at ``ref``; None where the registry has no such tag."""
        ...

    def create(self, name: str, parts: list[tuple[str, Platform]]) -> str | None:
        """Push the list; its digest where the tool says it."""
        ...


class Imagetools:
    """`docker buildx imagetools`: reads and writes the registry directly."""

    name = "docker buildx imagetools"

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    def inspect(self, ref: str) -> Remote | None:
        try:
            out = self.runner.ask("docker", "buildx", "imagetools", "inspect", "--format", "{{json .}}", ref)
        except CommandFailed as err:
            if classify(err).kind == "missing-image":
                return None
            raise
        return _from_imagetools(ref, out or "")

    def create(self, name: str, parts: list[tuple[str, Platform]]) -> str | None:
        # The platforms come from each part's image config.
        self.runner.run("docker", "buildx", "imagetools", "create", "-t", name, *(ref for ref, _ in parts))
        return None


class EngineManifest:
    """The chosen engine's `manifest` commands make the list (docker's needs the
    client's experimental flag before 20.10); the registry API reads the parts,
    with that engine's credentials, so no engine has to inspect anything."""

    def __init__(self, runner: Runner, engine: Engine, reader: Callable[[], Reader], *, insecure: bool) -> None:
        self.runner = runner
        self.engine = engine
        self.reader = reader
        self.insecure = insecure
        self.name = f"{engine.program} manifest"

    def inspect(self, ref: str) -> Remote | None:
        path, tag = registry.split(ref)
        return self.reader().read(path, tag)

    def create(self, name: str, parts: list[tuple[str, Platform]]) -> str | None:
        with tempfile.TemporaryDirectory(prefix="xcompile-join-") as scratch:
            return push_list(
                self.runner, self.engine, name, parts, insecure=self.insecure, digest_file=Path(scratch) / "list.digest"
            )


def _from_imagetools(ref: str, out: str) -> Remote:
    """`imagetools inspect --format '{{json .}}'`: {"manifest": {...}, "image": {...}}."""
    try:
        data = json.loads(out)
    except ValueError:
        msg = f"buildx imagetools printed something that is not JSON for {ref}"
        raise RegistryUnreadable(msg) from None
    manifest = data.get("manifest") if isinstance(data, dict) else None
    if not isinstance(manifest, dict):
        msg = f"buildx imagetools printed no manifest for {ref}"
        raise RegistryUnreadable(msg)
    digest = str(manifest.get("digest", ""))
    if manifest.get("mediaType") in registry.LIST_TYPES:
        entries = manifest.get("manifests")
        if not isinstance(entries, list):
            msg = f"the list {ref} has no manifests"
            raise RegistryUnreadable(msg)
        members = tuple(
            Member(str(entry.get("digest", "")), registry.platform_of(entry.get("platform")) or Platform("", ""))
            for entry in entries
            if isinstance(entry, dict)
        )
        return Remote(ref, digest, members=members)
    image = data.get("image") if isinstance(data, dict) else None
    return Remote(ref, digest, platform=registry.platform_of(image))
