"""A hostile registry's documents and sizes, as the hostile-registry tests serve them (tests/unit and
tests/integration registry/test_hostile.py): a manifest and config of any labels, an auth file, a
presigned storage URL whose signature must never be shown, a 300 MB body made as it is sent, and a
child's peak memory measured while it reads."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from xcompile.registry import IMAGE_TYPES, LIST_TYPES

USER = "builder"
PASSWORD = f"pw-{uuid.uuid4().hex}"
CONFIG_DIGEST = "sha256:" + "c" * 64
A_LIST = {"schemaVersion": 2, "mediaType": LIST_TYPES[0]}


def image_manifest(config_digest: str = CONFIG_DIGEST) -> dict[str, object]:
    return {
        "schemaVersion": 2,
        "mediaType": IMAGE_TYPES[0],
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 2, "digest": config_digest},
        "layers": [],
    }


def image_config(labels: object) -> dict[str, object]:
    return {"architecture": "arm", "os": "linux", "variant": "v7", "config": {"Labels": labels}}


def digest_of(data: bytes) -> str:
    """What a registry names ``data`` by: a manifest and a config blob are read only where they hash to it."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def auth_file(folder: Path, data: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.json"
    path.write_text(json.dumps(data))
    return path


SIGNATURE = "f00dfacecafe" + uuid.uuid4().hex


def presigned(storage: HTTPServer) -> str:
    return storage.url_for(
        f"/bucket/docker/registry/v2/blobs/sha256/cc/{CONFIG_DIGEST[7:]}/data"
        f"?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE%2F20261205%2Fus-east-1%2Fs3%2Faws4_request"
        f"&X-Amz-Expires=1200&X-Amz-SignedHeaders=host&X-Amz-Signature={SIGNATURE}"
    )


HUGE = 300 << 20


def huge_body() -> Iterator[bytes]:
    """300 MB of a JSON string, made as it is sent: the server holds 1 MiB at a time."""
    yield b'{"schemaVersion": 2, "pad": "'
    chunk = b"x" * (1 << 20)
    for _ in range(HUGE >> 20):
        yield chunk
    yield b'"}'


def serve_huge(server: HTTPServer, uri: str | re.Pattern[str]) -> None:
    size = HUGE + len(b'{"schemaVersion": 2, "pad": "') + 2
    server.expect_request(uri).respond_with_handler(
        lambda request: Response(huge_body(), headers={"Content-Length": str(size)}, content_type=IMAGE_TYPES[0])
    )


def run_measured(argv: list[str], timeout: float, **popen: Any) -> tuple[int, int]:
    """Run ``argv``: its exit code, and its peak RSS in bytes.

    The peak is the child's VmHWM, read from /proc while it runs. Not
    ``ru_maxrss`` (wait4, RUSAGE_CHILDREN): a child that subprocess starts
    with vfork records its parent's peak at exec, so pytest's own size would
    count. Popen returns once the child has exec'd, so every VmHWM read here
    is the child's own memory."""
    proc = subprocess.Popen(argv, **popen)
    status, peak = Path(f"/proc/{proc.pid}/status"), 0
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        with suppress(OSError, ValueError):
            found = re.search(r"^VmHWM:\s+(\d+) kB", status.read_text(), re.MULTILINE)
            peak = max(peak, int(found.group(1)) << 10 if found else 0)
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            pytest.fail(f"{argv[:4]} did not finish within {timeout:g} s")
        time.sleep(0.01)
    return proc.returncode, peak
