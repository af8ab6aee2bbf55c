"""The leftovers `make test-leftovers` runs the suite beside (tests/leftovers.py) are
what a host that has done other work holds, in docker's store and podman's, and go
exactly: nothing of them stays (they are removed by ID and name, never by a prune)."""

from __future__ import annotations

import pytest
from leftovers import CONTAINERS, DANGLING, LABEL, PODMAN, run, seeded, still_there


@pytest.mark.parametrize("engine", ["docker", "podman"])
def test_seeded_leftovers_are_what_they_say_and_go_exactly(engine: str, docker_daemon: None) -> None:
    program = ["docker"] if engine == "docker" else PODMAN
    with seeded(program) as made:
        assert still_there(program, made) == {*made.image_ids, *made.containers}
        mine = ("--filter", f"label={LABEL}={made.seed}")
        dangling = run(program, "images", "--quiet", "--no-trunc", "--filter", "dangling=true", *mine).split()
        assert set(dangling) <= made.image_ids and len(set(dangling)) == DANGLING
        # All in one second: docker sorts `images` by that time alone, so their order is not stable.
        assert len(set(run(program, "images", *mine, "--format", "{{.CreatedAt}}").splitlines())) == 1
        for tag in made.tags:
            image_id = run(program, "image", "inspect", "--format", "{{.Id}}", tag).strip().removeprefix("sha256:")
            assert f"sha256:{image_id}" in made.image_ids
        proofs = ("--filter", f"name=xcompile-proof-left{made.seed}", "--format", "{{.Names}}")
        assert len(run(program, "ps", "--all", *proofs).split()) == CONTAINERS
    assert still_there(program, made) == set()
