"""`xcompile matrix`: the configured cells, in both formats, what `build --only` takes of them, and
the CI examples that call it. No docker: the cells run on runners in tests/integration/commands."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cells import ARCHES, TAGS, project
from conftest import REPO, run_in_process

from xcompile.host import platforms

# --- matrix: no docker needed -------------------------------------------------------------------


def test_matrix_lists_the_configured_cells_in_both_formats(tmp_path: Path, user_env: dict[str, str]) -> None:
    folder = project(tmp_path / "p", "127.0.0.1:5000/team/py", {})
    listed = run_in_process("matrix", cwd=folder, env=user_env)
    assert listed.returncode == 0, listed.stderr
    cells = [{"tag": t, "arch": a, "only": f"{t}/{a}", "qemu_host": "amd64"} for t in TAGS for a in ARCHES]
    assert json.loads(listed.stdout) == cells
    github = run_in_process("matrix", "--format", "github", cwd=folder, env=user_env)
    assert github.returncode == 0
    assert len(github.stdout.splitlines()) == 1  # one line, for $GITHUB_OUTPUT
    assert json.loads(github.stdout) == {"include": cells}
    lines = run_in_process("matrix", "--format", "lines", "--tag", "x", "--arch", "aarch64", cwd=folder, env=user_env)
    assert lines.stdout == "x/arm64v8\n"
    bad = run_in_process("matrix", "--format", "yaml", cwd=folder, env=user_env)
    assert (bad.returncode, bad.stderr) == (
        2,
        "xcompile: error: --format: expected one of json, github, lines, got 'yaml'\n",
    )


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        (
            "3.8/amd64",
            "xcompile: error: --only 3.8/amd64: not a configured cell — valid cells: 3.7/amd64, 3.7/arm32v7,"
            " 3.7/arm64v8, 3.7-slim/amd64, 3.7-slim/arm32v7, 3.7-slim/arm64v8\n",
        ),
        ("3.7/i386", "xcompile: error: --only 3.7/i386: not a configured cell — valid cells: 3.7/amd64,"),
        ("3.7", "xcompile: error: --only: expected TAG/ARCH, got '3.7'\n"),
        ("3.7/sparc", "xcompile: error: unknown architecture 'sparc'"),
    ],
)
def test_only_an_unconfigured_cell_is_exit_2(tmp_path: Path, user_env: dict[str, str], cell: str, message: str) -> None:
    folder = project(tmp_path / "p", "127.0.0.1:5000/team/py", {})
    result = run_in_process("build", "--only", cell, cwd=folder, env=user_env)
    assert result.returncode == 2
    assert result.stderr.startswith(message), result.stderr
    assert result.stdout == ""


def test_only_plans_its_cells_and_no_list(tmp_path: Path, user_env: dict[str, str]) -> None:
    folder = project(tmp_path / "p", "127.0.0.1:5000/team/py", {})
    result = run_in_process("--dry-run", "--only", "3.7/aarch64", "--only", "3.7-slim/amd64", cwd=folder, env=user_env)
    assert result.returncode == 0, result.stderr
    rows = [line.split()[:3] for line in result.stdout.splitlines()[1:]]
    assert rows == [
        ["127.0.0.1:5000/team/py:3.7-arm64v8", "linux/arm64/v8", "planned"],
        ["127.0.0.1:5000/team/py:3.7-slim-amd64", "linux/amd64", "planned"],
    ]
    assert "docker manifest" not in result.stderr and "imagetools" not in result.stderr
    # Only the cells' emulators are settled and copied in: none for arm32v7, which no cell builds.
    assert "xcompile: qemu: /usr/bin/qemu-aarch64-static" in result.stderr
    assert "xcompile: qemu: /usr/bin/qemu-x86_64-static" in result.stderr
    assert "arm32v7" not in result.stderr and "qemu-arm-static" not in result.stderr


def test_ci_examples_call_what_exists() -> None:
    """Neither CI file can run here; what they call must exist as they spell it."""
    workflow = (REPO / ".github/workflows/ci.yml").read_text()
    travis = (REPO / ".travis.yml").read_text()
    for text in (workflow, travis):
        assert "xcompile matrix" in text and "build --only" in text and "xcompile join" in text
    assert "fromJSON(needs.matrix.outputs.cells)" in workflow
    assert "xcompile matrix --format github" in workflow


def test_travis_shards_build_every_cell_of_xcompile_matrix_once(tmp_path: Path) -> None:
    """Travis cannot make jobs from a command's output, so its build jobs are shards of
    `xcompile matrix`: run each shard's script as written, with the build echoed, on a job of
    three tags and three arches; together the shards build every cell once, and the file types in
    no arch, so setup.cfg alone decides the cells."""
    travis = (REPO / ".travis.yml").read_text()
    assert not [arch.name for arch in platforms.ARCHES if re.search(rf"\b{arch.name}\b", travis)]
    script = re.search(r"script: >-\n((?:        .+\n)+)", travis)
    assert script, "no folded build script in .travis.yml"
    loop = " ".join(line.strip() for line in script[1].splitlines())
    shards = sorted(set(re.findall(r"env: SHARD=(\d+) SHARDS=(\d+)", travis)))
    assert len(shards) >= 2 and {n for _, n in shards} == {str(len(shards))}
    (tmp_path / "setup.cfg").write_text(
        "[xcompile]\nimage = python\ntags = 3.9 3.10 3.11\nrepo = 127.0.0.1:5000/team/py\narch = arm32v7 arm64v8 i386\n"
    )
    bin_dir = tmp_path / ".venv/bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "xcompile").write_text(
        f'#!/bin/sh\nif [ "$1" = build ]; then echo "built $3"; else exec {sys.executable} -m xcompile "$@"; fi\n'
    )
    (bin_dir / "xcompile").chmod(0o755)
    built: list[str] = []
    for shard, count in shards:
        env = {**os.environ, "SHARD": shard, "SHARDS": count, "PYTHONPATH": str(REPO)}
        ran = subprocess.run(["bash", "-ec", loop], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert ran.returncode == 0, ran.stderr
        built += [line.removeprefix("built ") for line in ran.stdout.splitlines()]
    cells = run_in_process("matrix", "--format", "lines", cwd=tmp_path).stdout.split()
    assert len(cells) == 9 and sorted(built) == sorted(cells)
