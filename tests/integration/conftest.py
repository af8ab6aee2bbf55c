"""Integration fixtures: the real parts that `make test` provides (dockerd, Debian's docker-registry,
binfmt_misc with qemu). They never skip: where a part is missing the test fails and says how to get it.

Every test in this folder is marked ``integration``; tests/unit holds the tests that need none of it.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import (
    BASE_REFS,
    CACHE,
    PROVISION_HINT,
    Registry,
    RunningRegistry,
    build_cache_ids,
    docker,
    make_base,
    session_containers,
    session_images,
)
from hostbinfmt import HOST_STATES, host_state
from leftovers import PODMAN, seeded, still_there

HERE = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tier is the folder: before `-m` selects, every test here is marked ``integration``."""
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(params=HOST_STATES)
def host_binfmt(request: pytest.FixtureRequest) -> Iterator[str]:
    """The host's qemu-arm and qemu-aarch64 registrations in one of the three states
    the suite must pass in (tests/hostbinfmt.py), every entry restored exactly afterwards.

    A test whose outcome depends on binfmt takes this fixture instead of reading
    the host's state; so does every test that runs a foreign image. Where only
    some states make sense it narrows them:
    ``@pytest.mark.parametrize("host_binfmt", ["seed"], indirect=True)``, or
    widens them to mixed ones (MIXED_STATES, e.g. "none/debian"). Changes hold
    the lock /tmp/xcompile-binfmt.lock (XCOMPILE_BINFMT_LOCK): the state is the kernel's.
    """
    with host_state(request.param) as state:
        yield state


@pytest.fixture(scope="session")
def docker_daemon() -> None:
    try:
        result = docker("info", "--format", "{{.ServerVersion}}", check=False, timeout=30)
    except FileNotFoundError:
        pytest.fail(f"docker client not installed; {PROVISION_HINT}")
    if result.returncode != 0:
        pytest.fail(f"docker daemon not reachable ({result.stderr.strip()}); {PROVISION_HINT}")


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    running = RunningRegistry(tmp_path_factory.mktemp("registry"))
    yield running.start()
    running.stop()


@pytest.fixture(autouse=True)
def remove_built_images(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each integration test, remove the images it built under its test
    repositories, by name. Dangling images and containers are not removed
    here: they are leaks, and clean_host fails the session for them."""
    yield
    if request.node.get_closest_marker("integration") is None:
        return
    tagged = [ref for _, ref in session_images() if not ref.endswith(":<none>") and ref not in BASE_REFS]
    if tagged:
        docker("rmi", *tagged, check=False)


@pytest.fixture(scope="session", autouse=True)
def host_leftovers() -> Iterator[None]:
    """With XCOMPILE_TEST_LEFTOVERS set (`make test-leftovers`), the session runs on a host
    that holds other work's leftovers, in docker's store and podman's: dangling images made
    in the same second, unrelated tags, containers named as proof containers are
    (tests/leftovers.py). It fails if it removed any of them; at its end they go, exactly.
    Set up before, and so torn down after, every other session fixture."""
    if not os.environ.get("XCOMPILE_TEST_LEFTOVERS"):
        yield
        return
    with contextlib.ExitStack() as stack:
        made = [(program, stack.enter_context(seeded(program))) for program in (["docker"], PODMAN)]
        yield
        for program, seed in made:
            expected = {*seed.image_ids, *seed.containers}
            gone = expected - still_there(program, seed)
            # This session's cleanups, or another run's on this host (an older suite pruned podman's store).
            assert not gone, f"leftovers this session did not make were removed from {program[-1]}'s store: {gone}"


@pytest.fixture(scope="session", autouse=True)
def clean_host() -> Iterator[None]:
    """The suite leaves the shared docker as it found it: no containers, no
    dangling images, no images under its test repositories. Only
    what this session made is judged (its label), since other suites may run
    on the same daemon at the same time."""
    yield
    try:
        containers, images = session_containers(), session_images()
    except (OSError, subprocess.SubprocessError):
        return  # no docker here: nothing could have been left on it
    # Leave the host clean either way, then say what was left.
    if containers:
        docker("rm", "-f", *[line.split()[0] for line in containers], check=False)
    if images:
        docker("rmi", "-f", *dict.fromkeys(image_id for image_id, _ in images), check=False)
    assert not containers and not images, (
        f"the test session left on docker: containers {containers}, images {[ref for _, ref in images]}"
    )


@pytest.fixture(scope="session")
def armhf_base(docker_daemon: None) -> Iterator[str]:
    yield from make_base("armhf", "linux/arm/v7", f"xcompile-test-{uuid.uuid4().hex[:8]}/python")


@pytest.fixture(scope="session")
def arm64_base(docker_daemon: None) -> Iterator[str]:
    yield from make_base("arm64", "linux/arm64/v8", f"xcompile-test-{uuid.uuid4().hex[:8]}/arm64-python")


@pytest.fixture(scope="session")
def amd64_base(docker_daemon: None) -> Iterator[str]:
    # The host's own busybox-static (provisioning caches it for amd64 here).
    yield from make_base("amd64", "linux/amd64", f"xcompile-test-{uuid.uuid4().hex[:8]}/amd64-python")


@pytest.fixture(scope="session")
def buildx_plugin(tmp_path_factory: pytest.TempPathFactory, docker_daemon: None) -> Iterator[Path]:
    """trixie's docker-buildx, unpacked for tests to place in their own
    $DOCKER_CONFIG/cli-plugins (never installed for the whole host). The
    BuildKit cache that their builds leave on the daemon (the classic builder
    keeps none) is pruned afterwards: the daemon keeps only what it had."""
    debs = sorted(CACHE.glob("docker-buildx_*.deb"))
    if not debs:
        pytest.fail(f"no docker-buildx .deb in {CACHE}; {PROVISION_HINT}")
    folder = tmp_path_factory.mktemp("buildx")
    subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(folder)], check=True)
    plugin = folder / "usr/libexec/docker/cli-plugins/docker-buildx"
    if not plugin.is_file():
        pytest.fail(f"{debs[-1]} has no usr/libexec/docker/cli-plugins/docker-buildx")
    before = build_cache_ids()
    yield plugin
    for _ in range(3):  # a record goes once the records made from it have gone
        for cache_id in build_cache_ids() - before:
            docker("builder", "prune", "--all", "--force", "--filter", f"id={cache_id}", check=False)
    left = build_cache_ids() - before
    assert not left, f"the BuildKit cache of this session's builds is left on the daemon: {sorted(left)}"
