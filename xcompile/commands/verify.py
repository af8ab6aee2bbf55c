"""`xcompile verify IMAGE...`: is a pushed image exactly what xcompile makes, checked without trusting its labels?

An image xcompile made is its base's layers, unchanged, plus one layer
holding the emulator at /usr/bin/qemu-<arch>-static (and copies at any path
a host's binfmt entry needed, with the folders leading to them), whose bytes
are a Debian package's binary. The labels only say where to look: the base
(its name and digest) and the qemu (its source and version). Everything
else is read from the registry and the archive, and nothing is pulled:

1. the base, by its recorded digest (its list's member for the image's platform);
2. the image's layers against the base's: the same digests in order, then exactly one;
3. the platform in the image's config against the base's;
4. the top layer, streamed and bounded (registry/toplayer.py): only the emulator, folders to it;
5. the emulator against the package binary that xcompile's signed chain gives
   for the recorded version, for the CPU its ELF header names (qemu/provenance.py).

Each platform gets a ``Verdict``: verified, differs (the first thing that does),
or cannot tell (the registry or the archive cannot say); a list's attestation
manifests are named and passed over.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal

from xcompile import registry
from xcompile.engine import Platform
from xcompile.engine.choice import Chosen, choose
from xcompile.errors import CannotTell, ImageDiffers, RegistryUnreadable, UsageError, XcompileError
from xcompile.host import elf, platforms
from xcompile.qemu import provenance
from xcompile.registry import content, recipe, reference, toplayer
from xcompile.settings.config import Config
from xcompile.system.runner import Runner
from xcompile.system.terminal import Say

if TYPE_CHECKING:  # requests loads only when a registry is read
    from xcompile.registry.images import ImageReader

"""The most entries a list is read for: one image per arch xcompile knows, and an attestation each, fit many times."""

State = Literal["verified", "differs", "cannot tell", "passed over"]
EXIT = {"verified": 0, "passed over": 0, "cannot tell": 3, "differs": 1}


@dataclass(frozen=True)
class Verdict:
    name: str
    platform: str
    digest: str
    state: State
    said: str
    """The verdict in words: the package that proves it, or the first thing that differs."""
    package: str = ""
    version: str = ""
    arch: str = ""
    signer: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {key: value or None for key, value in asdict(self).items()}


def exit_code(verdicts: list[Verdict]) -> int:
    """1 where any image differs, else 3 where any cannot be told, else 0."""
    codes = {EXIT[verdict.state] for verdict in verdicts}
    return 1 if 1 in codes else max(codes, default=0)


def verify(names: list[str], config: Config, runner: Runner, say: Say) -> list[Verdict]:
    """A verdict for each image, or each platform of each list; every name is checked before any is read.
    No engine runs (but to ask docker for Docker Hub's address): auto is settled by PATH alone."""
    split = [(name, *reference.split_name(name, "verify")) for name in names]
    chosen = choose(config.engine, runner, config.auth_places, Path.home(), say, runs=False)
    verdicts: list[Verdict] = []
    known = _Known()
    for name, repo, ref in split:
        path, _ = registry.split(f"{repo}:latest")
        try:
            verdicts += _name(
                _Check(name, _reader(repo, chosen, config, runner), path, config, runner, known, chosen), ref
            )
        except XcompileError as err:
            verdicts.append(Verdict(name, "", "", _state(err), str(err)))
    return verdicts


def _state(err: XcompileError) -> State:
    return "differs" if isinstance(err, ImageDiffers) else "cannot tell"


def _reader(repo: str, chosen: Chosen, config: Config, runner: Runner) -> ImageReader:
    """A reader with the engine's credentials for the registry ``repo`` is in."""
    from xcompile.registry.images import ImageReader

    engine = chosen.engine
    wheres = registry.for_repos(
        [repo], insecure=config.insecure, program=engine.program, hub_address=lambda: engine.hub_address(runner)
    )
    if not wheres:
        msg = f"{repo}: Docker Hub's address is not known here"
        raise CannotTell(msg)
    return ImageReader(wheres[0], chosen.auth_files, runner)


@dataclass
class _Known:
    """What one run has already established, by content: a job's tags share one qemu layer
    (pipeline/context.py makes its bytes the same on every base) and one package binary."""

    layers: dict[str, toplayer.Contents] = field(default_factory=dict)
    """By the layer's digest, which its bytes were checked against."""
    origins: dict[tuple[str, str, str], provenance.Origin] = field(default_factory=dict)
    """By (binary, Debian architecture, version)."""


@dataclass(frozen=True)
class _Check:
    name: str
    reader: ImageReader
    path: str
    config: Config
    runner: Runner
    known: _Known
    chosen: Chosen
    """The engine whose auth files the registries are read with."""

    def manifest(self, ref: str) -> tuple[str, dict[str, Any]]:
        try:
            found = self.reader.manifest(self.path, ref)
        except RegistryUnreadable as err:
            msg = f"cannot read {self.name} from the registry: {err}"
            raise CannotTell(msg) from None
        if found is None:
            msg = f"the registry has no {self.path}{'@' if ref.startswith('sha256:') else ':'}{ref}"
            raise CannotTell(msg)
        return found


def _name(check: _Check, ref: str) -> list[Verdict]:
    digest, manifest = check.manifest(ref)
    if not _is_list(manifest):
        return [_one(check, digest, manifest, None)]
    listed = manifest.get("manifests")
    if isinstance(listed, list) and len(listed) > content.MAX_MEMBERS:
        msg = (
            f"a list of {len(listed)} entries, more than the {content.MAX_MEMBERS} one of xcompile's can hold; not read"
        )
        raise ImageDiffers(msg)
    entries = _entries(manifest, f"{check.name}@{digest}")
    verdicts = []
    for member in entries:
        if member.is_attestation:
            said = f"an attestation manifest ({member.digest}), not an image"
            verdicts.append(Verdict(check.name, str(member.platform), member.digest, "passed over", said))
            continue
        try:
            found, inner = check.manifest(member.digest)
            if _is_list(inner):
                msg = f"{member.digest} is a list inside a list: xcompile's lists hold images"
                raise ImageDiffers(msg)
            verdicts.append(_one(check, found, inner, member.platform))
        except XcompileError as err:
            verdicts.append(Verdict(check.name, str(member.platform), member.digest, _state(err), str(err)))
    return verdicts


def _is_list(manifest: Mapping[str, Any]) -> bool:
    return manifest.get("mediaType") in registry.LIST_TYPES or "manifests" in manifest


def _entries(manifest: Mapping[str, Any], what: str) -> list[registry.Member]:
    from xcompile.registry.images import members

    try:
        return members(manifest, what)
    except RegistryUnreadable as err:
        raise CannotTell(err.message) from None


def _one(check: _Check, digest: str, manifest: Mapping[str, Any], listed: Platform | None) -> Verdict:
    """The verdict on one image; ``listed``: the platform its list gives it."""
    config = _config(check, manifest)
    platform = registry.platform_of(config)
    shown = str(listed or platform or "")
    labels = registry.labels_of(config) or {}
    try:
        if listed is not None and not (platform and _same(listed, platform)):
            msg = f"the list says {listed}, the image's config {platform}"
            raise ImageDiffers(msg)
        if not labels.get(recipe.BASE_DIGEST) or not labels.get(recipe.BASE_NAME):
            msg = "its labels record no base: made before xcompile's labels, or not by xcompile"
            raise CannotTell(msg, hint="rebuild it with this xcompile to make it verifiable")
        base_layers, base_config = _base(check, labels, platform)
        _same_runtime(config, base_config, platform)
        top = _layers(manifest, base_layers)
        arch, file, copies = _emulator(check, top, config, platform, digest)
        said, origin = _judge(check, arch, file, copies, labels)
    except XcompileError as err:
        return Verdict(check.name, shown, digest, _state(err), str(err))
    return Verdict(check.name, shown, digest, "verified", said, origin.package, origin.version, origin.arch,
                   origin.signer)  # fmt: skip


def _config(check: _Check, manifest: Mapping[str, Any]) -> dict[str, Any]:
    ref = manifest.get("config")
    digest = ref.get("digest") if isinstance(ref, dict) else None
    if not isinstance(digest, str):
        msg = "a manifest without a config (schema 1, or not an image): nothing records what it is made of"
        raise CannotTell(msg)
    try:
        return check.reader.config(check.path, digest)
    except RegistryUnreadable as err:
        msg = f"cannot read {check.name}'s config: {err}"
        raise CannotTell(msg) from None


def _base(check: _Check, labels: Mapping[str, str], platform: Platform | None) -> tuple[list[str], dict[str, Any]]:
    """The base's layer digests and config, read by the recorded digest (a list's member for ``platform``)."""
    name, digest = labels[recipe.BASE_NAME], labels[recipe.BASE_DIGEST]
    repo = name.partition("@")[0]
    repo = repo.rsplit(":", 1)[0] if ":" in repo.rsplit("/", 1)[-1] else repo
    try:
        reference.check_name(repo, what="base")
    except UsageError:
        msg = f"its labels record a base {name[:200]!r} that is no image name"
        raise CannotTell(msg) from None
    if not reference.DIGEST.fullmatch(digest):
        msg = f"its labels record a base digest {digest[:200]!r} that is no sha256 digest"
        raise CannotTell(msg)
    base = _Check(f"the base {name}", _reader(repo, check.chosen, check.config, check.runner),
                  registry.split(f"{repo}:x")[0], check.config, check.runner, check.known, check.chosen)  # fmt: skip
    try:
        _, manifest = base.manifest(digest)
    except CannotTell as err:
        msg = f"cannot read the recorded base {repo}@{digest}: {err.message}"
        raise CannotTell(msg, hint="a base from no registry (a local image) cannot be checked") from None
    if _is_list(manifest):
        member = next(
            (m for m in _entries(manifest, f"{repo}@{digest}") if platform and _same(m.platform, platform)), None
        )
        if member is None:
            msg = f"the recorded base {repo}@{digest} has no {platform} image"
            raise ImageDiffers(msg)
        _, manifest = base.manifest(member.digest)
    return _digests(manifest), _config(base, manifest)


RUNTIME = ("Entrypoint", "Cmd", "Env", "User", "WorkingDir", "Shell", "StopSignal", "OnBuild", "Volumes",
           "ExposedPorts")  # fmt: skip
"""What an image runs and how: xcompile's Dockerfile (FROM, COPY, LABEL) keeps each as the base has it."""


def _same_runtime(config: Mapping[str, Any], base: Mapping[str, Any], platform: Platform | None) -> None:
    """The image's platform and run settings must be its base's: xcompile adds labels only."""
    theirs = registry.platform_of(base)
    if not (theirs and platform and _same(theirs, platform)):
        msg = f"its platform is {platform}, its base's {theirs}"
        raise ImageDiffers(msg)
    mine, given = config.get("config"), base.get("config")
    mine, given = (mine if isinstance(mine, dict) else {}), (given if isinstance(given, dict) else {})
    for key in RUNTIME:
        if mine.get(key) != given.get(key):
            msg = f"its config's {key} is {mine.get(key)!r}, its base's {given.get(key)!r}"
            raise ImageDiffers(msg[:300])


def _same(one: Platform, other: Platform) -> bool:
    if one == other:
        return True
    arch = next((a for a in platforms.ARCHES if a.matches(one.os, one.architecture, one.variant)), None)
    return arch is not None and arch.matches(other.os, other.architecture, other.variant)


def _digests(manifest: Mapping[str, Any]) -> list[str]:
    layers = manifest.get("layers")
    if not isinstance(layers, list) or not all(isinstance(one, dict) for one in layers):
        msg = "a manifest whose layers are not a list of descriptors"
        raise CannotTell(msg)
    return [str(one.get("digest")) for one in layers]


def _layers(manifest: Mapping[str, Any], base: list[str]) -> dict[str, Any]:
    """The descriptor of the one layer on top of the base's, which must be the image's first ones."""
    layers = _digests(manifest)
    for index, (mine, theirs) in enumerate(zip(layers, base, strict=False), start=1):
        if mine != theirs:
            msg = f"base layer {index} of {len(base)} replaced: {mine} is not the base's {theirs}"
            raise ImageDiffers(msg)
    if len(layers) != len(base) + 1:
        on_top = len(layers) - len(base)
        msg = f"{on_top} layers on top of the base's {len(base)}, not one" if on_top > 0 else "no layer on its base"
        raise ImageDiffers(msg)
    top: dict[str, Any] = manifest["layers"][-1]
    return top


def _emulator(
    check: _Check, top: Mapping[str, Any], config: Mapping[str, Any], platform: Platform | None, image: str
) -> tuple[platforms.Arch, toplayer.File, list[str]]:
    """The platform's arch, the emulator file in the top layer, and the other paths it is at."""
    arch = next((a for a in platforms.ARCHES if platform and a.matches(platform.os, platform.architecture,
                                                                       platform.variant)), None)  # fmt: skip
    if arch is None:
        msg = f"xcompile makes no image for {platform or 'an image with no platform'}"
        raise ImageDiffers(msg)
    digest, size = str(top.get("digest")), top.get("size")
    if not isinstance(size, int) or size < 0:
        msg = f"the top layer {digest} has no size"
        raise CannotTell(msg)
    held = check.known.layers.get(digest) or _read_layer(check, digest, size, image)
    rootfs = config.get("rootfs")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or not diff_ids or diff_ids[-1] != held.diff_id:
        msg = f"the config's last diff_id is not the top layer's unpacked digest ({held.diff_id})"
        raise ImageDiffers(msg)
    path = arch.qemu_path_in_image
    return arch, _the_file(held, path), [one.path for one in held.files if one.path != path]


def _read_layer(check: _Check, digest: str, size: int, image: str) -> toplayer.Contents:
    try:
        with check.reader.blob(check.path, digest, image) as chunks:
            held = toplayer.read(chunks, digest, size, f"the top layer {digest}")
    except RegistryUnreadable as err:
        msg = f"cannot read the top layer of {check.name}: {err}"
        raise CannotTell(msg) from None
    check.known.layers[digest] = held
    return held


def _the_file(held: toplayer.Contents, path: str) -> toplayer.File:
    """The emulator at ``path``; every other file must be a copy of it (a binfmt path), every folder lead to one."""
    found = {one.path: one for one in held.files}
    if path not in found:
        has = ", ".join(found) or "no file"
        msg = f"the top layer has no {path} (it holds {has})"
        raise ImageDiffers(msg)
    for other in held.files:
        if other.sha256 != found[path].sha256:
            msg = f"an extra file in the top layer: {other.path} ({other.size} bytes), not the emulator"
            raise ImageDiffers(msg)
    leading = {"/"} | {str(folder) for one in found for folder in PurePosixPath(one).parents}
    for folder in held.folders:
        if folder not in leading:
            msg = f"an extra folder in the top layer: {folder}, which leads to no emulator"
            raise ImageDiffers(msg)
    return found[path]


def _judge(check: _Check, arch: platforms.Arch, file: toplayer.File, copies: list[str],
           labels: Mapping[str, str]) -> tuple[str, provenance.Origin]:  # fmt: skip
    """The emulator against the package binary of the recorded version: the verdict's words, and that package."""
    host = elf.made_for(file.head)
    if host is None:
        msg = f"{file.path} is no ELF executable for a CPU xcompile runs on"
        raise ImageDiffers(msg)
    said = provenance.claim(labels)
    if said.version is None:
        source = labels.get(recipe.QEMU_SOURCE, "unknown")
        msg = (
            f"not verifiable: its qemu came from {_shown(source)}, which names no Debian package (sha256 {file.sha256})"
        )
        raise CannotTell(msg)
    key = (arch.qemu_binary, host.debian_arch, said.version)
    if key not in check.known.origins:
        check.known.origins[key] = provenance.fetch(arch.qemu_binary, host, said.version, check.config, check.runner)
    origin = check.known.origins[key]
    if origin.sha256 != file.sha256:
        msg = (
            f"another binary: {file.path} (sha256 {file.sha256[:16]}…) is not {origin.package} {origin.version}'s"
            f" {arch.qemu_binary} (sha256 {origin.sha256[:16]}…)"
        )
        raise ImageDiffers(msg)
    also = f" (also at {', '.join(copies)}, for a binfmt entry)" if copies else ""
    came = "" if said.came == "download" else f"; it came from {said.came}, and is that package's binary"
    words = (
        f"the base's layers unchanged, plus {file.path}{also}: {origin.package} {origin.version} {origin.arch}"
        f" of {origin.codename}, whose Release {origin.signer} signed{came}; an {origin.arch} emulator,"
        " as its ELF header says (the build machine's CPU)"
    )
    return words, origin


def text(verdicts: list[Verdict]) -> str:
    """One line per platform: the name, the platform, the state, and why."""
    return "\n".join(_shown(f"{one.name}  {one.platform or '-'}  {one.state}: {one.said}") for one in verdicts)


def _shown(text: str) -> str:
    """``text`` with what a terminal would act on (escape sequences, line breaks) escaped:
    labels, platforms and paths are the image maker's strings."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)
