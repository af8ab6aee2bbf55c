"""Every `xcompile …` line in a fenced block of the README and docs/ is run, so that a renamed
switch or command fails here, not for a user.

Each line is run as written (its `xcompile` is this checkout's), from a folder whose setup.cfg is
a user's job of two tags on two arches, with these stand-ins for what cannot be reached from here:
the docs' registries are the test registry, the docs' bases are locally made ones, the Debian
mirror is a signed copy of the real archive's qemu packages served on 127.0.0.1, and a GitHub
expression is one cell of `xcompile matrix`. A line is run for real where it can run here;
otherwise with --dry-run, which still parses every switch and plans the run, and the table below
says why. A line the table does not know fails the test: a new line in the docs is classified here.

The counts (run, dry-run, skipped) are printed at the end of the session.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO, Registry, record_summary
from debian_archive import GpgKey, file_handler, key_fixture, real_mirror
from pytest_httpserver import HTTPServer

PAGES = (REPO / "README.md", *sorted((REPO / "docs").glob("*.md")))
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
COMMAND = re.compile(r"(?:^|&& )(xcompile\b.*)$")

RUN, DRY = "run", "dry-run"


@dataclass(frozen=True)
class How:
    mode: str
    """RUN, DRY, or "skip"."""
    why: str = ""
    """Why it is not run for real; required for DRY and skip."""
    exit: int = 0
    """The exit code a run must give (as the docs show it)."""
    says: str = ""
    """Text the run's output must hold (as the docs show it)."""


HUB = "its bases are Docker Hub's, which this machine cannot reach"
PYPI = "its proof command installs from PyPI inside the image, which cannot reach it here"
ARM64_QEMU = (
    "the tests' copy of the archive serves amd64's qemu only, and its proof needs a qemu-aarch64 entry with F"
    " that can nest (tests/integration/qemu/test_machines.py runs it for real)"
)
BENCH = "its base is the benchmarks' 165 MB Python image (benchmarks/make-python-base.sh), not made for the tests"

# In the order the docs give them: a run may need what an earlier one pushed (inspect, join).
HOW: dict[str, How] = {
    "xcompile doctor": How(RUN, says="pass  keys"),
    "xcompile build --repo registry.example/team/rpi-python --tag 3.7 --tag 3.7-slim": How(RUN),
    "xcompile qemu --versions": How(RUN, says="qemu-user-static"),
    "xcompile build --qemu-version 10.0 --proof-command 'pip install --no-cache-dir requests'": How(DRY, PYPI),
    "xcompile trial 7.2 10.0 11.1": How(RUN, says="every image passes with qemu 7.2, 10.0, 11.1"),
    "xcompile inspect registry.example/team/rpi-python:3.7": How(RUN, says="qemu"),
    "xcompile doctor --engine podman": How(RUN, says="pass  podman run"),
    "xcompile build --engine podman --arch arm32v7 --arch arm64v8 --image busybox "
    "--repo localhost:5000/x/bb --tag latest": How(DRY, HUB),
    "xcompile matrix --format github": How(RUN, says='"only":"3.7/arm64v8"'),
    "xcompile build --only 3.7/arm64v8": How(RUN),
    "xcompile join": How(RUN),
    "xcompile build --only ${{ matrix.only }}": How(RUN),
    "xcompile --base xcompile-bench/python --tag 3.7 --repo 127.0.0.1:5077/brewblox/rpi-python --qemu-source "
    "download --qemu-url http://127.0.0.1:39029/qemu-arm-static --qemu-sha256 3d9f2889…": How(DRY, BENCH),
    "xcompile --base xcompile-bench/python --tag 3.7 --tag 3.7-slim --repo 127.0.0.1:5077/brewblox/rpi-python "
    "--rebuild always --proof-command \"ldconfig && python3 -c 'import ssl, sqlite3, json'\" --report "
    "report.json": How(DRY, BENCH),
    "xcompile trial 7.2 10.0 11.1 --base xcompile-bench/python --qemu-source download --proof-command "
    "\"ldconfig && python3 -c 'import ssl, sqlite3, json'\" 2>/dev/null": How(DRY, BENCH),
    "xcompile qemu --qemu-version 11.1 --qemu-source download": How(RUN, says="qemu-arm-static"),
    "xcompile --base xcompile-bench/python --tag 3.7 --tag 3.7-slim --repo 127.0.0.1:5077/brewblox/rpi-python "
    "--qemu-version 10.0 --qemu-source download 2>/dev/null": How(DRY, BENCH),
    "xcompile inspect 127.0.0.1:5077/brewblox/rpi-python:3.7 127.0.0.1:5077/brewblox/rpi-python:3.7-slim": How(
        RUN, says="qemu"
    ),
    # The README's build pushed 3.7 from this test's local bases, which no registry holds: its recorded
    # base cannot be read, so "cannot tell" (tests/integration/commands/test_verify.py verifies images
    # whose bases are pushed).
    "xcompile verify registry.example/team/rpi-python:3.7": How(
        RUN, exit=3, says="cannot tell: cannot read the recorded base"
    ),
    "xcompile build --qemu-host arm64v8": How(DRY, ARM64_QEMU),
}


def doc_commands() -> list[tuple[str, str]]:
    """(page, command) for every `xcompile` command line in a fenced block, continuation lines
    joined. In a transcript (a block with `$ ` prompts) only the prompted lines are commands."""
    found = []
    for page in PAGES:
        for block in FENCE.findall(page.read_text(encoding="utf-8")):
            lines = block.splitlines()
            transcript = any(line.startswith("$ ") for line in lines)
            at = 0
            while at < len(lines):
                line = lines[at]
                at += 1
                if transcript and not line.startswith("$ "):
                    continue
                command = line.removeprefix("$ ").split("  #", 1)[0].rstrip()
                while command.endswith("\\") and at < len(lines):
                    command = f"{command[:-1].rstrip()} {lines[at].strip()}"
                    at += 1
                if match := COMMAND.search(command.strip().removeprefix("- run: ")):
                    found.append((page.name, match.group(1)))
    return found


def test_every_docs_command_is_classified() -> None:
    commands = doc_commands()
    assert len(commands) >= 15, commands
    unknown = sorted({command for _, command in commands} - set(HOW))
    assert not unknown, f"new xcompile lines in the docs; say in HOW how each is run: {unknown}"
    stale = sorted(set(HOW) - {command for _, command in commands})
    assert not stale, f"HOW names lines the docs no longer have: {stale}"
    for command, how in HOW.items():
        assert how.mode in (RUN, DRY, "skip") and (how.mode == RUN or how.why), command


key = key_fixture("Docs Archive")


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory, key: GpgKey, make_httpserver: HTTPServer) -> str:
    root = tmp_path_factory.mktemp("docs-mirror")
    real_mirror(root, key)
    prefix = f"/docs-{uuid.uuid4().hex[:6]}"
    make_httpserver.expect_request(re.compile(f"^{prefix}/")).respond_with_handler(file_handler(root, prefix))
    return make_httpserver.url_for(prefix)


def argv_of(command: str, swaps: dict[str, str], dry: bool) -> list[str]:
    for old, new in swaps.items():
        command = command.replace(old, new)
    words = [word for word in shlex.split(command) if not re.fullmatch(r"\d?>/dev/null", word)]
    assert words[0] == "xcompile"
    return [sys.executable, "-m", "xcompile", *words[1:], *(["--dry-run"] if dry else [])]


@pytest.mark.parametrize("host_binfmt", ["debian"], indirect=True)
def test_every_docs_command_runs(
    host_binfmt: str,
    registry: Registry,
    armhf_base: str,
    arm64_base: str,
    mirror: str,
    key: GpgKey,
    user_env: dict[str, str],
    tmp_path: Path,
) -> None:
    namespace = f"docs-{uuid.uuid4().hex[:6]}"
    repo = f"{registry.host}/{namespace}/rpi-python"
    (tmp_path / "setup.cfg").write_text(
        "[xcompile]\n"
        "tags = 3.7 3.7-slim\n"
        "arch = arm32v7 arm64v8\n"
        f"repo = {repo}\n"
        f"base_arm32v7 = {armhf_base}\n"
        f"base_arm64v8 = {arm64_base}\n"
        f"mirror = {mirror}\n"
        f"keyring = {key.keyring}\n"
    )
    served = tmp_path / "served-qemu"
    served.write_bytes(Path("/usr/bin/qemu-arm-static").read_bytes())
    swaps = {
        "registry.example/team/rpi-python": repo,
        "127.0.0.1:5077/brewblox/rpi-python": repo,
        "localhost:5000/x/bb": f"{registry.host}/{namespace}/bb",
        "xcompile-bench/python": armhf_base,
        "http://127.0.0.1:39029/qemu-arm-static": f"{mirror}/nothing-is-fetched-in-a-dry-run",
        "3d9f2889…": hashlib.sha256(served.read_bytes()).hexdigest(),
        "${{ matrix.only }}": "3.7/arm32v7",
    }
    env = {**user_env, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    failed, counts, skipped = [], {RUN: 0, DRY: 0, "skip": 0}, []
    for page, command in doc_commands():
        how = HOW[command]
        counts[how.mode] += 1
        if how.mode == "skip":
            skipped.append(f"{page}: {command} ({how.why})")
            continue
        argv = argv_of(command, swaps, dry=how.mode == DRY)
        done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        shown = done.stdout + done.stderr
        if done.returncode != how.exit or how.says not in shown or "Traceback" in shown:
            failed.append(f"{page}: {command}\n  exit {done.returncode} (want {how.exit}):\n{shown[-1500:]}")
    record_summary(
        f"docs commands: {counts[RUN]} run, {counts[DRY]} dry-run, {counts['skip']} skipped"
        + "".join(f"\n  skipped {line}" for line in skipped)
    )
    assert not failed, "\n\n".join(failed)
