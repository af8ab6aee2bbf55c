"""The container engine: docker or podman, as command shapes and one reading of their failures.

Every ``*_cmd`` method returns argv and runs nothing: the steps hand it to the
runner. So docker and podman differ here and only here. ``classify`` reads a
failed command's words into one of a few outcomes the steps act on. Which
engine a command uses is chosen once, by ``choice.choose``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from xcompile.engine import authfiles, failures, versions
from xcompile.engine.failures import DOCKER_PROBE_TIMEOUT, Failure, FailureKind, classify
from xcompile.engine.versions import (
    DAEMON_PLATFORM_SINCE,
    EXPERIMENTAL_SINCE,
    EXPERIMENTAL_SINCE_TEXT,
    EngineName,
    Versions,
    needs_experimental,
    older_than,
)
from xcompile.errors import CommandFailed, EngineUnavailable
from xcompile.system.runner import Runner
from xcompile.system.terminal import Say

__all__ = [
    "DAEMON_PLATFORM_SINCE",
    "DOCKER_PROBE_TIMEOUT",
    "EXPERIMENTAL_SINCE",
    "EXPERIMENTAL_SINCE_TEXT",
    "Failure",
    "FailureKind",
    "Versions",
    "classify",
    "needs_experimental",
    "older_than",
]

if TYPE_CHECKING:
    from xcompile.host.platforms import Arch

CHOICES = ("docker", "podman", "auto")
Argv = tuple[str, ...]


@dataclass(frozen=True)
class Engine:
    """Docker's command shapes; ``Podman`` overrides where podman differs.
    The two rows are ``DOCKER`` and ``PODMAN``."""

    name: EngineName = "docker"
    has_experimental: bool = True
    """Whether the client config's "experimental" gates anything (docker only)."""
    has_imagetools: bool = True
    """Whether a buildx plugin may make manifest lists (`buildx imagetools`; docker only)."""
    reads_docker_auth_config: bool = True
    """Whether its logins may come from DOCKER_AUTH_CONFIG (the docker CLI 28.3+; not podman)."""
    run_options: Argv = ("--network", "none")
    """The proof's run needs no network, and a container without one starts
    faster (no bridge endpoint to set up: about 0.06 s each here)."""
    build_options: Argv = ()
    missing_image_codes: tuple[int, ...] = (0, 1)
    """What `image inspect` may exit with, beside 0, when there is no such image."""
    platform_template: str = '{{.Os}}/{{.Architecture}}/{{with index . "Variant"}}{{.}}{{end}}'
    """An image's os/architecture/variant, as an `image inspect` template. The daemon
    leaves Variant out where there is none, and a client that formats its raw JSON
    (docker 28 does, for a template naming .Id) fails on `{{.Variant}}` there."""

    @property
    def program(self) -> str:
        return self.name

    # --- the engine itself ---------------------------------------------------

    def version_cmd(self) -> Argv:
        return (self.program, "version", "--format", "{{json .}}")

    def versions(self, runner: Runner) -> Versions:
        """The client's version, and the daemon's where there is one; raises when
        the engine cannot work. Unknown in a dry run."""
        try:
            out = runner.ask(*self.version_cmd(), timeout=DOCKER_PROBE_TIMEOUT)
        except CommandFailed as err:
            raise self.unavailable(err) from None
        return versions.parse(self.name, out)

    def unavailable(self, err: CommandFailed) -> EngineUnavailable:
        return failures.docker_unavailable(err)

    def prepare(self, runner: Runner, named: authfiles.NamedFiles, home: Path, warn: Say) -> str | None:
        """Before any work: fit the runner to a setup this engine can work in with
        help (``home``: the user's home folder), and refuse one it cannot; the line
        that says what was done, if anything. Docker needs nothing."""
        del runner, named, home, warn
        return None

    def needs_experimental(self, versions: Versions) -> bool:
        """Unknown (a dry run) counts as needing it: the plan shows the edit."""
        return self.has_experimental and needs_experimental(versions.client)

    def auth_files(self, docker_config: Path, podman_auth_file: Path) -> tuple[Path, ...]:
        """Where this engine looks for registry credentials, in its order (both
        paths come from config.load); the first file that has a host wins."""
        del podman_auth_file  # docker reads its own config only
        return (docker_config,)

    def hub_address(self, runner: Runner) -> str | None:
        """Docker Hub's address, which is also its key among the credentials (None: not asked)."""
        out = runner.ask(self.program, "info", "--format", "{{.IndexServerAddress}}", timeout=30)
        return None if out is None else out.strip()

    def probe_cmd(self, empty_root: Path) -> Argv:
        """A container start that needs no image: it fails with "no such file"
        once the runtime has set everything up (podman only)."""
        return (self.program, "run", "--rm", *self.run_options, "--rootfs", str(empty_root), "/xcompile-probe")

    # --- images -----------------------------------------------------------------

    def build_cmd(self, platform: str, dockerfile: Path, name: str, context: Path) -> Argv:
        return (
            self.program,
            "build",
            "--platform",
            platform,
            "--no-cache",
            *self.build_options,
            "-f",
            str(dockerfile),
            "-t",
            name,
            str(context),
        )

    def tag_cmd(self, image: str, name: str) -> Argv:
        return (self.program, "tag", image, name)

    def inspect_cmd(self, image: str, template: str | None = None) -> Argv:
        """`image inspect`: JSON, or the Go template's text."""
        return (self.program, "image", "inspect", *(("--format", template) if template else ()), image)

    def inspect_all_cmd(self, images: list[str], template: str) -> Argv:
        """One `image inspect` of many names: a line of the template's text for
        each one found, and an error line for each one missing."""
        return (self.program, "image", "inspect", "--format", template, *images)

    def run_cmd(
        self,
        platform: str,
        image: str,
        *command: str,
        entrypoint: str | None = None,
        name: str | None = None,
        network: bool = False,
    ) -> Argv:
        """``network``: the run gets the engine's default network, as a build's RUN has."""
        chosen = ("--entrypoint", entrypoint) if entrypoint else ()
        named = ("--name", name) if name else ()
        options = (*named, *(() if network else self.run_options), "--platform", platform, *chosen)
        return (self.program, "run", "--rm", *options, image, *command)

    def create_cmd(self, platform: str, image: str, *command: str) -> Argv:
        return (self.program, "create", *self.run_options, "--platform", platform, image, *command)

    def copy_out_cmd(self, container: str, path: str, dest: Path) -> Argv:
        return (self.program, "cp", f"{container}:{path}", str(dest))

    def import_cmd(self, tarball: Path, name: str) -> Argv:
        """An image of the files in ``tarball`` alone, for the engine's machine's own platform."""
        return (self.program, "import", str(tarball), name)

    def remove_container_cmd(self, container: str, *, force: bool = False) -> Argv:
        return (self.program, "rm", *(("--force",) if force else ()), container)

    def remove_images_cmd(self, *images: str) -> Argv:
        return (self.program, "rmi", *images)

    def pull_cmd(self, image: str, platform: str | None = None, *, insecure: bool = False) -> Argv:
        # Docker's daemon decides plain HTTP for push and pull itself
        # (loopback registries are plain HTTP to it).
        del insecure
        on = ("--platform", platform) if platform else ()
        return (self.program, "pull", "-q", *on, image)

    def push_cmd(self, image: str, *, insecure: bool, digest_file: Path | None = None) -> Argv:
        del insecure, digest_file  # the daemon decides; docker prints the digest
        return (self.program, "push", image)

    def pushed_digest(self, output: str, digest_file: Path | None = None) -> str | None:
        """The digest a push reports: docker prints it."""
        del digest_file
        found = re.search(r"digest: " + _DIGEST.pattern, output)
        return found.group(1) if found else None

    # --- manifest lists -------------------------------------------------------

    def manifest_remove_cmd(self, name: str) -> Argv:
        """Forget a local list of that name; exits 1 when there is none."""
        return (self.program, "manifest", "rm", name)

    def manifest_create_cmd(self, name: str, members: list[str], *, insecure: bool) -> Argv:
        # Docker takes the members now and annotates them one by one next.
        return (self.program, "manifest", "create", *self._insecure(insecure), name, *members)

    def manifest_member_cmd(self, name: str, member: str, platform: Platform, *, insecure: bool) -> Argv:
        del insecure  # docker's annotate reads nothing from the registry
        return (self.program, "manifest", "annotate", name, member, *platform.flags())

    def manifest_push_cmd(self, name: str, *, insecure: bool, digest_file: Path | None = None) -> Argv:
        del digest_file  # docker prints the digest
        return (self.program, "manifest", "push", *self._insecure(insecure), "--purge", name)

    def manifest_digest(self, output: str, digest_file: Path | None = None) -> str | None:
        del digest_file
        found = _DIGEST.search(output)
        return found.group(1) if found else None

    def _insecure(self, insecure: bool) -> Argv:
        return ("--insecure",) if insecure else ()


@dataclass(frozen=True)
class Podman(Engine):
    """Podman: no daemon, no experimental flag, its own auth file, --tls-verify, --digestfile."""

    name: EngineName = "podman"
    has_experimental: bool = False
    has_imagetools: bool = False
    reads_docker_auth_config: bool = False
    # Podman makes a CNI bridge and firewall rules on a container's first
    # network use; the build (no RUN) needs no network, as the proof needs none.
    # Nor does it pull: the base was pulled (with --tls-verify=false where its
    # registry is on loopback) or found before, and podman's own pull of a base
    # that is here for another variant would go without that switch and fail on TLS.
    build_options: Argv = ("--network", "none", "--pull=never")
    missing_image_codes: tuple[int, ...] = (0, 125)
    # Podman 4's inspect has no Variant field (a template naming it fails), so
    # an image's variant is not told there; its os and architecture are.
    platform_template: str = "{{.Os}}/{{.Architecture}}"

    def unavailable(self, err: CommandFailed) -> EngineUnavailable:
        return EngineUnavailable(f"podman cannot run: {err}", hint="see `podman info`")

    def auth_files(self, docker_config: Path, podman_auth_file: Path) -> tuple[Path, ...]:
        # containers-auth.json(5): podman's own file first, then docker's
        # config.json, so a `docker login` counts for podman too.
        return (podman_auth_file, docker_config)

    def prepare(self, runner: Runner, named: authfiles.NamedFiles, home: Path, warn: Say) -> str | None:
        return authfiles.prepare(runner, self.program, named, home, warn)

    def hub_address(self, runner: Runner) -> str:
        del runner
        return "docker.io"  # podman's key for Docker Hub in auth.json

    def pull_cmd(self, image: str, platform: str | None = None, *, insecure: bool = False) -> Argv:
        on = ("--platform", platform) if platform else ()
        return (self.program, "pull", "-q", *on, *self._insecure(insecure), image)

    def push_cmd(self, image: str, *, insecure: bool, digest_file: Path | None = None) -> Argv:
        return (self.program, "push", *self._insecure(insecure), *_digest_to(digest_file), image)

    def pushed_digest(self, output: str, digest_file: Path | None = None) -> str | None:
        """Podman prints no digest; it writes it to the --digestfile."""
        del output
        return _digest_in(digest_file)

    def manifest_create_cmd(self, name: str, members: list[str], *, insecure: bool) -> Argv:
        # An empty list; each member is added with its platform next.
        del members, insecure
        return (self.program, "manifest", "create", name)

    def manifest_member_cmd(self, name: str, member: str, platform: Platform, *, insecure: bool) -> Argv:
        # From the registry, where the member was just pushed: the list then
        # names the digest the registry holds.
        flags = (*self._insecure(insecure), *platform.flags())
        return (self.program, "manifest", "add", *flags, name, f"docker://{member}")

    def manifest_push_cmd(self, name: str, *, insecure: bool, digest_file: Path | None = None) -> Argv:
        flags = ("--all", "--rm", *self._insecure(insecure), *_digest_to(digest_file))
        return (self.program, "manifest", "push", *flags, name, f"docker://{name}")

    def manifest_digest(self, output: str, digest_file: Path | None = None) -> str | None:
        del output
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

    def __str__(self) -> str:
        return "/".join(part for part in (self.os, self.architecture, self.variant) if part)


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


def image_id(text: str | None) -> str | None:
    """An ID as `image inspect` prints it, as docker writes it (podman leaves out "sha256:")."""
    found = re.fullmatch(r"(?:sha256:)?([0-9a-f]{64})", (text or "").strip())
    return f"sha256:{found.group(1)}" if found else None
