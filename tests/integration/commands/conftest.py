"""Fixtures of the commands' integration tests: the bases of the three-arch job, and a namespace
of the registry's own for each test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from conftest import Registry, remove_local_images


@pytest.fixture
def bases(amd64_base: str, armhf_base: str, arm64_base: str) -> dict[str, str]:
    return {"amd64": amd64_base, "arm32v7": armhf_base, "arm64v8": arm64_base}


@pytest.fixture
def prefix(registry: Registry) -> Iterator[str]:
    """A unique namespace in the registry; local images under it go afterwards."""
    name = f"matrix-{uuid.uuid4().hex[:8]}"
    yield name
    remove_local_images(f"{registry.host}/{name}/")
