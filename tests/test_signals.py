"""SIGTERM and SIGHUP stop a run like Ctrl-C (issue 11): every child's process
group stopped, the temporary folder removed, the summary printed with the
unfinished images `interrupted`, and exit 128 + the signal number.

A real multi-image run against the real daemon and registry. Each `docker
build` is the real one, held open afterwards by the test's docker shim (a
process named with this test's marker) so that the signal lands mid-build."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from conftest import Registry, docker

pytestmark = pytest.mark.integration


def processes_with(marker: str) -> list[str]:
    """Command lines of every process on the host that carries ``marker``."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue  # gone meanwhile
        text = " ".join(arg.decode("utf-8", "replace") for arg in args if arg)
        if marker in text and "pytest" not in text:
            found.append(text)
    return found


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_signal_mid_build_stops_everything_and_tells(
    registry: Registry, armhf_base: str, tmp_path: Path, user_env: dict[str, str], signum: signal.Signals
) -> None:
    marker = f"xcompile-signal-{uuid.uuid4().hex[:10]}"
    repo_path = f"{marker}/img"
    repo = f"{registry.host}/{repo_path}"
    shim = tmp_path / "bin"
    shim.mkdir()
    real = shutil.which("docker")
    # The real build, then a wait named with the marker: the run is mid-build.
    (shim / "docker").write_text(
        "#!/bin/bash\n"
        'if [ "$1" = build ]; then\n'
        f'  "{real}" "$@" || exit $?\n'
        f'  touch "{tmp_path}/building.$$"\n'
        f'  exec -a "{marker}-build-held" sleep 60\n'
        "fi\n"
        f'exec "{real}" "$@"\n'
    )
    (shim / "docker").chmod(0o755)
    env = {**user_env, "PATH": f"{shim}:{user_env['PATH']}"}
    report = tmp_path / "report.json"
    args = ["--base", armhf_base, "--repo", repo, "--tag", "a", "--tag", "b", "--tag", "c", "--jobs", "2"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "xcompile", *args, "--report", str(report)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while len(list(tmp_path.glob("building.*"))) < 2:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        assert len(processes_with(marker)) >= 2  # both builds are running
        assert any(Path(user_env["TMPDIR"]).iterdir())  # and the build context exists
        started = time.monotonic()
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
        took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
        docker("rmi", f"{repo}:a", f"{repo}:b", f"{repo}:c", check=False)

    assert proc.returncode == 128 + signum, err
    assert took < 20, f"stopping took {took:.1f} s"
    assert err.strip().splitlines()[-1] == f"xcompile: interrupted by {signum.name}"
    assert "Traceback" not in err
    assert processes_with(marker) == []  # no child of the run is left
    assert list(Path(user_env["TMPDIR"]).iterdir()) == []
    # The summary and the report: nothing finished, and they say so.
    rows = [row.split() for row in out.splitlines()[1:4]]
    assert {(row[0], row[2]) for row in rows} == {(f"{repo}:{tag}", "interrupted") for tag in "abc"}
    images = json.loads(report.read_text())["images"]
    assert {(i["name"], i["status"], i["error"]) for i in images} == {
        (f"{repo}:a", "interrupted", "interrupted"),
        (f"{repo}:b", "interrupted", "interrupted"),
        (f"{repo}:c", "interrupted", "interrupted before it started"),
    }
    assert registry.tags(repo_path) == []
