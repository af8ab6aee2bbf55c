"""What the fetch refuses before any request: a mirror that is not an http(s) URL, names that would
escape the cache. The fetch against a served archive is in tests/integration/archive/test_fetcher.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from xcompile.archive import fetcher
from xcompile.archive.fetcher import fetch_all
from xcompile.errors import (
    UsageError,
)

# --- arguments ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mirror", ["ftp://mirror.example/debian", "/srv/mirror", "mirror.example/debian", "file:///srv/mirror", ""]
)
def test_mirror_must_be_an_http_url(tmp_path: Path, mirror: str) -> None:
    with pytest.raises(UsageError, match="is not an http\\(s\\) URL") as err:
        fetch_all(["qemu-arm-static"], fetcher.Archive(mirror, "bookworm"), tmp_path)
    assert err.value.exit_code == 2
    assert not (tmp_path / "debs").exists()


@pytest.mark.parametrize(("binary", "suite"), [("../../etc/passwd", "bookworm"), ("qemu-arm-static", "../bookworm")])
def test_names_that_would_escape_are_refused(tmp_path: Path, binary: str, suite: str) -> None:
    with pytest.raises(UsageError):
        fetch_all([binary], fetcher.Archive("http://127.0.0.1:9/debian", suite), tmp_path)
