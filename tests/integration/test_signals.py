"""SIGTERM and SIGHUP stop a run like Ctrl-C: every child's process
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
import threading
import time
import uuid
from pathlib import Path

import pytest
from conftest import BASE_TAGS, Registry, docker, session_container_ids, session_image_ids


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
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
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


def names(repo: str, tags: tuple[str, ...]) -> dict[str, str | None]:
    """The image ID each ``repo:tag`` points to, None where it points nowhere."""
    found = {}
    for tag in tags:
        inspected = docker("image", "inspect", "--format", "{{.Id}}", f"{repo}:{tag}", check=False)
        found[tag] = inspected.stdout.strip() if inspected.returncode == 0 else None
    return found


POINTS = {
    "build": "+ docker build ",  # the first build sends its context
    "copy": "Step 2/3 : COPY",  # the daemon checksums the context, then runs the COPY step
    "label": "Step 3/3 : LABEL",  # the last step
    "built": "Successfully built ",  # a build has just ended
    "proof": "+ docker run ",  # a proof's container runs
    "push": "+ docker push ",
}
"""Where the signal lands: just after the run first says the line."""
IN_BUILDS = ("build", "copy", "label")
"""Points where every image is still building, or not yet started."""


@pytest.mark.parametrize("host_binfmt", ["debian"], indirect=True)  # the proof runs the images
@pytest.mark.parametrize("point", list(POINTS))
def test_sigterm_at_any_point_leaves_no_image_and_no_container(
    host_binfmt: str, registry: Registry, armhf_base: str, tmp_path: Path, user_env: dict[str, str], point: str
) -> None:
    """A rebuild of five tags, two at a time, is stopped at ``point``: whatever
    the builds were doing (the daemon goes on with its step after its client is
    gone), no `<none>` image and no container of this session is left, and each
    name still points to an image, as it did before the run. Exit 143, and the
    rows say what was interrupted. The bases carry the session's label, so every
    image and container made from them does."""
    repo = f"{registry.host}/xcompile-sigterm-{uuid.uuid4().hex[:10]}/img"
    tags = BASE_TAGS
    args = ["--base", armhf_base, "--repo", repo, "--jobs", "2", "--rebuild", "always"]
    args += [arg for tag in tags for arg in ("--tag", tag)]
    first = subprocess.run(
        [sys.executable, "-m", "xcompile", *args],
        cwd=tmp_path,
        env=user_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert first.returncode == 0, first.stdout + first.stderr[-3000:]
    before = names(repo, tags)
    dangling, containers = session_image_ids("dangling=true"), session_container_ids()

    proc = subprocess.Popen(
        [sys.executable, "-m", "xcompile", *args],
        cwd=tmp_path,
        env=user_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    there, said = threading.Event(), []

    def read() -> None:
        for line in proc.stderr or ():
            said.append(line)
            if POINTS[point] in line and not there.is_set():
                proc.send_signal(signal.SIGTERM)
                there.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        out = proc.stdout.read() if proc.stdout else ""  # stderr is the reader's
        proc.wait(timeout=120)
        reader.join(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = "".join(said)
    assert there.is_set() and proc.returncode == 143, out + err
    assert err.strip().splitlines()[-1] == "xcompile: interrupted by SIGTERM"
    rows = [row.split() for row in out.splitlines()[1 : 1 + len(tags)]]
    assert {row[2] for row in rows} <= {"pushed", "interrupted"} and "interrupted" in {row[2] for row in rows}, out

    assert session_image_ids("dangling=true") - dangling == set(), err[-5000:]
    assert session_container_ids() == containers
    after = names(repo, tags)
    # Each name points to the image it pointed to before, or to the new one
    # where that one's build had ended before the signal.
    assert None not in after.values(), err[-5000:]
    if point in IN_BUILDS:  # each image a stopped build made is gone, and its name back
        assert after == before, err[-5000:]
