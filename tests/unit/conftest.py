"""The unit tier: no docker, podman, network beyond servers a test starts on 127.0.0.1, root, gpg or
binfmt_misc, and the whole tier in well under 30 seconds (`make unit`; `make unit-isolated` proves it
with those parts hidden). A test that needs one of them belongs in tests/integration."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """No test here is marked ``integration``: the tier is the folder."""
    marked = [item.nodeid for item in items if HERE in item.path.parents and item.get_closest_marker("integration")]
    if marked:
        raise pytest.UsageError(f"integration tests under tests/unit (move them to tests/integration): {marked}")
