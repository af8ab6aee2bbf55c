"""A registry that dies mid-run: the pushes that fail because it went
away mark their images failed with one line, --keep-going still tries the
rest, the summary and the report say what happened, and with the registry
back the same command finishes the job.

The registry is a real one the test kills (SIGKILL) as soon as the first
image's tag shows up in it, between that push and the next."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import IO

import pytest
from conftest import RunningRegistry, docker


@pytest.mark.parametrize("host_binfmt", ["seed"], indirect=True)  # each image is proven under emulation
def test_registry_killed_between_two_pushes(
    host_binfmt: str, armhf_base: str, tmp_path: Path, user_env: dict[str, str]
) -> None:
    running = RunningRegistry(tmp_path / "dying-registry")
    registry = running.start()
    name = f"dies-{uuid.uuid4().hex[:8]}/app"
    repo = f"{registry.host}/{name}"
    report = tmp_path / "report.json"
    image = ["--base", armhf_base, "--repo", repo, "--tag", "a", "--tag", "b", "--tag", "c"]
    argv = [sys.executable, "-m", "xcompile", *image, "--jobs", "1", "--keep-going", "--report", str(report)]
    try:
        proc = subprocess.Popen(
            argv, cwd=tmp_path, env=user_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        # Kill it once docker has said a's push is done. The tag shows in the
        # registry a moment before docker hears the answer to its last PUT, so
        # killing on the tag alone would now and then cut a's push short too.
        pushed_a = threading.Event()
        lines: dict[str, list[str]] = {"out": [], "err": []}

        def read(stream: IO[str], into: list[str]) -> None:
            for line in stream:
                into.append(line)
                if line.startswith("[a] a: digest: sha256:"):
                    pushed_a.set()

        assert proc.stdout is not None and proc.stderr is not None
        readers = [
            threading.Thread(target=read, args=(proc.stdout, lines["out"])),
            threading.Thread(target=read, args=(proc.stderr, lines["err"])),
        ]
        for reader in readers:
            reader.start()
        deadline = time.monotonic() + 180
        while not pushed_a.wait(0.05):
            assert proc.poll() is None and time.monotonic() < deadline, "".join(lines["err"])
        assert registry.tags(name) == ["a"]
        running.stop(signal.SIGKILL)
        proc.wait(timeout=300)
        for reader in readers:
            reader.join(timeout=30)
        out, err = "".join(lines["out"]), "".join(lines["err"])

        assert proc.returncode == 1, err
        assert "Traceback" not in err
        rows = {row.split()[0]: row.split()[2] for row in out.splitlines()[1:4]}
        assert rows == {f"{repo}:a": "pushed", f"{repo}:b": "failed", f"{repo}:c": "failed"}
        errors = out.splitlines()[4:]
        assert len(errors) == 2, out  # one line per failed image
        for tag, line in zip("bc", errors, strict=True):
            assert line == (
                f"{repo}:{tag}: push failed: registry {registry.host} is not answering (connection refused)"
                " — run the same command again once it is back"
            )
        images = {i["name"]: i for i in json.loads(report.read_text())["images"]}
        assert [images[f"{repo}:{t}"]["status"] for t in "abc"] == ["pushed", "failed", "failed"]
        assert images[f"{repo}:a"]["digest"] and images[f"{repo}:b"]["digest"] is None

        # The registry is back, on the same port and storage: the same command finishes the job.
        running.start()
        assert registry.tags(name) == ["a"]
        again = subprocess.run(argv, cwd=tmp_path, env=user_env, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stderr
        assert sorted(registry.tags(name)) == ["a", "b", "c"]
        # a is in the registry already, as this run would build it: unchanged.
        statuses = [i["status"] for i in json.loads(report.read_text())["images"]]
        assert statuses == ["unchanged", "pushed", "pushed"]
    finally:
        running.stop()
        docker("rmi", f"{repo}:a", f"{repo}:b", f"{repo}:c", check=False)
