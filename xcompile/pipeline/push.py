"""Step 4's push (each image) and step 5's (each tag's manifest list) — and, before the build,
whether the registry already has what the build would make.

``Published`` reads the registry's image under a tag (registry/reader.py) and
judges it against the labels a build would set (registry/recipe.py): the same
means ``unchanged``, neither built nor pushed. ``push`` and ``push_list`` push
an image and a tag's manifest list.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from xcompile.engine import Engine
from xcompile.engine.choice import Chosen
from xcompile.errors import CommandFailed, RegistryUnreadable
from xcompile.pipeline.plan import Image, ManifestList
from xcompile.registry import recipe, reference
from xcompile.settings.config import Config
from xcompile.system.runner import Runner
from xcompile.system.terminal import Say

if TYPE_CHECKING:  # requests loads only when a registry is read (start-up time)
    from xcompile.registry import Registry, Remote
    from xcompile.registry.reader import Reader


class Published:
    """What the registry holds under the run's names, read once per name with one reader."""

    def __init__(self, config: Config, runner: Runner, chosen: Chosen, say: Say) -> None:
        self.config = config
        self.runner = runner
        self.engine, self.auth_files = chosen.engine, chosen.auth_files
        self.say = say
        self.registries: list[Registry] = []
        """Where the run pushes, as the registry check found it."""
        self._reader: Reader | None = None
        self._lock = threading.Lock()

    def check(self) -> str | None:
        """Each registry answers, and has credentials where it wants them: the line that says so
        (None: no push, or not asked)."""
        if not self.config.push:
            return None
        from xcompile.registry import check

        def ask() -> str:
            self.registries = check.for_repo(self.config.repo, self.config.insecure, self.runner, self.engine)
            return check.ensure(self.registries, self.auth_files)

        return self.runner.look(ask)

    def read(self, name: str, label: str) -> Remote | None:
        """The registry's image or list under ``name``; None where it has none,
        cannot be read (said, and the image is built), or was not asked (a dry run)."""
        from xcompile import registry

        path, tag = registry.split(name)
        try:
            return self.runner.look(lambda: self.reader().read(path, tag))
        except RegistryUnreadable as err:
            self.say(f"cannot read {name} from the registry ({err}); building", label)
            return None

    def unchanged(self, image: Image, labels: dict[str, str]) -> Remote | None:
        """The registry's image when it is what a build would make again, else None (build it)."""
        remote = self.read(image.name, image.label)
        if remote is None or remote.is_list:
            return None
        differs = recipe.differences(labels, remote.labels)
        if differs:
            self.say(f"changed since {remote.digest[:19]}: {', '.join(differs)}; building", image.label)
            return None
        self.say(f"unchanged: {image.name} is {remote.digest} (same base, qemu and recipe)", image.label)
        return remote

    def unchanged_list(self, manifest: ManifestList, digests: list[str]) -> Remote | None:
        """The registry's list under the tag when it already holds exactly these images, else None."""
        from xcompile.registry import lists

        current = self.read(manifest.name, manifest.label)
        if current is None or not lists.holds_exactly(current, digests):
            return None
        self.say(f"unchanged: {manifest.name} is {current.digest} (every image in it unchanged)", manifest.label)
        return current

    def reader(self) -> Reader:
        from xcompile.registry import check
        from xcompile.registry.reader import Reader

        with self._lock:
            if self._reader is None:
                # The registry check found it (a Docker Hub repo asked the engine its address): not again.
                (where,) = self.registries or check.for_repo(
                    self.config.repo, self.config.insecure, self.runner, self.engine
                )
                self._reader = Reader(where, self.auth_files, self.runner)
            return self._reader


def push(runner: Runner, engine: Engine, config: Config, image: Image, digest_file: Path) -> str | None:
    """Push the image; its digest where the engine says it."""
    from xcompile.registry import check

    argv = engine.push_cmd(
        image.name, insecure=reference.plain_http(config.repo, config.insecure), digest_file=digest_file
    )
    try:
        out = runner.stream(*argv, label=image.label)
    except CommandFailed as err:
        raise check.gone(err, config.repo) or err from None
    return engine.pushed_digest(out or "", digest_file)


def push_list(runner: Runner, engine: Engine, config: Config, manifest: ManifestList, digest_file: Path) -> str | None:
    """Make the tag's manifest list afresh from its pushed images, and push it."""
    from xcompile.registry import lists

    return lists.push_list(
        runner,
        engine,
        manifest.name,
        manifest.members(),
        insecure=reference.plain_http(config.repo, config.insecure),
        digest_file=digest_file,
        label=manifest.label,
    )
