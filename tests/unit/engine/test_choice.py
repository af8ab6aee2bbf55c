"""The engine a command uses: the setting, and `auto`'s choice (real shims on PATH), its auth files
in their order, and what is said when one cannot be read."""

from __future__ import annotations

from pathlib import Path

import pytest
from plumbum import local

from unit.engine.test_shapes import shims
from xcompile import engine
from xcompile.engine import DOCKER, PODMAN, choice
from xcompile.engine.authfiles import AuthFile, EnvAuths, Places
from xcompile.errors import ConfigError, ProgramMissing
from xcompile.settings.config import load
from xcompile.system.runner import Runner


def test_engine_setting(tmp_path: Path) -> None:
    assert load({}, {}, tmp_path, Path("/h"))[0].engine == "docker"
    assert load({}, {"XCOMPILE_ENGINE": "Podman"}, tmp_path, Path("/h"))[0].engine == "podman"
    assert load({"engine": "auto"}, {"XCOMPILE_ENGINE": "podman"}, tmp_path, Path("/h"))[0].engine == "auto"
    with pytest.raises(ConfigError, match="expected one of docker, podman, auto"):
        load({"engine": "rkt"}, {}, tmp_path, Path("/h"))


def choose(setting: str, path: str, *, dry_run: bool = False) -> tuple[engine.Engine, str, list[str]]:
    seen: list[str] = []
    places = Places(Path("/nowhere/config.json"), Path("/nowhere/auth.json"))
    runner = Runner(lambda line, label: seen.append(line), dry_run=dry_run)
    with local.env(PATH=path):
        chosen = choice.choose(setting, runner, places, Path("/nowhere"), lambda line, label: seen.append(line))
    return chosen.engine, chosen.why, seen


def test_auto_takes_docker_when_its_daemon_answers(tmp_path: Path) -> None:
    path = shims(tmp_path / "bin", docker="echo '{}'", podman="exit 9")
    chosen, why, seen = choose("auto", path)
    assert (chosen, why) == (DOCKER, "engine: auto chose docker (its daemon answers)")
    assert seen == ["+ docker version --format '{{json .}}'"]


def test_auto_takes_podman_when_docker_does_not_answer(tmp_path: Path) -> None:
    down = "echo 'Cannot connect to the Docker daemon at unix:///x.sock. Is the docker daemon running?' >&2; exit 1"
    path = shims(tmp_path / "bin", docker=down, podman="exit 9")
    chosen, why, _ = choose("auto", path)
    assert chosen == PODMAN
    assert why == "engine: auto chose podman (docker daemon not reachable at unix:///x.sock)"
    chosen, why, _ = choose("auto", shims(tmp_path / "only-podman", podman="exit 9"))
    assert (chosen, why) == (PODMAN, "engine: auto chose podman (docker is not on PATH)")


def test_auto_with_neither(tmp_path: Path) -> None:
    with pytest.raises(ProgramMissing, match=r"docker or podman: not found on PATH — docker is not on PATH"):
        choose("auto", shims(tmp_path / "bin"))


def test_auto_in_a_dry_run_runs_nothing(tmp_path: Path) -> None:
    """The question is shown, not asked: docker on PATH decides, and the line says so."""
    chosen, why, seen = choose("auto", shims(tmp_path / "bin", docker="exit 1", podman="exit 1"), dry_run=True)
    assert chosen == DOCKER and "not asked in a dry run" in why
    assert seen == ["+ docker version --format '{{json .}}'"]
    chosen, _, _ = choose("auto", shims(tmp_path / "p", podman="exit 1"), dry_run=True)
    assert chosen == PODMAN


def test_explicit_choice_asks_nothing(tmp_path: Path) -> None:
    assert choose("podman", shims(tmp_path / "bin"))[:2] == (PODMAN, "engine: podman")


def test_auto_without_running_an_engine_goes_by_path(tmp_path: Path) -> None:
    """inspect and verify run no engine: auto is settled by PATH alone, nothing is run or echoed,
    and the runner is not fitted (no podman setup is checked)."""
    seen: list[str] = []
    runner = Runner(lambda line, label: seen.append(line))
    missing = Places(
        tmp_path / "dc" / "config.json", tmp_path / "auth.json", named=(("REGISTRY_AUTH_FILE", tmp_path / "x"),)
    )

    def pick(path: str) -> tuple[engine.Engine, str]:
        with local.env(PATH=path):
            chosen = choice.choose("auto", runner, missing, tmp_path, lambda line, label: seen.append(line), runs=False)
        assert chosen.fitted is None
        return chosen.engine, chosen.why

    both = shims(tmp_path / "both", docker="exit 1", podman="exit 1")
    assert pick(both) == (DOCKER, "engine: auto chose docker (on PATH; its daemon is not asked)")
    assert pick(shims(tmp_path / "p", podman="exit 1"))[0] == PODMAN
    assert pick(shims(tmp_path / "none")) == (
        DOCKER,
        "engine: auto chose docker (neither docker nor podman is on PATH)",
    )
    assert seen == []


def test_the_engine_value_carries_its_auth_files_in_its_order(tmp_path: Path) -> None:
    """One value: the engine, why, where its logins are (DOCKER_AUTH_CONFIG first for docker
    alone), the home folder; a file an environment variable named is read strictly."""
    env = {"DOCKER_CONFIG": str(tmp_path / "dc"), "DOCKER_AUTH_CONFIG": '{"auths": {"h:5000": {"auth": "dTpw"}}}'}
    settings, _ = load({"engine": "docker"}, env, tmp_path, tmp_path / "home")
    runner = Runner(lambda line, label: None)
    docker = choice.choose("docker", runner, settings.auth_places, tmp_path / "home", lambda line, label: print(line))
    assert (docker.engine, docker.why, docker.home, docker.fitted) == (
        DOCKER,
        "engine: docker",
        tmp_path / "home",
        None,
    )
    assert docker.auth_files == (EnvAuths((("h:5000", "dTpw"),)), AuthFile(tmp_path / "dc" / "config.json"))
    assert [isinstance(f, AuthFile) and f.warn is None for f in docker.auth_files] == [False, True]  # named: strict
    podman = choice.choose(
        "podman", runner, settings.auth_places, tmp_path / "home", lambda line, label: print(line), runs=False
    )
    assert [str(f) for f in podman.auth_files] == [str(settings.podman_auth_file), str(tmp_path / "dc" / "config.json")]
    assert [f.warn is None for f in podman.auth_files if isinstance(f, AuthFile)] == [False, True]


def test_an_unreadable_default_auth_file_is_one_warning_and_no_login(tmp_path: Path) -> None:
    """~/.docker/config.json that docker could not read either: said once, however often it is
    read, and read as holding nothing; the same file named by DOCKER_CONFIG is an error."""
    home = tmp_path / "home"
    (home / ".docker").mkdir(parents=True)
    (home / ".docker" / "config.json").write_text("{oops")
    said: list[str] = []
    settings, _ = load({}, {}, tmp_path, home)
    chosen = choice.choose(
        "docker", Runner(lambda line, label: None), settings.auth_places, home, lambda line, label: said.append(line)
    )
    (auth_file,) = chosen.auth_files
    assert isinstance(auth_file, AuthFile)
    assert auth_file.data() == {} and auth_file.data() == {}
    assert said == [
        f"warning: {home}/.docker/config.json is not valid JSON (line 1, column 2: Expecting property name"
        " enclosed in double quotes); read as holding no login, as docker reads it"
    ]
    chosen.refuse_broken()  # not named: nothing to refuse
    named, _ = load({}, {"DOCKER_CONFIG": str(home / ".docker")}, tmp_path, home)
    strict = choice.choose(
        "docker", Runner(lambda line, label: None), named.auth_places, home, lambda line, label: said.append(line)
    )
    with pytest.raises(ConfigError, match=r"config.json is not valid JSON \(line 1"):
        strict.refuse_broken()
    assert len(said) == 1


def test_podmans_setup_refused_still_names_the_engine(tmp_path: Path) -> None:
    """A REGISTRY_AUTH_FILE that does not exist stops podman; doctor still learns which engine it was."""
    settings, _ = load({}, {"REGISTRY_AUTH_FILE": str(tmp_path / "gone.json")}, tmp_path, tmp_path)
    with pytest.raises(choice.Refused, match="names a file that does not exist") as refused:
        choice.choose(
            "podman", Runner(lambda line, label: None), settings.auth_places, tmp_path, lambda line, label: print(line)
        )
    assert refused.value.chosen.engine == PODMAN and refused.value.exit_code == 3
