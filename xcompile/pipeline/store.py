"""The engine's local image store: what names point to, the newest bases, and images to drop.

The store is surveyed once, in one `image inspect` of every base and target
name (``survey``); each base is pulled (policy ``pull``), refused where the
one here is made for another platform, and its digest read (``newest_base``);
and the image a rebuild took the name from is removed (``remove``), so that
reruns leave no `<none>` images behind. A build that a stop let end is undone
(``undo_build``): its image goes, and the name goes back to the image it
pointed to before.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass

from xcompile.engine import Engine, image_id
from xcompile.errors import BaseUnavailable, CommandFailed, XcompileError
from xcompile.pipeline.plan import Image
from xcompile.registry import reference
from xcompile.system.runner import Runner
from xcompile.system.terminal import Say

_INSPECT_FORMAT = "{{json .RepoTags}} {{json .RepoDigests}} {{.Id}}"
"""What one `image inspect` of many names says of each one it found, before its platform."""
_NO_SUCH_IMAGE = re.compile(r"No such image: (\S+)")
_UNDO_TIMEOUT = 60.0
"""Seconds a removal or a tag may take: a stop does not cut them, so they need a bound."""


@dataclass(frozen=True)
class Local:
    """An image in the local store, as `image inspect` shows it."""

    id: str
    repo_digests: tuple[str, ...] = ()
    platform: str | None = None
    """os/architecture/variant as the engine tells it (podman 4: os/architecture); None: not told."""


class Store:
    def __init__(self, runner: Runner, engine: Engine, say: Say, *, pull: str = "always") -> None:
        self.runner = runner
        self.engine = engine
        self.say = say
        self.policy = pull
        """When to pull a base: always, missing (only when not here), never."""
        self.known: dict[str, Local | None] = {}
        """What the store held under each name at the start (None: nothing); a
        name missing here is looked up on its own."""
        self._pulls: dict[Image, Future[str | None]] = {}
        """Each base's pull, started at once: None when it worked, else why not."""
        self._cleanup: Executor | None = None
        self._format = f"{_INSPECT_FORMAT} {engine.platform_template}"

    def start_pulls(self, images: tuple[Image, ...], pool: Executor) -> None:
        """Start every base's pull (policy ``always``) on ``pool``; each build waits for its own."""
        if self.policy == "always":
            self._pulls = {image: pool.submit(self.pull, image) for image in images}

    def newest_base(self, image: Image) -> str:
        """Pull the base (as the policy says), and return its digest: the registry's
        where it came from one, else the local image ID."""
        why = None
        if self.policy == "always":
            pulling = self._pulls.pop(image, None)
            why = pulling.result() if pulling is not None else self.pull(image)
        # A pull that failed changed nothing: what the store held at the start stands.
        local = self.local_base(image, known=why is not None or self.policy != "always")
        if local is None and self.policy == "missing":
            why = self.pull(image)
            local = self.local_base(image)
        if local is None:
            pulled = f", and the pull failed: {why}" if why else ""
            msg = f"base {image.base} is not on this host{pulled}"
            raise BaseUnavailable(msg, hint="check its name, or log in to its registry")
        refuse_other_platform(image, local, why)
        found = digest_of(image.base, local)
        if why:
            self.say(f"base {image.base}: not pulled ({why}); using the one on this host, {found[:19]}", image.label)
        return found

    @contextlib.contextmanager
    def cleaning(self) -> Iterator[None]:
        """Removals of replaced images run beside the builds, on one thread of their own,
        and all are done when this ends."""
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="xcompile-rm") as self._cleanup:
            yield
        self._cleanup = None

    def drop_replaced(self, image: Image, replaced: str | None, built: str | None) -> None:
        """Remove the image the new build took the name from, beside the proof and
        the push, off the image's path, so that reruns leave no `<none>` images behind."""
        if replaced is None or (built is not None and _same(replaced, built)):
            return
        if built is None and replaced == self.image_id(image):
            return

        def remove() -> None:
            why = self.remove(image, replaced)
            if why:  # the new image is built and good: a leftover is worth a line, no more
                self.say(f"the image it replaced, {replaced[:19]}, is left: {why}", image.label)

        if self._cleanup is None:
            remove()
        else:
            self._cleanup.submit(remove)

    def undo_build(self, image: Image, replaced: str | None, built: str | None) -> None:
        """Remove the image a build made after the run was stopped, and put the name
        back on the image the build took it from, so that a stop leaves the store
        as the run found it. Where the name cannot go back, the new image keeps it:
        a name that pointed to an image is never left pointing nowhere."""
        if built is None or (replaced is not None and _same(replaced, built)):
            return
        undone = f"the image this stopped build made, {built[:19]}, is left"
        with self.runner.undoing():
            if replaced is not None:
                try:
                    self.runner.run(
                        *self.engine.tag_cmd(replaced, image.name), label=image.label, timeout=_UNDO_TIMEOUT
                    )
                except CommandFailed as err:
                    self.say(f"{undone} under {image.name}: {err.last_words}", image.label)
                    return
            try:
                self.runner.run(*self.engine.remove_images_cmd(built), label=image.label, timeout=_UNDO_TIMEOUT)
            except CommandFailed as err:
                self.say(f"{undone}: {err.last_words}", image.label)

    def survey(self, images: tuple[Image, ...]) -> None:
        """What every base and target name points to now, in one `image inspect`
        instead of two per image; a name it cannot place is looked up later on its own."""
        names = sorted({image.base for image in images} | {image.name for image in images})
        if not names:
            return
        try:
            out = self.runner.ask(*self.engine.inspect_all_cmd(names, self._format))
            missing = ""
        except CommandFailed as err:
            if err.retcode not in self.engine.missing_image_codes:
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
            *self.engine.inspect_cmd(image.name, "{{.Id}}"), label=image.label, ok_codes=self.engine.missing_image_codes
        )
        return image_id(out)

    def pull(self, image: Image) -> str | None:
        """Pull the image's base: None when the pull worked, else why not (in one line)."""
        try:
            argv = self.engine.pull_cmd(image.base, image.platform, insecure=reference.plain_http(image.base))
            self.runner.run(*argv, label=image.label)
        except CommandFailed as err:
            return err.last_words
        return None

    def local_base(self, image: Image, *, known: bool = False) -> Local | None:
        """The base in the store; None where it has none. ``known``: the survey's answer stands."""
        return self.known[image.base] if known and image.base in self.known else self._inspect(image)

    def remove(self, image: Image, replaced: str) -> str | None:
        """Remove the image the new build took the name from; None when done,
        else why it is left (docker refuses where a container, a child image
        or another tag still uses it)."""
        try:
            # A stop does not cut it: the build moved the name, so the old image is
            # <none> until this removal ends.
            with self.runner.undoing():
                argv = self.engine.remove_images_cmd(replaced)
                self.runner.run(*argv, label=image.label, ok_codes=(0, 1), timeout=_UNDO_TIMEOUT)
        except XcompileError as err:
            return str(err)
        return None

    def _inspect(self, image: Image) -> Local | None:
        try:
            out = self.runner.ask(*self.engine.inspect_cmd(image.base, self._format), label=image.label)
        except CommandFailed:
            return None
        if out is None:  # not asked (a dry run): unknown, which the plan shows as such
            return Local(f"<digest of {image.base}>")
        return _parse_inspect(out)


def digest_of(base: str, local: Local) -> str:
    """The base's registry digest where it came from one, else its local image ID."""
    name = base.rsplit(":", 1)[0]
    pairs = [entry.partition("@")[::2] for entry in local.repo_digests]
    # The name as docker reads it (docker.io/library/python is python); else one that ends
    # with it (podman's localhost/NAME), but a mirror's copy of the same name only after that.
    same = [digest for repo, digest in pairs if _familiar(repo) == _familiar(name)]
    near = [digest for repo, digest in pairs if repo.endswith("/" + name)]
    return (same or near or [local.id])[0]


def refuse_other_platform(image: Image, local: Local, why_not_pulled: str | None = None) -> None:
    """Refuse a base the store holds for another platform than the image's, before its
    build: docker would build on it and label the image with that platform, and podman's
    build would pull it again, without the --tls-verify=false a loopback registry needs,
    and say only that TLS failed. Where the engine does not tell the variant (podman 4),
    its os and architecture are checked (and pipeline/build.py reads podman's refusal of the rest)."""
    if local.platform is None:  # not told (a dry run)
        return
    os_, architecture, *rest = [*local.platform.split("/"), ""]
    variant = rest[0] if local.platform.count("/") >= 2 else image.arch.variant
    if image.arch.matches(os_, architecture, variant):
        return
    pulled = f" (the pull failed: {why_not_pulled})" if why_not_pulled else ""
    msg = f"base {image.base} on this host is {local.platform.rstrip('/')}, not {image.platform}{pulled}"
    raise BaseUnavailable(msg, hint="give a base made for that platform, or pull the base for it")


def _parse_inspect(line: str) -> Local | None:
    """One line of _INSPECT_FORMAT and the platform after it (podman prints the ID without "sha256:")."""
    fields = line.split()
    found = image_id(fields[2]) if len(fields) > 2 else None
    if found is None:
        return None
    platform = fields[3] if len(fields) > 3 else None
    return Local(found, tuple(str(d) for d in _json_list(fields[1])), platform)


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


def _same(image_id: str, built: str) -> bool:
    """Is ``built`` (an ID, or the start of one, as a builder printed it) ``image_id``?"""
    return image_id.removeprefix("sha256:").startswith(built.removeprefix("sha256:"))


def _json_list(text: str) -> list[object]:
    try:
        value = json.loads(text or "null")
    except ValueError:
        return []
    return value if isinstance(value, list) else []


def _familiar(name: str) -> str:
    """A name as RepoTags shows it (docker.io/library/ left out)."""
    name = reference.hub_path(name)
    if name.startswith("library/") and name.count("/") == 1:
        name = name.removeprefix("library/")
    return name
