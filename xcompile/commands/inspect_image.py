"""`xcompile inspect IMAGE...`: what a pushed image is made of, read from the registry without pulling it.

For one image, and for each platform of a manifest list: its base and the
base's digest, the qemu inside (version, source, SHA256), the recipe and the
xcompile version that built it, all from the labels in its config (registry/recipe.py).
It reads with the same credentials as the build (registry/reader.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xcompile import registry
from xcompile.engine.choice import choose
from xcompile.errors import EnvironmentProblem, RegistryUnreadable, XcompileError
from xcompile.registry import Remote, recipe, reference
from xcompile.settings.config import Config
from xcompile.system.runner import Runner
from xcompile.system.terminal import Say, printable

if TYPE_CHECKING:  # requests loads only when a registry is read
    from xcompile.registry.reader import Reader

FIELDS = (
    ("base", recipe.BASE_NAME),
    ("base digest", recipe.BASE_DIGEST),
    ("qemu version", recipe.QEMU_VERSION),
    ("qemu source", recipe.QEMU_SOURCE),
    ("qemu sha256", recipe.QEMU_SHA256),
    ("qemu host", recipe.QEMU_HOST),
    ("recipe", recipe.RECIPE),
)


@dataclass(frozen=True)
class Seen:
    """One image, as its labels say; ``platform`` where it is a list's member."""

    name: str
    digest: str
    platform: str
    labels: dict[str, str]

    @property
    def xcompile(self) -> str:
        """The version of xcompile that built it (the recipe's first word after "xcompile")."""
        said = self.labels.get(recipe.RECIPE, "")
        return said.split(";", 1)[0].removeprefix("xcompile ").strip() if said.startswith("xcompile ") else ""

    def as_dict(self) -> dict[str, Any]:
        found = {word.replace(" ", "_"): self.labels.get(key) for word, key in FIELDS}
        return {**asdict(self), **found, "xcompile": self.xcompile or None}


def inspect(names: list[str], config: Config, runner: Runner, say: Say) -> tuple[list[Seen], list[XcompileError]]:
    """Each name's image, or each platform of its list; and why the registry could not answer for
    the names it could not (the others are still read). Every name is checked before any is read.
    No engine runs (but to ask docker for Docker Hub's address): auto is settled by PATH alone."""
    from xcompile.registry.reader import Reader

    chosen = choose(config.engine, runner, config.auth_places, Path.home(), say, runs=False)
    engine = chosen.engine
    found: list[Seen] = []
    failed: list[XcompileError] = []
    for name, (repo, ref) in [(name, reference.split_name(name, "inspect")) for name in names]:
        wheres = registry.for_repos(
            [repo], insecure=config.insecure, program=engine.program, hub_address=lambda: engine.hub_address(runner)
        )
        if not wheres:
            continue  # Docker Hub's address was not asked (a dry run)
        # The same credentials, CAs and bounds as the build's registry reads.
        reader = Reader(wheres[0], chosen.auth_files, runner)
        path, _ = registry.split(f"{repo}:latest")
        try:
            remote = _read(reader, path, ref, name)
            found += _members(reader, path, name, remote) if remote.is_list else [_seen(name, remote, "")]
        except XcompileError as err:
            failed.append(err)
    return found, failed


def _read(reader: Reader, path: str, ref: str, name: str) -> Remote:
    try:
        remote = reader.read(path, ref)
    except RegistryUnreadable as err:
        msg = f"cannot read {name} from the registry: {err}"
        # No answer at all (refused, timed out, TLS) is the environment's, as for the build's registry check.
        raise (EnvironmentProblem(msg) if err.why else XcompileError(msg)) from None
    if remote is None:
        msg = f"{name}: the registry has no such image"
        raise XcompileError(msg, hint="check the name and the tag")
    return remote


def _members(reader: Reader, path: str, name: str, remote: Remote) -> list[Seen]:
    seen = []
    for member in remote.members or ():
        if member.is_attestation:
            continue
        one = _read(reader, path, member.digest, f"{name}@{member.digest}")
        seen.append(_seen(name, one, str(member.platform)))
    return seen


def _seen(name: str, remote: Remote, platform: str) -> Seen:
    shown = platform or (str(remote.platform) if remote.platform else "")
    return Seen(name, remote.digest, shown, dict(remote.labels))


def text(found: list[Seen]) -> str:
    """A block per image: its name, platform and digest, then each label in words, each field
    on its line: a label's line break is shown escaped, never as a line of its own."""
    blocks = []
    for seen in found:
        lines = [printable(f"{seen.name}  {seen.platform}  {seen.digest}")]
        lines += [f"  {word:<13} {printable(seen.labels.get(key, '-'))}" for word, key in FIELDS]
        lines.append(f"  {'xcompile':<13} {printable(seen.xcompile or '-')}")
        blocks.append("\n".join(lines))
    return "\n".join(blocks)
