"""The engine table: each engine's command shapes, its auth file, experimental, its versions."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from plumbum import local

from xcompile import engine
from xcompile.engine import DOCKER, PODMAN, Platform, Versions
from xcompile.errors import EngineUnavailable
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


def shims(folder: Path, **programs: str) -> str:
    """A PATH holding only the given programs, each a shell script body."""
    folder.mkdir()
    for name, body in programs.items():
        (folder / name).write_text(f"#!/bin/sh\n{body}\n")
        (folder / name).chmod(0o755)
    return str(folder)


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
