"""The whole flow on each engine, docker and podman, against the same real
registry: build, prove, push, the manifest list, a failure; then every
platform pulled back fresh and run. With podman, no docker command is run.

Each test that runs a foreign image puts the host's binfmt registrations in
the state it needs (`host_binfmt`): with F, and without F where the image's
own qemu is run. None relies on the state the host happens to be in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import BASE_TAGS, MAKE_BASE, PROVISION_HINT, SESSION_LABEL, Registry, docker, run_xcompile
from hostbinfmt import host_state

from xcompile.host import platforms

ARM = platforms.get("arm32v7")
ARM64 = platforms.get("arm64v8")
ENGINES = ("docker", "podman")
RUNS_IMAGES = pytest.mark.parametrize("host_binfmt", ["debian", "seed"], indirect=True)
"""The states a foreign image runs in (with none, nothing can run it)."""


def podman_env() -> dict[str, str]:
    """The test's own podman commands need no credentials: without a DOCKER_CONFIG
    whose config.json is missing (a CI job's fresh folder), on which podman 4 stops."""
    env = dict(os.environ)
    if env.get("DOCKER_CONFIG") and not (Path(env["DOCKER_CONFIG"]) / "config.json").exists():
        del env["DOCKER_CONFIG"]
    return env


def podman(*args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["podman", *args], capture_output=True, text=True, check=check, timeout=timeout, env=podman_env()
        )
    except FileNotFoundError:
        pytest.fail(f"podman not installed; {PROVISION_HINT}")


def engine_cli(name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return podman(*args, check=check) if name == "podman" else docker(*args, check=check)


def podman_load(*refs: str) -> None:
    """Docker's images of ``refs`` into podman's store (`docker save | podman load`)."""
    with subprocess.Popen(["docker", "save", *refs], stdout=subprocess.PIPE) as save:
        loaded = subprocess.run(["podman", "load"], stdin=save.stdout, capture_output=True, text=True, env=podman_env())
    assert save.returncode == 0 and loaded.returncode == 0, loaded.stderr


@pytest.fixture(scope="session")
def podman_store(docker_daemon: None, armhf_base: str, arm64_base: str, registry: Registry) -> Iterator[None]:
    """The test bases in podman's own store too: podman cannot see docker's
    images, so they go across with `docker save | podman load`. A short name
    then resolves to localhost/<name>, in FROM as anywhere."""
    if podman("info", "--format", "{{.Store.GraphDriverName}}", check=False).returncode != 0:
        pytest.fail(f"podman does not work here; {PROVISION_HINT}")
    podman_load(*[f"{base}:{tag}" for base in (armhf_base, arm64_base) for tag in BASE_TAGS])
    yield
    # What this session made, and only that: every image in podman's store with its label (the
    # bases, and what was built on them, dangling or not), and every name under its registry
    # (a manifest list has no label). Not a prune, nor every name that appeared meanwhile:
    # the host's own images, and another suite's on the same host, stay.
    listed = podman("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    named = [name for name in listed if name.startswith(f"{registry.host}/")]
    labelled = podman("images", "--all", "--quiet", "--no-trunc", "--filter", f"label={SESSION_LABEL}").stdout.split()
    for made in (named, list(dict.fromkeys(labelled))):
        if made:
            podman("rmi", "--force", *made, check=False)


@pytest.fixture(params=ENGINES)
def engine_name(request: pytest.FixtureRequest, podman_store: None) -> Iterator[str]:
    name = str(request.param)
    yield name


@pytest.fixture
def engine_env(user_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """A user's environment for either engine: podman 4 needs the config.json
    that DOCKER_CONFIG names to exist, and reads its credentials from
    REGISTRY_AUTH_FILE; both the test's own, never the host's."""
    docker_config = Path(user_env["DOCKER_CONFIG"])
    docker_config.mkdir()
    (docker_config / "config.json").write_text("{}\n")
    (tmp_path / "auth.json").write_text("{}\n")
    return {**user_env, "REGISTRY_AUTH_FILE": str(tmp_path / "auth.json")}


@pytest.fixture
def two_arch_env(engine_env: dict[str, str], armhf_base: str, arm64_base: str) -> dict[str, str]:
    return {**engine_env, "XCOMPILE_BASE_ARM32V7": armhf_base, "XCOMPILE_BASE_ARM64V8": arm64_base}


def echoed(stderr: str) -> list[str]:
    """Every command xcompile echoed, without the image label."""
    lines = [line.split("] ", 1)[1] if line.startswith("[") else line for line in stderr.splitlines()]
    return [line[2:] for line in lines if line.startswith("+ ")]


def pull_back_and_run(name: str, image: str, arch: platforms.Arch, *, insecure: bool) -> str:
    """A fresh pull of ``image`` for ``arch``, run under emulation: its `uname -m`."""
    engine_cli(name, "rmi", image, check=False)
    tls = ["--tls-verify=false"] if name == "podman" and insecure else []
    engine_cli(name, "pull", "--platform", arch.platform, *tls, image)
    network = ["--network", "none"] if name == "podman" else []
    try:
        ran = engine_cli(name, "run", "--rm", *network, "--platform", arch.platform, image, "uname", "-m")
    finally:
        engine_cli(name, "rmi", image, check=False)
    return ran.stdout.strip()


@RUNS_IMAGES
def test_two_arches_on_each_engine(
    host_binfmt: str, registry: Registry, engine_name: str, two_arch_env: dict[str, str], tmp_path: Path
) -> None:
    name = f"engine-{engine_name}-{uuid.uuid4().hex[:6]}/rpi"
    repo = f"{registry.host}/{name}"
    arches = ["--arch", "arm32v7", "--arch", "arm64v8"]
    args = ["--repo", repo, "--tag", "a", "--report", "r.json"]
    result = run_xcompile("build", "--engine", engine_name, *arches, *args, cwd=tmp_path, env=two_arch_env)
    try:
        assert result.returncode == 0, result.stdout + result.stderr[-3000:]
        assert sorted(registry.tags(name)) == ["a", "a-arm32v7", "a-arm64v8"]
        for arch in (ARM, ARM64):
            _, manifest = registry.manifest(name, f"a-{arch.name}")
            config = json.loads(registry.blob(name, manifest["config"]["digest"]))  # type: ignore[index]
            made = (config["os"], config["architecture"], config.get("variant"))
            assert made == (arch.os, arch.architecture, arch.variant)
        digest, index = registry.manifest(name, "a")
        listed = {(m["platform"]["architecture"], m["platform"].get("variant")) for m in index["manifests"]}  # type: ignore[index, union-attr]
        assert listed == {("arm", "v7"), ("arm64", "v8")}

        commands = echoed(result.stderr)
        programs = {argv.split()[0] for argv in commands}
        other = "docker" if engine_name == "podman" else "podman"
        assert engine_name in programs and other not in programs, commands
        # The proof ran on this engine, before the push.
        for arch in (ARM, ARM64):
            assert any(c.startswith(f"{engine_name} run --rm") and arch.platform in c for c in commands), commands

        report = json.loads((tmp_path / "r.json").read_text())
        assert [(i["name"], i["status"]) for i in report["images"]] == [
            (f"{repo}:a-arm32v7", "pushed"),
            (f"{repo}:a-arm64v8", "pushed"),
            (f"{repo}:a", "pushed"),
        ]
        assert report["images"][2]["digest"] == digest
        for entry in report["images"][:2]:
            assert entry["digest"] == registry.manifest(name, entry["name"].rsplit(":", 1)[1])[0]
        assert report["engine"]["name"] == engine_name and report["engine"]["client"]
    finally:
        for arch in (ARM, ARM64):
            engine_cli(engine_name, "rmi", f"{repo}:a-{arch.name}", check=False)

    # Each platform, pulled back fresh through the list, runs.
    for arch in (ARM, ARM64):
        assert pull_back_and_run(engine_name, f"{repo}:a", arch, insecure=True) == arch.uname_m


@RUNS_IMAGES  # tag a is built and proven
def test_a_missing_base_fails_on_each_engine(
    host_binfmt: str, registry: Registry, engine_name: str, armhf_base: str, engine_env: dict[str, str], tmp_path: Path
) -> None:
    name = f"fail-{engine_name}-{uuid.uuid4().hex[:6]}/img"
    repo = f"{registry.host}/{name}"
    args = ["--base", armhf_base, "--repo", repo, "--tag", "a", "--tag", "missing", "--jobs", "1", "--keep-going"]
    result = run_xcompile("build", "--engine", engine_name, *args, cwd=tmp_path, env=engine_env)
    engine_cli(engine_name, "rmi", f"{repo}:a", check=False)
    assert result.returncode == 1
    rows = {row.split()[0]: row.split()[2] for row in result.stdout.splitlines()[1:3]}
    assert rows == {f"{repo}:a": "pushed", f"{repo}:missing": "failed"}
    assert f"{repo}:missing: base {armhf_base}:missing is not on this host, and the pull failed: " in result.stdout
    assert f"+ {engine_name} pull -q --platform linux/arm/v7 {armhf_base}:missing" in result.stderr
    assert registry.tags(name) == ["a"]
    assert "Traceback" not in result.stderr
    assert list(Path(engine_env["TMPDIR"]).iterdir()) == []


@pytest.mark.parametrize("made_for", ["linux/amd64", "linux/arm/v6"])
def test_a_base_made_for_another_platform_is_refused_before_any_build(
    registry: Registry, engine_name: str, engine_env: dict[str, str], tmp_path: Path, made_for: str
) -> None:
    """The base on this host is an armhf rootfs whose image config says another platform,
    under a loopback registry's name that holds no such image (so the pull fails). Docker
    built on it and labelled the image so; podman pulled it again, without the
    --tls-verify=false a loopback registry needs, and said only that TLS failed. Now the
    image is refused in one line that names the base, what it is and what was wanted,
    before any build, and nothing is pushed. Podman 4 does not tell a local image's
    variant: an arm/v6 base gets to its build, which does not pull, and is refused there."""
    name = f"wrong-{engine_name}-{uuid.uuid4().hex[:6]}"
    base, repo = f"{registry.host}/{name}/python", f"{registry.host}/{name}/out"
    labelled = {**os.environ, "XCOMPILE_TEST_LABEL": SESSION_LABEL}
    made = subprocess.run(
        ["bash", str(MAKE_BASE), "armhf", made_for, f"{base}:a"], capture_output=True, text=True, env=labelled
    )
    assert made.returncode == 0, made.stderr
    try:
        if engine_name == "podman":
            podman_load(f"{base}:a")
        result = run_xcompile(
            "build", "--engine", engine_name, "--base", base, "--repo", repo, "--tag", "a", cwd=tmp_path, env=engine_env
        )
    finally:
        engine_cli(engine_name, "rmi", f"{base}:a", f"{repo}:a", check=False)
        docker("rmi", f"{base}:a", check=False)
    assert result.returncode == 1, result.stderr[-3000:]
    row = result.stdout.splitlines()[1].split()
    assert (row[0], row[2]) == (f"{repo}:a", "failed"), result.stdout
    assert registry.tags(f"{name}/out") == []
    assert "Traceback" not in result.stderr
    if engine_name == "podman" and made_for == "linux/arm/v6":
        assert "+ podman build --platform linux/arm/v7 --no-cache --network none --pull=never " in result.stderr
        assert f"{repo}:a: base {base}:a on this host is not made for linux/arm/v7: podman finds none for it" in (
            result.stdout
        )
        assert "pinging container registry" not in result.stderr and "HTTPS" not in result.stderr
        return
    refused = f"{repo}:a: base {base}:a on this host is {made_for}, not linux/arm/v7 (the pull failed: "
    assert refused in result.stdout, result.stdout
    assert result.stdout.rstrip().endswith(" — give a base made for that platform, or pull the base for it")
    assert f"{engine_name} build" not in result.stderr


def test_podman_refuses_a_REGISTRY_AUTH_FILE_that_is_missing(tmp_path: Path, user_env: dict[str, str]) -> None:
    """Podman 4 takes that file as its --authfile and stops on it; unlike an empty
    DOCKER_CONFIG folder, it may be where a later login puts the credentials."""
    Path(user_env["DOCKER_CONFIG"]).mkdir()
    auth = tmp_path / "auth.json"
    env = {**user_env, "REGISTRY_AUTH_FILE": str(auth), "HOME": str(tmp_path)}
    for command in ("build", "join"):
        args = ["--arch", "arm32v7", "--arch", "arm64v8"] if command == "join" else ["--tag", "3.7"]
        result = run_xcompile(command, "--engine", "podman", *args, cwd=tmp_path, env=env)
        assert result.returncode == 3, result.stderr
        assert result.stderr.strip().splitlines()[-1] == (
            "xcompile: error: podman cannot run containers while REGISTRY_AUTH_FILE names a file that does not exist"
            f" ({auth}) — create it (`echo {{}} > {auth}`), or unset REGISTRY_AUTH_FILE"
        )
        assert not [c for c in echoed(result.stderr) if "podman" in c.split()[:4]]  # refused before any
    assert not auth.exists() and list(Path(user_env["DOCKER_CONFIG"]).iterdir()) == []


def test_podman_keeps_the_home_credentials_that_DOCKER_CONFIG_keeps_apart(
    tmp_path: Path, user_env: dict[str, str]
) -> None:
    """Without DOCKER_CONFIG, podman would read ~/.docker/config.json: where that
    holds credentials, an empty DOCKER_CONFIG folder is still refused."""
    folder = Path(user_env["DOCKER_CONFIG"])
    folder.mkdir()
    home = tmp_path / "home"
    (home / ".docker").mkdir(parents=True)
    (home / ".docker" / "config.json").write_text('{"auths": {"127.0.0.1:5000": {"auth": "dTpw"}}}\n')
    result = run_xcompile(
        "--engine", "podman", "--dry-run", "--tag", "3.7", cwd=tmp_path, env={**user_env, "HOME": str(home)}
    )
    assert result.returncode == 3, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"xcompile: error: podman cannot run while DOCKER_CONFIG names a folder without config.json ({folder}),"
        f" and without DOCKER_CONFIG it would read the credentials in {home}/.docker/config.json, which"
        f" DOCKER_CONFIG keeps apart — create it (`echo {{}} > {folder}/config.json`), or set REGISTRY_AUTH_FILE"
    )
    assert list(folder.iterdir()) == []


def test_podman_with_REGISTRY_AUTH_FILE_reads_no_DOCKER_CONFIG(tmp_path: Path, user_env: dict[str, str]) -> None:
    """REGISTRY_AUTH_FILE names the one file podman reads: an empty DOCKER_CONFIG
    folder beside it changes nothing, and podman runs as it is."""
    Path(user_env["DOCKER_CONFIG"]).mkdir()
    (tmp_path / "auth.json").write_text("{}\n")
    env = {**user_env, "REGISTRY_AUTH_FILE": str(tmp_path / "auth.json"), "HOME": str(tmp_path)}
    result = run_xcompile("--engine", "podman", "--dry-run", "--tag", "3.7", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    commands = echoed(result.stderr)
    assert commands[0] == "podman version --format '{{json .}}'"
    assert any(c.startswith("podman push ") for c in commands), commands
    assert "DOCKER_CONFIG" not in result.stderr


@pytest.mark.parametrize("host_binfmt", ["debian"], indirect=True)
def test_podman_runs_without_a_DOCKER_CONFIG_folder_that_has_no_config_json(
    host_binfmt: str,
    registry: Registry,
    podman_store: None,
    armhf_base: str,
    arm64_base: str,
    user_env: dict[str, str],
    tmp_path: Path,
) -> None:
    """A CI job's fresh DOCKER_CONFIG folder, and no REGISTRY_AUTH_FILE: every podman
    command runs without the variable, echoed as it runs (`env -u DOCKER_CONFIG
    podman ...`) and said once. The cells are pulled, built, proven (podman run)
    and pushed, then joined (podman manifest add and push); the folder stays empty."""
    folder = Path(user_env["DOCKER_CONFIG"])
    folder.mkdir()
    (tmp_path / "home").mkdir()
    env = {
        **user_env,
        "HOME": str(tmp_path / "home"),
        "XCOMPILE_BASE_ARM32V7": armhf_base,
        "XCOMPILE_BASE_ARM64V8": arm64_base,
    }
    env.pop("REGISTRY_AUTH_FILE", None)
    name = f"podman-no-config-{uuid.uuid4().hex[:6]}/rpi"
    repo = f"{registry.host}/{name}"
    common = ("--engine", "podman", "--arch", "arm32v7", "--arch", "arm64v8", "--repo", repo, "--tag", "a")
    cells = [f"--only=a/{arch.name}" for arch in (ARM, ARM64)]
    try:
        built = run_xcompile("build", *common, *cells, cwd=tmp_path, env=env)
        joined = run_xcompile("join", *common, cwd=tmp_path, env=env)
    finally:
        for arch in (ARM, ARM64):
            podman("rmi", f"{repo}:a-{arch.name}", check=False)
    note = (
        f"xcompile: podman: {folder} has no config.json, so podman runs without DOCKER_CONFIG"
        " (podman 4 stops on the missing file; the folder holds no credentials to lose)"
    )
    for result, verbs in ((built, ("pull", "build", "run", "push")), (joined, ("manifest",))):
        assert result.returncode == 0, result.stderr[-3000:]
        assert result.stderr.splitlines().count(note) == 1, result.stderr
        commands = [c for c in echoed(result.stderr) if "podman" in c.split()[:4]]
        assert commands and all(c.startswith("env -u DOCKER_CONFIG podman ") for c in commands), commands
        for verb in verbs:
            assert any(c.split()[4] == verb for c in commands), (verb, commands)
    assert sorted(registry.tags(name)) == ["a", "a-arm32v7", "a-arm64v8"]
    _, index = registry.manifest(name, "a")
    listed = {(m["platform"]["architecture"], m["platform"].get("variant")) for m in index["manifests"]}  # type: ignore[index, union-attr]
    assert listed == {("arm", "v7"), ("arm64", "v8")}
    assert list(folder.iterdir()) == []


def test_podman_dry_run_says_experimental_is_dockers(tmp_path: Path, engine_env: dict[str, str]) -> None:
    result = run_xcompile("--engine", "podman", "--dry-run", "--tag", "3.7", cwd=tmp_path, env=engine_env)
    assert result.returncode == 0, result.stderr
    assert "xcompile: experimental: docker only; nothing to do with podman\n" in result.stderr
    commands = echoed(result.stderr)
    assert commands[0] == "podman version --format '{{json .}}'"
    assert not any(c.startswith("docker") for c in commands), commands
    (push,) = [c for c in commands if c.startswith("podman push")]
    assert push.startswith("podman push --digestfile ") and push.endswith(" brewblox/rpi-python:3.7")
    assert (Path(engine_env["DOCKER_CONFIG"]) / "config.json").read_text() == "{}\n"  # no experimental edit


def test_podman_missing(tmp_path: Path, user_env: dict[str, str]) -> None:
    env = {**user_env, "PATH": str(tmp_path)}
    result = run_xcompile("--engine", "podman", "--tag", "3.7", cwd=tmp_path, env=env)
    assert result.returncode == 3
    assert result.stderr.strip().splitlines()[-1] == (
        "xcompile: error: podman: not found on PATH — install podman (e.g. `sudo apt-get install podman`,"
        " or `sudo dnf install podman`)"
    )


def test_auto_falls_back_to_podman_when_docker_does_not_answer(tmp_path: Path, engine_env: dict[str, str]) -> None:
    env = {**engine_env, "DOCKER_HOST": f"unix://{tmp_path}/nothing.sock"}
    result = run_xcompile("doctor", "--engine", "auto", "--no-push", cwd=tmp_path, env=env)
    lines = [" ".join(line.split()) for line in result.stdout.splitlines()]
    assert f"pass engine auto chose podman (docker daemon not reachable at unix://{tmp_path}/nothing.sock)" in lines
    assert any(line.startswith("pass podman 4.") for line in lines), lines
    assert "pass podman run containers start" in lines
    assert not any(line.split()[1:2] == ["docker"] for line in lines)


def test_doctor_names_podmans_ulimit_problem(tmp_path: Path, engine_env: dict[str, str]) -> None:
    """The sandbox's problem, made on purpose on any host: a nofile above the
    kernel's nr_open, which not even root may set (CONTAINERS_CONF replaces
    podman's config for this process only)."""
    conf = tmp_path / "containers.conf"
    too_many = int(Path("/proc/sys/fs/nr_open").read_text()) + 1
    conf.write_text(f'[containers]\ndefault_ulimits = ["nofile={too_many}:{too_many}"]\n')
    env = {**engine_env, "CONTAINERS_CONF": str(conf)}
    result = run_xcompile("doctor", "--engine", "podman", "--no-push", cwd=tmp_path, env=env)
    assert result.returncode == 3, result.stdout
    row = next(line for line in result.stdout.splitlines() if line.startswith("fail  podman run"))
    assert "cannot set podman's default ulimits" in row
    assert "default_ulimits" in result.stdout


@RUNS_IMAGES
def test_join_on_podman(
    host_binfmt: str, registry: Registry, podman_store: None, two_arch_env: dict[str, str], tmp_path: Path
) -> None:
    """Cells pushed by `build --only`, then `join --engine podman`: the parts are
    checked first, the list made with podman's manifest commands, and a second
    join leaves it alone. No docker command runs."""
    name = f"join-podman-{uuid.uuid4().hex[:6]}/rpi"
    repo = f"{registry.host}/{name}"
    common = ("--engine", "podman", "--arch", "arm32v7", "--arch", "arm64v8", "--repo", repo)
    cells = [f"--only=a/{arch.name}" for arch in (ARM, ARM64)]
    try:
        built = run_xcompile("build", *common, "--tag", "a", *cells, "--no-verify", cwd=tmp_path, env=two_arch_env)
        assert built.returncode == 0, built.stderr[-3000:]
        assert sorted(registry.tags(name)) == ["a-arm32v7", "a-arm64v8"]

        # A missing part: nothing is joined, and the error names it.
        missing = run_xcompile("join", *common, "--tag", "a", "--tag", "b", cwd=tmp_path, env=two_arch_env)
        assert missing.returncode == 1, missing.stderr
        assert missing.stderr.splitlines()[-1].startswith(
            f"xcompile: error: cannot join: {repo}:b-arm32v7 is not in the registry;"
            f" {repo}:b-arm64v8 is not in the registry"
        ), missing.stderr
        assert "a" not in registry.tags(name)

        first = run_xcompile("join", *common, "--tag", "a", cwd=tmp_path, env=two_arch_env)
        assert first.returncode == 0, first.stderr
        assert "join: with podman manifest" in first.stderr
        digest, index = registry.manifest(name, "a")
        listed = {(m["platform"]["architecture"], m["platform"].get("variant")) for m in index["manifests"]}  # type: ignore[index, union-attr]
        assert listed == {("arm", "v7"), ("arm64", "v8")}
        parts = {registry.manifest(name, f"a-{arch.name}")[0] for arch in (ARM, ARM64)}
        assert {m["digest"] for m in index["manifests"]} == parts  # type: ignore[index, union-attr]
        assert first.stdout.split() == [f"{repo}:a", "linux/arm/v7,", "linux/arm64/v8", "joined", digest]

        second = run_xcompile("join", *common, "--tag", "a", cwd=tmp_path, env=two_arch_env)
        assert second.returncode == 0, second.stderr
        assert second.stdout.split()[-2:] == ["unchanged", digest]
        assert registry.manifest(name, "a")[0] == digest
        assert not [c for c in echoed(second.stderr) if "manifest" in c], second.stderr

        for result in (built, missing, first, second):
            commands = echoed(result.stderr)
            assert not [c for c in commands if c.split()[0] == "docker"], commands
        assert any(c.startswith("podman manifest push") for c in echoed(first.stderr))
    finally:
        for arch in (ARM, ARM64):
            podman("rmi", f"{repo}:a-{arch.name}", check=False)

    # Each platform, pulled back fresh through the list, runs.
    for arch in (ARM, ARM64):
        assert pull_back_and_run("podman", f"{repo}:a", arch, insecure=True) == arch.uname_m


def test_the_image_tests_pass_from_a_host_without_qemu_arm(tmp_path: Path) -> None:
    """From a host with no qemu-arm but Debian's qemu-aarch64 (what
    `echo -1 > /proc/sys/fs/binfmt_misc/qemu-arm` leaves), this module's
    image tests still pass: each sets up the state it runs in. A pytest of
    its own runs them while this test holds the binfmt lock and the state,
    so that one takes a lock of its own."""
    selected = "test_two_arches_on_each_engine and docker and debian or test_a_missing_base and docker and seed"
    env = {**os.environ, "XCOMPILE_BINFMT_LOCK": str(tmp_path / "binfmt.lock")}
    with host_state("none/debian"):
        argv = ["-q", "-p", "no:cacheprovider", f"--basetemp={tmp_path / 'inner'}", "-k", selected, __file__]
        inner = subprocess.run(
            [sys.executable, "-m", "pytest", *argv], capture_output=True, text=True, env=env, timeout=900
        )
    summary = inner.stdout.strip().splitlines()[-1:]
    assert inner.returncode == 0, inner.stdout[-5000:] + inner.stderr[-2000:]
    assert summary and summary[0].startswith("2 passed"), inner.stdout[-3000:]
