"""The engine table: each engine's command shapes, its auth file, experimental,
and `auto`'s choice. Pure, apart from the choice, which runs real shims."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from plumbum import local

from xcompile import engine
from xcompile.engine import DOCKER, PODMAN, Platform, Versions, choice
from xcompile.engine.authfiles import AuthFile, EnvAuths, Places
from xcompile.errors import ConfigError, EngineUnavailable, ProgramMissing
from xcompile.settings.config import load
from xcompile.system.runner import Runner

ARM_V7 = Platform("linux", "arm", "v7")


def argv(line: str) -> tuple[str, ...]:
    """The command ``line`` (no argument holds a space) as the tuple an engine gives."""
    return tuple(line.split())


def test_docker_shapes() -> None:
    built = DOCKER.build_cmd("linux/arm/v7", Path("/c/Dockerfile.a"), "r:a", Path("/c"))
    assert built == argv("docker build --platform linux/arm/v7 --no-cache -f /c/Dockerfile.a -t r:a /c")
    ran = DOCKER.run_cmd("linux/arm/v7", "r:a", "uname", "-m")
    assert ran == argv("docker run --rm --network none --platform linux/arm/v7 r:a uname -m")
    # The daemon decides plain HTTP for push and pull; only `docker manifest` asks.
    pushed = DOCKER.push_cmd("127.0.0.1:5000/r:a", insecure=True, digest_file=Path("/d"))
    assert pushed == argv("docker push 127.0.0.1:5000/r:a")
    created = DOCKER.manifest_create_cmd("r:a", ["r:a-x", "r:a-y"], insecure=True)
    assert created == argv("docker manifest create --insecure r:a r:a-x r:a-y")
    member = DOCKER.manifest_member_cmd("r:a", "r:a-x", ARM_V7, insecure=True)
    assert member == argv("docker manifest annotate r:a r:a-x --os linux --arch arm --variant v7")
    assert DOCKER.manifest_push_cmd("r:a", insecure=False) == ("docker", "manifest", "push", "--purge", "r:a")


def test_podman_shapes() -> None:
    built = PODMAN.build_cmd("linux/arm64/v8", Path("/c/D"), "r:a", Path("/c"))[:8]
    assert built == argv("podman build --platform linux/arm64/v8 --no-cache --network none --pull=never")
    ran = PODMAN.run_cmd("linux/arm/v7", "r:a", "true")
    assert ran == argv("podman run --rm --network none --platform linux/arm/v7 r:a true")
    pushed = PODMAN.push_cmd("localhost:5000/r:a", insecure=True, digest_file=Path("/w/d"))
    assert pushed == argv("podman push --tls-verify=false --digestfile /w/d localhost:5000/r:a")
    pulled = PODMAN.pull_cmd("localhost:5000/r:a", "linux/arm/v7", insecure=True)
    assert pulled == argv("podman pull -q --platform linux/arm/v7 --tls-verify=false localhost:5000/r:a")
    assert PODMAN.manifest_create_cmd("r:a", ["r:a-x"], insecure=True) == ("podman", "manifest", "create", "r:a")
    member = PODMAN.manifest_member_cmd("r:a", "h/r:a-x", ARM_V7, insecure=True)
    added = "podman manifest add --tls-verify=false --os linux --arch arm --variant v7 r:a docker://h/r:a-x"
    assert member == argv(added)
    list_pushed = PODMAN.manifest_push_cmd("h/r:a", insecure=False, digest_file=Path("/w/l"))
    assert list_pushed == argv("podman manifest push --all --rm --digestfile /w/l h/r:a docker://h/r:a")


def test_digests_come_from_the_output_or_the_digest_file(tmp_path: Path) -> None:
    digest = "sha256:" + "ab" * 32
    assert DOCKER.pushed_digest(f"a-x: digest: {digest} size: 528") == digest
    assert DOCKER.manifest_digest(f"{digest}\n") == digest
    file = tmp_path / "digest"
    assert PODMAN.pushed_digest(f"digest: {digest}", file) is None  # no file yet: podman prints none
    file.write_text(digest)
    assert PODMAN.pushed_digest("", file) == PODMAN.manifest_digest("", file) == digest


def test_experimental_is_docker_only() -> None:
    assert DOCKER.needs_experimental(Versions("docker", client="19.03.1"))
    assert not DOCKER.needs_experimental(Versions("docker", client="20.10.24"))
    assert DOCKER.needs_experimental(Versions("docker"))  # a dry run shows the edit
    assert not PODMAN.needs_experimental(Versions("podman"))
    assert not PODMAN.needs_experimental(Versions("podman", client="1.0"))


def test_auth_files_follow_each_engines_rules(tmp_path: Path) -> None:
    def auth(env: dict[str, str], name: str) -> Path:
        settings, _ = load({"engine": name}, env, tmp_path, Path("/home/u"))
        return engine.ENGINES[settings.engine].auth_files(settings.docker_config, settings.podman_auth_file)[0]

    assert auth({}, "docker") == Path("/home/u/.docker/config.json")
    assert auth({"DOCKER_CONFIG": "/dc"}, "docker") == Path("/dc/config.json")
    assert auth({}, "podman") == Path(f"/run/containers/{os.getuid()}/auth.json")
    assert auth({"XDG_RUNTIME_DIR": "/run/user/7"}, "podman") == Path("/run/user/7/containers/auth.json")
    both = {"XDG_RUNTIME_DIR": "/run/user/7", "REGISTRY_AUTH_FILE": "/a.json", "DOCKER_CONFIG": "/dc"}
    assert auth(both, "podman") == Path("/a.json")
    settings, _ = load({"engine": "podman"}, both, tmp_path, Path("/home/u"))
    # then docker's, which podman reads too (containers-auth.json(5))
    assert engine.PODMAN.auth_files(settings.docker_config, settings.podman_auth_file)[1] == Path("/dc/config.json")


def test_engine_setting(tmp_path: Path) -> None:
    assert load({}, {}, tmp_path, Path("/h"))[0].engine == "docker"
    assert load({}, {"XCOMPILE_ENGINE": "Podman"}, tmp_path, Path("/h"))[0].engine == "podman"
    assert load({"engine": "auto"}, {"XCOMPILE_ENGINE": "podman"}, tmp_path, Path("/h"))[0].engine == "auto"
    with pytest.raises(ConfigError, match="expected one of docker, podman, auto"):
        load({"engine": "rkt"}, {}, tmp_path, Path("/h"))


def shims(folder: Path, **programs: str) -> str:
    """A PATH holding only the given programs, each a shell script body."""
    folder.mkdir()
    for name, body in programs.items():
        (folder / name).write_text(f"#!/bin/sh\n{body}\n")
        (folder / name).chmod(0o755)
    return str(folder)


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


def test_versions_of_each_engine(tmp_path: Path) -> None:
    docker_out = '{"Client":{"Version":"28.1.1"},"Server":{"Version":"20.10.24"}}'
    podman_out = '{"Client":{"APIVersion":"4.3.1","Version":"4.3.1"}}'
    path = shims(tmp_path / "bin", docker=f"echo '{docker_out}'", podman=f"echo '{podman_out}'")
    runner = Runner(lambda line, label: None)
    with local.env(PATH=path):
        assert DOCKER.versions(runner) == Versions("docker", "28.1.1", "20.10.24")
        assert PODMAN.versions(runner) == Versions("podman", "4.3.1", None)
    broken = shims(tmp_path / "broken", podman="echo 'Error: database is locked' >&2; exit 125")
    with local.env(PATH=broken), pytest.raises(EngineUnavailable, match=r"podman cannot run: .*database is locked"):
        PODMAN.versions(runner)


def test_podmans_inspect_without_variant_still_checks_os_and_architecture() -> None:
    from xcompile.errors import ProofFailed
    from xcompile.host import platforms
    from xcompile.pipeline import judge

    arm = platforms.get("arm32v7")
    podman_says = judge.ImageConfig.from_inspect('[{"Os": "linux", "Architecture": "arm", "Config": {}}]')
    assert not podman_says.variant_known
    judge.check_labels(arm, podman_says)
    amd64 = judge.ImageConfig.from_inspect('[{"Os": "linux", "Architecture": "amd64", "Config": {}}]')
    with pytest.raises(ProofFailed, match="image config says linux/amd64, not linux/arm/v7"):
        judge.check_labels(arm, amd64)
    docker_says = judge.ImageConfig.from_inspect('[{"Os": "linux", "Architecture": "arm", "Variant": "v6"}]')
    with pytest.raises(ProofFailed):
        judge.check_labels(arm, docker_says)
