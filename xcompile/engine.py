"""The container engine: docker or podman, as one small table of command shapes.

The pipeline asks an ``Engine`` for argv and never names a program itself, so
that docker and podman differ here and only here. An engine is chosen once
(``choose``), from the ``engine`` setting: docker (the default), podman, or
auto (docker when its daemon answers, else podman).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from xcompile.errors import CommandFailed, DockerUnavailable, EnvironmentProblem, ProgramMissing
from xcompile.runner import Runner

if TYPE_CHECKING:
    from xcompile.platforms import Arch

EngineName = Literal["docker", "podman"]
CHOICES = ("docker", "podman", "auto")
DOCKER_PROBE_TIMEOUT = 30.0
# `docker manifest` (and `build --platform` before 19.03) sat behind the
# client's experimental flag until docker 20.10. Podman has no such flag.
EXPERIMENTAL_SINCE = (20, 10)
EXPERIMENTAL_SINCE_TEXT = "20.10"
# Before 19.03 the daemon itself had to run with experimental for --platform.
DAEMON_PLATFORM_SINCE = (19, 3)
Argv = tuple[str, ...]


@dataclass(frozen=True)
class Versions:
    engine: EngineName = "docker"
    client: str | None = None
    server: str | None = None
    """The daemon's version; None for podman, which has none."""
    server_experimental: bool | None = None


DockerVersions = Versions  # the name the first rounds used


@dataclass(frozen=True)
class Engine:
    """Docker's command shapes; ``Podman`` overrides where podman differs.
    The two rows are ``DOCKER`` and ``PODMAN``."""

    name: EngineName = "docker"
    has_experimental: bool = True
    """Whether the client config's "experimental" gates anything (docker only)."""
    has_imagetools: bool = True
    """Whether a buildx plugin may make manifest lists (`buildx imagetools`; docker only)."""
    run_options: Argv = ("--network", "none")
    """The proof's run needs no network, and a container without one starts
    faster (no bridge endpoint to set up: about 0.06 s each here)."""
    build_options: Argv = ()
    missing_image_codes: tuple[int, ...] = (0, 1)
    """What `image inspect` may exit with, beside 0, when there is no such image."""

    @property
    def program(self) -> str:
        return self.name

    # --- the engine itself ---------------------------------------------------

    def version(self) -> Argv:
        return (self.program, "version", "--format", "{{json .}}")

    def versions(self, runner: Runner) -> Versions:
        """The client's version, and the daemon's where there is one; raises when the engine cannot work."""
        try:
            out = runner.run(*self.version(), timeout=DOCKER_PROBE_TIMEOUT)
        except CommandFailed as err:
            raise self.unavailable(err) from None
        if runner.dry_run:
            return Versions(self.name)
        try:
            info = json.loads(out)
        except json.JSONDecodeError:
            return Versions(self.name)
        server = info.get("Server") or {}
        return Versions(
            engine=self.name,
            client=(info.get("Client") or {}).get("Version"),
            server=server.get("Version"),
            server_experimental=_server_experimental(server),
        )

    def unavailable(self, err: CommandFailed) -> DockerUnavailable:
        return _docker_unavailable(err)

    def check_setup(self, named_auth_files: tuple[tuple[str, Path], ...]) -> None:
        """Refuse, before any work, a setup this engine cannot work in."""

    def needs_experimental(self, versions: Versions) -> bool:
        """Unknown (a dry run) counts as needing it: the plan shows the edit."""
        return self.has_experimental and needs_experimental(versions.client)

    def auth_files(self, docker_config: Path, podman_auth_file: Path) -> tuple[Path, ...]:
        """Where this engine looks for registry credentials, in its order (both
        paths come from config.load); the first file that has a host wins."""
        return (docker_config,)

    def hub_address(self, runner: Runner) -> str:
        """Docker Hub's address, which is also its key among the credentials."""
        return runner.run(self.program, "info", "--format", "{{.IndexServerAddress}}", timeout=30).strip()

    def probe(self, empty_root: Path) -> Argv:
        """A container start that needs no image: it fails with "no such file"
        once the runtime has set everything up (podman only)."""
        return (self.program, "run", "--rm", *self.run_options, "--rootfs", str(empty_root), "/xcompile-probe")

    # --- images -----------------------------------------------------------------

    def build(self, platform: str, dockerfile: Path, name: str, context: Path) -> Argv:
        return (self.program, "build", "--platform", platform, "--no-cache", *self.build_options,
                "-f", str(dockerfile), "-t", name, str(context))  # fmt: skip

    def inspect(self, image: str, template: str | None = None) -> Argv:
        """`image inspect`: JSON, or the Go template's text."""
        return (self.program, "image", "inspect", *(("--format", template) if template else ()), image)

    def inspect_all(self, images: list[str], template: str) -> Argv:
        """One `image inspect` of many names: a line of the template's text for
        each one found, and an error line for each one missing."""
        return (self.program, "image", "inspect", "--format", template, *images)

    def run(
        self, platform: str, image: str, *command: str, entrypoint: str | None = None, name: str | None = None
    ) -> Argv:
        chosen = ("--entrypoint", entrypoint) if entrypoint else ()
        named = ("--name", name) if name else ()
        return (self.program, "run", "--rm", *named, *self.run_options, "--platform", platform, *chosen, image,
                *command)  # fmt: skip

    def create(self, platform: str, image: str, *command: str) -> Argv:
        return (self.program, "create", *self.run_options, "--platform", platform, image, *command)

    def copy_out(self, container: str, path: str, dest: Path) -> Argv:
        return (self.program, "cp", f"{container}:{path}", str(dest))

    def remove_container(self, container: str, *, force: bool = False) -> Argv:
        return (self.program, "rm", *(("--force",) if force else ()), container)

    def remove_images(self, *images: str) -> Argv:
        return (self.program, "rmi", *images)

    def pull(self, image: str, platform: str | None = None, *, insecure: bool = False) -> Argv:
        # Docker's daemon decides plain HTTP for push and pull itself
        # (loopback registries are plain HTTP to it).
        on = ("--platform", platform) if platform else ()
        return (self.program, "pull", "-q", *on, image)

    def push(self, image: str, *, insecure: bool, digest_file: Path | None = None) -> Argv:
        return (self.program, "push", image)

    def pushed_digest(self, output: str, digest_file: Path | None = None) -> str | None:
        """The digest a push reports: docker prints it."""
        found = re.search(r"digest: " + _DIGEST.pattern, output)
        return found.group(1) if found else None

    # --- manifest lists -------------------------------------------------------

    def manifest_remove(self, name: str) -> Argv:
        """Forget a local list of that name; exits 1 when there is none."""
        return (self.program, "manifest", "rm", name)

    def manifest_create(self, name: str, members: list[str], *, insecure: bool) -> Argv:
        # Docker takes the members now and annotates them one by one next.
        return (self.program, "manifest", "create", *self._insecure(insecure), name, *members)

    def manifest_member(self, name: str, member: str, platform: Platform, *, insecure: bool) -> Argv:
        return (self.program, "manifest", "annotate", name, member, *platform.flags())

    def manifest_push(self, name: str, *, insecure: bool, digest_file: Path | None = None) -> Argv:
        return (self.program, "manifest", "push", *self._insecure(insecure), "--purge", name)

    def manifest_digest(self, output: str, digest_file: Path | None = None) -> str | None:
        found = _DIGEST.search(output)
        return found.group(1) if found else None

    def push_list(
        self,
        runner: Runner,
        name: str,
        members: list[tuple[str, Platform]],
        *,
        insecure: bool,
        digest_file: Path,
        label: str | None = None,
    ) -> str | None:
        """Make the manifest list ``name`` afresh from ``members`` (each pushed
        image with its platform), push it, and return its digest."""
        runner.run(*self.manifest_remove(name), label=label, ok_codes=(0, 1))
        runner.run(*self.manifest_create(name, [ref for ref, _ in members], insecure=insecure), label=label)
        for ref, platform in members:
            runner.run(*self.manifest_member(name, ref, platform, insecure=insecure), label=label)
        out = runner.run(*self.manifest_push(name, insecure=insecure, digest_file=digest_file), label=label)
        return self.manifest_digest(out, digest_file)

    def _insecure(self, insecure: bool) -> Argv:
        return ("--insecure",) if insecure else ()


@dataclass(frozen=True)
class Podman(Engine):
    """Podman: no daemon, no experimental flag, its own auth file, --tls-verify, --digestfile."""

    name: EngineName = "podman"
    has_experimental: bool = False
    has_imagetools: bool = False
    # Podman makes a CNI bridge and firewall rules on a container's first
    # network use; the build (no RUN) needs no network, as the proof needs none.
    build_options: Argv = ("--network", "none")
    missing_image_codes: tuple[int, ...] = (0, 125)

    def unavailable(self, err: CommandFailed) -> DockerUnavailable:
        return DockerUnavailable(f"podman cannot run: {err}", hint="see `podman info`")

    def auth_files(self, docker_config: Path, podman_auth_file: Path) -> tuple[Path, ...]:
        # containers-auth.json(5): podman's own file first, then docker's
        # config.json, so a `docker login` counts for podman too.
        return (podman_auth_file, docker_config)

    def check_setup(self, named_auth_files: tuple[tuple[str, Path], ...]) -> None:
        # Seen with podman 4.3: `podman run` (not build) stats the credential
        # files that DOCKER_CONFIG and REGISTRY_AUTH_FILE name, and fails with
        # "no such file or directory" when one is missing.
        for variable, path in named_auth_files:
            if not path.exists():
                raise EnvironmentProblem(
                    f"podman cannot run containers while {variable} names a file that does not exist ({path})",
                    hint=f"create it (`echo {{}} > {path}`), or unset {variable}",
                )

    def hub_address(self, runner: Runner) -> str:
        return "docker.io"  # podman's key for Docker Hub in auth.json

    def pull(self, image: str, platform: str | None = None, *, insecure: bool = False) -> Argv:
        on = ("--platform", platform) if platform else ()
        return (self.program, "pull", "-q", *on, *self._insecure(insecure), image)

    def push(self, image: str, *, insecure: bool, digest_file: Path | None = None) -> Argv:
        return (self.program, "push", *self._insecure(insecure), *_digest_to(digest_file), image)

    def pushed_digest(self, output: str, digest_file: Path | None = None) -> str | None:
        """Podman prints no digest; it writes it to the --digestfile."""
        return _digest_in(digest_file)

    def manifest_create(self, name: str, members: list[str], *, insecure: bool) -> Argv:
        # An empty list; each member is added with its platform next.
        return (self.program, "manifest", "create", name)

    def manifest_member(self, name: str, member: str, platform: Platform, *, insecure: bool) -> Argv:
        # From the registry, where the member was just pushed: the list then
        # names the digest the registry holds.
        return (self.program, "manifest", "add", *self._insecure(insecure), *platform.flags(), name,
                f"docker://{member}")  # fmt: skip

    def manifest_push(self, name: str, *, insecure: bool, digest_file: Path | None = None) -> Argv:
        return (self.program, "manifest", "push", "--all", "--rm", *self._insecure(insecure),
                *_digest_to(digest_file), name, f"docker://{name}")  # fmt: skip

    def manifest_digest(self, output: str, digest_file: Path | None = None) -> str | None:
        return _digest_in(digest_file)

    def _insecure(self, insecure: bool) -> Argv:
        return ("--tls-verify=false",) if insecure else ()


@dataclass(frozen=True)
class Platform:
    """What a manifest list says about one member."""

    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def of(cls, arch: Arch) -> Platform:
        return cls(arch.os, arch.architecture, arch.variant)

    def flags(self) -> Argv:
        return ("--os", self.os, "--arch", self.architecture, *(("--variant", self.variant) if self.variant else ()))


def _digest_to(digest_file: Path | None) -> Argv:
    return ("--digestfile", str(digest_file)) if digest_file is not None else ()


def _digest_in(digest_file: Path | None) -> str | None:
    if digest_file is None:
        return None
    try:
        found = _DIGEST.search(digest_file.read_text(encoding="utf-8"))
    except OSError:
        return None
    return found.group(1) if found else None


DOCKER = Engine()
PODMAN = Podman()
ENGINES: dict[str, Engine] = {engine.name: engine for engine in (DOCKER, PODMAN)}
_DIGEST = re.compile(r"(sha256:[0-9a-f]{64})")


def image_id(text: str) -> str | None:
    """An ID as `image inspect` prints it, as docker writes it (podman leaves out "sha256:")."""
    found = re.fullmatch(r"(?:sha256:)?([0-9a-f]{64})", text.strip())
    return f"sha256:{found.group(1)}" if found else None


def choose(setting: str, runner: Runner) -> tuple[Engine, str]:
    """The engine for this run, and a line saying why. ``auto``: docker when its
    daemon answers, else podman."""
    if setting != "auto":
        return ENGINES[setting], f"engine: {setting}"
    docker_there = runner.which("docker") is not None
    if runner.dry_run:
        # A dry run runs nothing, not even the probe.
        chosen = DOCKER if docker_there or runner.which("podman") is None else PODMAN
        return chosen, f"engine: auto chose {chosen.name} (on PATH; the daemon is not asked in a dry run)"
    if docker_there:
        try:
            runner.run(*DOCKER.version(), timeout=DOCKER_PROBE_TIMEOUT)
        except CommandFailed as err:
            why = _docker_unavailable(err).message
        else:
            return DOCKER, "engine: auto chose docker (its daemon answers)"
    else:
        why = "docker is not on PATH"
    if runner.which("podman") is None:
        raise ProgramMissing(
            "docker or podman", hint=f"{why}; install one of them (e.g. `sudo apt-get install podman`)"
        )
    return PODMAN, f"engine: auto chose podman ({why})"


# --- the docker-only parts, also used by doctor ---------------------------------


def versions(runner: Runner) -> Versions:
    """Docker's versions (the first rounds' entry point)."""
    return DOCKER.versions(runner)


def _server_experimental(server: dict[str, Any]) -> bool | None:
    for component in server.get("Components") or []:
        if component.get("Name") == "Engine":
            flag = (component.get("Details") or {}).get("Experimental")
            return None if flag is None else str(flag).lower() == "true"
    flag = server.get("Experimental")
    return None if flag is None else bool(flag)


def needs_experimental(client_version: str | None) -> bool:
    """Unknown (a dry run) counts as needing it: the plan shows the edit."""
    return client_version is None or older_than(client_version, EXPERIMENTAL_SINCE)


def older_than(version: str | None, since: tuple[int, int]) -> bool:
    found = re.match(r"(\d+)\.(\d+)", version or "")
    return found is not None and (int(found.group(1)), int(found.group(2))) < since


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
            hint="start it (e.g. `sudo systemctl start docker`, or `sudo dockerd &`), or use `--engine podman`",
        )
    if "permission denied" in text.lower():
        return DockerUnavailable(
            "permission denied on the docker daemon's socket",
            hint="add yourself to the docker group, or run as root",
        )
    return DockerUnavailable(f"docker daemon not usable: {err}")
