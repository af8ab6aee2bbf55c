"""The engine's local image store: what names point to, the newest bases, and images to drop.

The store is surveyed once, in one `image inspect` of every base and target
name (``survey``); each base is pulled (policy ``pull``) and its digest read
(``base_digest``); and the image a rebuild took the name from is removed
(``remove``), so that reruns leave no `<none>` images behind.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from xcompile import engine, reference
from xcompile.errors import CommandFailed, XcompileError
from xcompile.plan import Image
from xcompile.runner import Runner

_INSPECT_FORMAT = "{{json .RepoTags}} {{json .RepoDigests}} {{.Id}}"
"""What one `image inspect` of many names says of each one it found."""
_NO_SUCH_IMAGE = re.compile(r"No such image: (\S+)")


@dataclass(frozen=True)
class Local:
    """An image in the local store, as `image inspect` shows it."""

    id: str
    repo_digests: tuple[str, ...] = ()


class Store:
    def __init__(self, runner: Runner, shapes: engine.Engine) -> None:
        self.runner = runner
        self.shapes = shapes
        self.known: dict[str, Local | None] = {}
        """What the store held under each name at the start (None: nothing); a
        name missing here is looked up on its own."""

    def survey(self, images: tuple[Image, ...]) -> None:
        """What every base and target name points to now, in one `image inspect`
        instead of two per image; a name it cannot place is looked up later on its own."""
        names = sorted({image.base for image in images} | {image.name for image in images})
        if not names:
            return
        try:
            out = self.runner.ask(*self.shapes.inspect_all_cmd(names, _INSPECT_FORMAT))
            missing = ""
        except CommandFailed as err:
            if err.retcode not in self.shapes.missing_image_codes:
                return
            out, missing = err.stdout, err.stderr
        if out is not None:
            self.known = placed(names, out, missing)

    def image_id(self, image: Image) -> str | None:
        """The ID the image's name points to now (at the start of the run, where known), if any."""
        if image.name in self.known:
            local = self.known.pop(image.name)
            return local.id if local else None
        out = self.runner.ask(
            *self.shapes.inspect_cmd(image.name, "{{.Id}}"), label=image.label, ok_codes=self.shapes.missing_image_codes
        )
        return engine.image_id(out)

    def pull(self, image: Image) -> str | None:
        """Pull the image's base: None when the pull worked, else why not (in one line)."""
        try:
            argv = self.shapes.pull_cmd(image.base, image.platform, insecure=reference.plain_http(image.base))
            self.runner.run(*argv, label=image.label)
        except CommandFailed as err:
            return err.last_words
        return None

    def base_digest(self, image: Image, *, known: bool = False) -> str | None:
        """The base's registry digest where it came from one, else its local image ID;
        None where the store has no such base. ``known``: the survey's answer stands."""
        local = self.known[image.base] if known and image.base in self.known else self._inspect(image)
        if local is None:
            return None
        name = image.base.rsplit(":", 1)[0]
        for entry in local.repo_digests:
            repo, _, digest = entry.partition("@")
            if repo == name or repo.endswith("/" + name):
                return digest
        return local.id

    def remove(self, image: Image, replaced: str) -> str | None:
        """Remove the image the new build took the name from; None when done,
        else why it is left (docker refuses where a container, a child image
        or another tag still uses it)."""
        try:
            self.runner.run(*self.shapes.remove_images_cmd(replaced), label=image.label, ok_codes=(0, 1))
        except XcompileError as err:
            return str(err)
        return None

    def _inspect(self, image: Image) -> Local | None:
        try:
            out = self.runner.ask(*self.shapes.inspect_cmd(image.base, _INSPECT_FORMAT), label=image.label)
        except CommandFailed:
            return None
        if out is None:  # not asked (a dry run): unknown, which the plan shows as such
            return Local(f"<digest of {image.base}>")
        return _parse_inspect(out)


def _parse_inspect(line: str) -> Local | None:
    """One line of _INSPECT_FORMAT (podman prints the ID without "sha256:")."""
    rest = line.strip().partition(" ")[2]
    digests, _, printed = rest.rpartition(" ")
    image_id = engine.image_id(printed)
    if image_id is None:
        return None
    return Local(image_id, tuple(str(d) for d in _json_list(digests)))


def placed(names: list[str], out: str, missing: str) -> dict[str, Local | None]:
    """Each name that one `image inspect` of ``names`` answered for: its image,
    or None where the engine said it has no such image. Names it cannot place
    (spelled otherwise in RepoTags) are left out."""
    found: dict[str, Local | None] = {}
    for line in out.splitlines():
        local = _parse_inspect(line)
        if local is None:
            continue
        tags = {_familiar(str(tag)) for tag in _json_list(line.strip().partition(" ")[0])}
        found.update((name, local) for name in names if _familiar(name) in tags)
    for name in _NO_SUCH_IMAGE.findall(missing):
        if name in names and name not in found:
            found[name] = None
    return found


def _json_list(text: str) -> list[object]:
    try:
        value = json.loads(text or "null")
    except ValueError:
        return []
    return value if isinstance(value, list) else []


def _familiar(name: str) -> str:
    """A name as RepoTags shows it (docker.io/library/ left out)."""
    for prefix in ("docker.io/", "index.docker.io/"):
        name = name.removeprefix(prefix)
    if name.startswith("library/") and name.count("/") == 1:
        name = name.removeprefix("library/")
    return name
