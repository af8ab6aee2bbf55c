"""The engine a command uses, made once: ``choose`` settles the ``engine`` setting (docker,
podman, or auto: docker when its daemon answers, else podman), finds where its logins are,
and fits the runner to it. The ``Chosen`` value carries all of that to every step.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from xcompile.engine import DOCKER, DOCKER_PROBE_TIMEOUT, ENGINES, PODMAN, Engine, failures
from xcompile.engine.authfiles import AuthFile, EnvAuths, Places, SayOnce, Source
from xcompile.errors import CommandFailed, EnvironmentProblem, ProgramMissing, XcompileError
from xcompile.system.runner import Runner
from xcompile.system.terminal import Say


@dataclass(frozen=True)
class Chosen:
    """The engine of one command, as every step uses it."""

    engine: Engine
    """docker's or podman's command shapes."""
    why: str
    """The line that says which engine, and why ("engine: auto chose podman (…)")."""
    auth_files: tuple[Source, ...]
    """Where its logins are, in its order: DOCKER_AUTH_CONFIG first where it reads it (the
    docker CLI 28.3+; podman does not), then its auth files; the first that has a host wins."""
    home: Path
    """The user's home folder, whose docker credentials podman reads without DOCKER_CONFIG."""
    fitted: str | None
    """The line that says how the runner was fitted to the engine (podman without an
    empty DOCKER_CONFIG), where it was."""
    say: Say = field(compare=False, repr=False)
    """Where its warnings go, each once (an auth file that cannot be read)."""

    def refuse_broken(self) -> None:
        """Read each auth file the user named (DOCKER_CONFIG, REGISTRY_AUTH_FILE): one that
        cannot be read is an error to fix, said before any work."""
        for auth_file in self.auth_files:
            if isinstance(auth_file, AuthFile) and auth_file.warn is None:
                auth_file.data()


class Refused(EnvironmentProblem):
    """The engine was chosen, and the setup it would run in refused (``chosen`` says which)."""

    def __init__(self, err: XcompileError, chosen: Chosen) -> None:
        super().__init__(err.message, hint=err.hint)
        self.exit_code, self.chosen = err.exit_code, chosen


def choose(setting: str, runner: Runner, places: Places, home: Path, say: Say, *, runs: bool = True) -> Chosen:
    """The engine for a command: ``auto`` is settled here, once. ``runs``: whether the command
    runs the engine; where it does not (inspect and verify read the registry alone), auto is
    settled by PATH alone, without asking the daemon, and the runner is left as it is."""
    engine, why = _pick(setting, runner, asks=runs)
    once = SayOnce(say)
    named = {path for _, path in places.named}
    paths = engine.auth_files(places.docker_config, places.podman_auth_file)
    files = tuple(AuthFile(path, None if path in named else once) for path in paths)
    env = places.docker_auth_config if engine.reads_docker_auth_config else ()
    auth_files: tuple[Source, ...] = (EnvAuths(env), *files) if env else files
    chosen = Chosen(engine, why, auth_files, home, None, once)
    if not runs:
        return chosen
    try:  # before the engine's first command, so that each one runs as the setup needs
        fitted = engine.prepare(runner, places.named, home, once)
    except XcompileError as err:
        raise Refused(err, chosen) from None
    return replace(chosen, fitted=fitted)


def _pick(setting: str, runner: Runner, *, asks: bool) -> tuple[Engine, str]:
    """The engine, and a line saying why. ``auto``: docker when its daemon answers, else podman;
    without ``asks``, or in a dry run (which asks nothing), docker where it is on PATH."""
    if setting != "auto":
        return ENGINES[setting], f"engine: {setting}"
    why = "docker is not on PATH"
    if runner.which("docker") is not None:
        if not asks:
            return DOCKER, "engine: auto chose docker (on PATH; its daemon is not asked)"
        try:
            answer = runner.ask(*DOCKER.version_cmd(), timeout=DOCKER_PROBE_TIMEOUT)
        except CommandFailed as err:
            why = failures.docker_unavailable(err).message
        else:
            if answer is not None:
                return DOCKER, "engine: auto chose docker (its daemon answers)"
            # Unknown (a dry run asks nothing): what is on PATH decides.
            return DOCKER, "engine: auto chose docker (on PATH; the daemon is not asked in a dry run)"
    if runner.which("podman") is None:
        if not asks:  # nothing runs an engine: docker's auth files, as before auto existed
            return DOCKER, "engine: auto chose docker (neither docker nor podman is on PATH)"
        msg = "docker or podman"
        raise ProgramMissing(msg, hint=f"{why}; install one of them (e.g. `sudo apt-get install podman`)")
    return PODMAN, f"engine: auto chose podman ({why})"
