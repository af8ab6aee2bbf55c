"""Settings, resolved in one cascade: defaults < config file < XCOMPILE_* env < switches.

``load`` takes the environment, the working folder and the home folder as
parameters (tests pass a dict); it reads the config file (settings/configfile.py),
parses each layer's keys with their parsers (settings/keys.py), and checks that
the files a setting names (report, keyring) can be used.
"""

from __future__ import annotations

import base64
import difflib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from xcompile.archive.release import DEFAULT_SUITE as DEFAULT_SUITE  # the archive's own default
from xcompile.engine import authfiles
from xcompile.errors import ConfigError
from xcompile.host import platforms
from xcompile.registry import reference
from xcompile.settings.configfile import has_section, read_file
from xcompile.settings.keys import (
    ALIASES,
    DEFAULT_JOBS,
    DEFAULT_PROOF_TIMEOUT,
    ENV_PREFIX,
    KEYS,
    PER_ARCH,
    SWITCH_KEYS,
    switch_names,
)

ENGINE_ENV = ("DOCKER_HOST", "DOCKER_CONTEXT", "CONTAINER_HOST", "CONTAINER_CONNECTION")


@dataclass(frozen=True)
class Config:
    # The original job's values (see setup.cfg's [xcompile] section).
    image: str = "python"
    base: str | None = None
    """The foreign base without tag; "{namespace}" stands for the arch's
    Docker Hub namespace. None means "{namespace}/<image>"."""
    bases: tuple[tuple[str, str], ...] = ()
    """Per-arch overrides of ``base``: (arch name, base)."""
    tags: tuple[str, ...] = ("3.6", "3.6-slim", "3.7", "3.7-slim")
    repo: str = "brewblox/rpi-python"
    engine: str = "docker"
    """docker, podman, or auto: docker when its daemon answers, else podman."""
    arches: tuple[str, ...] = ("arm32v7",)
    push: bool = True
    verify: bool = True
    manifest: bool = True
    insecure: bool | None = None
    """Talk plain HTTP to the registry for `docker manifest`; None: only for
    loopback hosts, as the docker daemon does."""
    jobs: int = DEFAULT_JOBS
    proof_timeout: int = DEFAULT_PROOF_TIMEOUT
    """Seconds the proof's emulated run may take before the image fails (a daemon
    that loses a container's exit would otherwise hold the run forever)."""
    keep_going: bool = False
    report: Path | None = None
    rebuild: str = "changed"
    """changed: build and push only where the registry's image differs in base, qemu or recipe."""
    pull: str = "always"
    """Pull each base before building: always, missing (only when not here), never."""
    # Where the static qemu comes from (see qemu/settle.py).
    qemu_source: str = "auto"
    mirror: str | None = None
    """A Debian archive's base URL; None: the host's apt sources."""
    suite: str = DEFAULT_SUITE
    keyring: Path | None = None
    """Replaces xcompile's bundled Debian keys and the host's (see archive/trust.py)."""
    allow_unsigned: bool = False
    """Take an archive whose signature cannot be verified (warned on every run)."""
    offline: bool = False
    qemu_url: str | None = None
    qemu_sha256: str | None = None
    proof_command: str | tuple[str, ...] | None = None
    """Run in every image under emulation, after the machine probe and before the push, as a
    downstream RUN runs: a shell line (sh -c), or exec form (a TOML list)."""
    proof_commands: tuple[tuple[str, str | tuple[str, ...]], ...] = ()
    """Per-arch overrides of ``proof_command``: (arch name, command)."""
    qemu_version: str | None = None
    """The qemu to use: an exact Debian version, or an upstream prefix (7.2): the newest the mirror has."""
    qemu_host: str = "amd64"
    """The machine that will use the images (a row of the arch table): the qemu inside is built
    for its CPU, whatever machine xcompile or its engine runs on (issue 26)."""
    cache_dir: Path = field(default=Path("~/.cache/xcompile"))
    # Set by switches only: they describe one run, not a project.
    only: tuple[str, ...] = ()
    """Cells to build, as "TAG/ARCH" (a CI matrix job's share); empty: every cell."""
    dry_run: bool = False
    verbose: bool = False
    # Derived from the environment, as docker itself does.
    docker_config: Path = field(default=Path("~/.docker/config.json"))
    named_auth_files: tuple[tuple[str, Path], ...] = ()
    """The credential files an environment variable names (DOCKER_CONFIG,
    REGISTRY_AUTH_FILE): podman 4 fails to run containers when one is missing."""
    podman_auth_file: Path = field(default=Path("/run/containers/0/auth.json"))
    """Podman's credentials: REGISTRY_AUTH_FILE, else $XDG_RUNTIME_DIR/containers/auth.json."""
    docker_auth_config: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    """DOCKER_AUTH_CONFIG's logins (docker CLI 28.3+), as (auths key, base64 user:password)."""
    engine_env: tuple[tuple[str, str], ...] = ()
    """DOCKER_HOST, DOCKER_CONTEXT, CONTAINER_HOST, CONTAINER_CONNECTION as the environment sets them:
    whether the engine runs on this machine (qemu/machines.py's engine_is_local)."""
    source: str = "built-in defaults"
    """Where the file layer came from, for the plan's header."""

    @property
    def auth_places(self) -> authfiles.Places:
        """Where logins may be, and which files were named, as engine/choice.py takes them."""
        named = self.named_auth_files
        return authfiles.Places(self.docker_config, self.podman_auth_file, self.docker_auth_config, named)

    @property
    def targets(self) -> tuple[platforms.Arch, ...]:
        return tuple(platforms.get(name) for name in self.arches)

    @property
    def cells(self) -> tuple[str, ...]:
        """Every configured "TAG/ARCH", tag by tag: what a CI matrix fans out."""
        return tuple(f"{tag}/{arch}" for tag in self.tags for arch in self.arches)

    @property
    def qemu_host_arch(self) -> platforms.Arch:
        return platforms.get(self.qemu_host)

    def proof_command_for(self, arch: platforms.Arch) -> str | tuple[str, ...] | None:
        return dict(self.proof_commands).get(arch.name, self.proof_command)

    def base_for(self, arch: platforms.Arch) -> str:
        override = dict(self.bases).get(arch.name)
        if override:
            return override
        pattern = self.base or f"{{namespace}}/{self.image}"
        return pattern.replace("{namespace}", arch.namespace)


def load(
    switches: Mapping[str, Any],
    env: Mapping[str, str],
    cwd: Path,
    home: Path,
    config_file: Path | None = None,
) -> tuple[Config, list[str]]:
    """Resolve the settings; returns them with warnings for the user.

    ``switches`` holds only what was given on the command line (None means
    "not given"); its keys are Config field names.
    """
    warnings: list[str] = []
    values: dict[str, Any] = {}

    file_values, source = read_file(cwd, config_file)
    if source == "setup.cfg" and has_section(cwd / "pyproject.toml"):
        warnings.append("pyproject.toml: its [tool.xcompile] is not read — setup.cfg's [xcompile] is; keep one")
    env_values = {
        key[len(ENV_PREFIX) :].lower(): value
        for key, value in env.items()
        if key.startswith(ENV_PREFIX) and value != ""
    }
    for layer in (
        _parse_layer(file_values, source, warnings, unknown_is_error=True),
        _parse_layer(env_values, "environment", warnings, unknown_is_error=False),
    ):
        # Per-arch values (bases, proof commands) merge across layers; every other key replaces.
        merged = {field: dict(values.get(field, ())) | dict(layer.pop(field, ())) for field, _ in PER_ARCH.values()}
        values.update(layer)
        values.update((field, tuple(sorted(pairs.items()))) for field, pairs in merged.items() if pairs)

    for key, value in switches.items():
        if value is None:
            continue
        parse = KEYS.get(key) or SWITCH_KEYS.get(key)
        values[key] = parse(value, f"--{switch_names(key)[0]}") if parse else value

    if env.get("DOCKER_CONFIG"):
        values["docker_config"] = Path(env["DOCKER_CONFIG"]) / "config.json"
    else:
        values["docker_config"] = home / ".docker" / "config.json"
    values["podman_auth_file"] = _podman_auth_file(env)
    named = {"DOCKER_CONFIG": values["docker_config"], "REGISTRY_AUTH_FILE": values["podman_auth_file"]}
    values["named_auth_files"] = tuple((name, path) for name, path in named.items() if env.get(name))
    values["docker_auth_config"] = _docker_auth_config(env.get("DOCKER_AUTH_CONFIG", ""), warnings)
    values["engine_env"] = tuple((name, env[name]) for name in ENGINE_ENV if env.get(name))
    cache_home = Path(env["XDG_CACHE_HOME"]) if env.get("XDG_CACHE_HOME") else home / ".cache"
    values["cache_dir"] = cache_home / "xcompile"
    for key in ("report", "keyring"):
        if isinstance(values.get(key), Path) and not values[key].is_absolute():
            values[key] = cwd / values[key]

    config = Config(source=source, **values)
    _validate(config)
    deduped = tuple(dict.fromkeys(config.tags))
    if deduped != config.tags:
        warnings.append("tags: duplicates dropped, each tag is built once")
        config = Config(**{**_asdict(config), "tags": deduped})
    return config, warnings


def _podman_auth_file(env: Mapping[str, str]) -> Path:
    # Where podman (containers/image) writes `podman login`'s credentials.
    if env.get("REGISTRY_AUTH_FILE"):
        return Path(env["REGISTRY_AUTH_FILE"])
    if env.get("XDG_RUNTIME_DIR"):
        return Path(env["XDG_RUNTIME_DIR"]) / "containers" / "auth.json"
    return Path(f"/run/containers/{os.getuid()}/auth.json")


def _docker_auth_config(text: str, warnings: list[str]) -> tuple[tuple[str, str], ...]:
    """DOCKER_AUTH_CONFIG's auths: JSON as config.json's, whose logins the docker CLI
    (28.3+) takes before the config file's. Docker takes it whole or not at all: where it
    is not JSON, or an entry's ``auth`` is not base64 "user:password", it says so and
    reads the files alone; so does this, never showing what the variable holds."""
    if not text:
        return ()
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        data = None
    auths = (data.get("auths") or {}) if isinstance(data, dict) else None
    if isinstance(auths, dict):
        found = [(key, entry.get("auth") if isinstance(entry, dict) else None) for key, entry in auths.items()]
        pairs = tuple((key, auth) for key, auth in found if isinstance(auth, str) and _user_password(auth))
        if len(pairs) == len(found):
            return pairs
    warnings.append(
        'DOCKER_AUTH_CONFIG is not what docker reads (JSON whose "auths" each hold a base64 "user:password"'
        ' "auth"), so it is ignored, as docker ignores it'
    )
    return ()


def _user_password(auth: str) -> bool:
    try:
        user, colon, _ = base64.b64decode(auth, validate=True).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        return False
    return bool(user and colon)


def _asdict(config: Config) -> dict[str, Any]:
    return {f.name: getattr(config, f.name) for f in fields(config)}


def _parse_layer(raw: Mapping[str, Any], where: str, warnings: list[str], *, unknown_is_error: bool) -> dict[str, Any]:
    parsed: dict[str, Any] = {}
    per_arch: dict[str, dict[str, Any]] = {}
    for raw_key, value in raw.items():
        key = raw_key.replace("-", "_").lower()
        key = ALIASES.get(key, key)
        label = f"{ENV_PREFIX}{key.upper()}" if where == "environment" else f"{where}: {key}"
        prefix = next((prefix for prefix in PER_ARCH if key.startswith(prefix)), None)
        if prefix is not None:
            field, parse_one = PER_ARCH[prefix]
            try:
                arch = platforms.get(key[len(prefix) :])
            except ConfigError as err:
                if unknown_is_error:
                    msg = f"{label}: {err.message}"
                    raise ConfigError(msg, hint=err.hint) from None
                warnings.append(f"{label}: {err.message}, so it is ignored — {err.hint}")
                continue
            per_arch.setdefault(field, {})[arch.name] = parse_one(value, label)
            continue
        parse = KEYS.get(key)
        if parse is None:
            near = difflib.get_close_matches(key, KEYS, n=1)
            hint = f"did you mean '{near[0]}'?" if near else f"known keys: {', '.join(KEYS)}"
            shown = f"{ENV_PREFIX}{raw_key.upper()}" if where == "environment" else raw_key
            message = f"{where}: unknown key '{shown}'"
            if unknown_is_error:
                raise ConfigError(message, hint=hint)
            warnings.append(f"{message} is ignored — {hint}")
            continue
        parsed[key] = parse(value, label)
    parsed.update((field, tuple(sorted(pairs.items()))) for field, pairs in per_arch.items())
    return parsed


def check_report(report: Path | None) -> None:
    """The report is written after every build and push: a path it cannot go to is refused before
    the first. Only a command that writes one asks (issue 27: `report =` in setup.cfg, its folder not
    made yet, stopped `xcompile matrix`)."""
    if report is None:
        return
    if not report.parent.is_dir():
        msg = f"report: folder {report.parent} does not exist"
        raise ConfigError(msg)
    if report.is_dir():
        msg = f"report: {report} is a folder"
        raise ConfigError(msg, hint="give a file name, e.g. report.json")
    if report.exists() and not report.is_file():
        # /dev/null, a FIFO: never replaced by a regular file, even as root.
        msg = f"report: {report} exists and is not a regular file"
        raise ConfigError(msg, hint="give a file name")


def _validate(config: Config) -> None:
    for arch in config.targets:
        reference.check_name(config.base_for(arch), what=f"base image for {arch.name}")
    reference.check_name(config.repo)
    if config.keyring is not None and not config.keyring.is_file():
        msg = f"keyring: {config.keyring} does not exist"
        raise ConfigError(msg)
    if bool(config.qemu_url) != bool(config.qemu_sha256):
        msg = "--qemu-url and --qemu-sha256 go together"
        raise ConfigError(
            msg,
            hint="a downloaded qemu ends up in images shipped to a fleet, so its checksum is mandatory",
        )
    if not config.tags:
        msg = "no tags to build"
        raise ConfigError(msg, hint="give at least one --tag")
    for tag in config.tags:
        reference.check_tag(tag)
        if len(config.targets) > 1:
            # With several arches each image is pushed as <tag>-<arch>, which
            # must still be a tag; refused now, not at the first push.
            for arch in config.targets:
                reference.check_tag(tag, suffix=f"-{arch.name}")
                image = f"{tag}-{arch.name}"
                if image in config.tags:  # one name, two things: the list would overwrite the image
                    msg = f"tags {tag} and {image} collide: with several arches {tag}'s {arch.name} image is {image}"
                    raise ConfigError(msg, hint=f"drop one of them, or build {image} in a run of its own")
    unknown = [cell for cell in config.only if cell not in config.cells]
    if unknown:
        msg = f"--only {', '.join(unknown)}: not a configured cell"
        raise ConfigError(
            msg,
            hint=f"valid cells: {', '.join(config.cells)}",
        )


DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(Config)}
