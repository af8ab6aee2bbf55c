"""Bad input, as a user types it: one line on stderr, exit 2, nothing run or written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_in_process


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tag", "3.7;rm -rf /"], "xcompile: error: invalid tag '3.7;rm -rf /' — a tag is 1-128 of letters"),
        (["build", "--tag", "../x"], "xcompile: error: invalid tag '../x'"),
        (["--repo", "Team/App"], "xcompile: error: invalid repository 'Team/App'"),
        (
            ["--base", "arm32v7/python:3.7"],
            "xcompile: error: invalid base image for arm32v7 'arm32v7/python:3.7': give the name",
        ),
        (["--arch", "armv9"], "xcompile: error: unknown architecture 'armv9' — did you mean 'arm32v7'?"),
        (["--jobs", "0"], "xcompile: error: --jobs: expected 1 to 64, got 0"),
        (["--jobs", "two"], "xcompile: error: --jobs: expected a whole number, got 'two'"),
        (["--proof-timeout", "0"], "xcompile: error: --proof-timeout: expected 1 to 3600, got 0"),
        (["--proof-timeout", "1.5"], "xcompile: error: --proof-timeout: expected a whole number, got '1.5'"),
        (["--frobnicate"], "xcompile: error: Unknown switch --frobnicate — see `xcompile --help`"),
        (["biuld"], "xcompile: error: unknown command 'biuld' — did you mean 'build'?"),
        (["--config", "missing.cfg"], "xcompile: error: config file missing.cfg not found"),
        (["qemu", "--tag", "3.7"], "xcompile: error: Unknown switch --tag"),
        (["qemu", "--source", "magic"], "xcompile: error: --qemu-source: expected one of auto, path, apt, download"),
        (["doctor", "--no-fix-binary"], "xcompile: error: --no-fix-binary goes with --fix"),
        (["--report", "/nonexistent/dir/r.json"], "xcompile: error: report: folder /nonexistent/dir does not exist"),
        (["--keyring", "/nonexistent.gpg"], "xcompile: error: keyring: /nonexistent.gpg does not exist"),
        (["--mirror", "notaurl"], "xcompile: error: --mirror: 'notaurl' is not an http(s) URL"),
        (
            ["--mirror", "http://u:p@127.0.0.1:1/debian?token=t"],
            "xcompile: error: --mirror: http://127.0.0.1:1/debian: a query or fragment cannot be part of",
        ),
        (["--tag", ""], "xcompile: error: --tag: expected at least one value"),
        # Given empty (a CI variable that is unset) is refused, never the file's value or the default.
        (["--repo", ""], "xcompile: error: --repo: expected a non-empty string, got ''"),
        (["qemu", "--qemu-version", ""], "xcompile: error: --qemu-version: expected a non-empty string, got ''"),
        (["--config", ""], "xcompile: error: --config: expected a file, got ''"),
        (["qemu", "--dest", ""], "xcompile: error: --dest: expected a folder, got ''"),
        (["--config", "/"], "xcompile: error: config file / is not a file"),
        (["qemu", "--dest", "/etc/hostname"], "xcompile: error: --dest /etc/hostname: not a folder"),
    ],
)
def test_usage_errors(tmp_path: Path, user_env: dict[str, str], args: list[str], message: str) -> None:
    result = run_in_process(*args, cwd=tmp_path, env=user_env)
    assert result.returncode == 2, result
    assert result.stderr.startswith(message)
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stdout == ""
    assert (
        sorted(p.name for p in tmp_path.iterdir()) == ["docker-config", "tmp"]
        or not (tmp_path / "docker-config").exists()
    )


def test_verbose_shows_traceback(tmp_path: Path, user_env: dict[str, str]) -> None:
    result = run_in_process("-v", "--tag", "../x", cwd=tmp_path, env=user_env)
    assert result.returncode == 2
    assert "Traceback" in result.stderr


def test_bad_config_file_key(tmp_path: Path, user_env: dict[str, str]) -> None:
    (tmp_path / "setup.cfg").write_text("[xcompile]\ntagz = 3.7\n")
    result = run_in_process("--dry-run", cwd=tmp_path, env=user_env)
    assert result.returncode == 2
    assert result.stderr == "xcompile: error: setup.cfg: unknown key 'tagz' — did you mean 'tags'?\n"


def test_a_proof_command_that_no_verify_skips_is_said(tmp_path: Path, user_env: dict[str, str]) -> None:
    """A config file's proof command is a gate someone relies on: --no-verify skipping it is said."""
    (tmp_path / "setup.cfg").write_text("[xcompile]\nproof_command_arm32v7 = ldconfig\n")
    result = run_in_process("--dry-run", "--no-verify", "--no-push", cwd=tmp_path, env=user_env)
    assert result.returncode == 0, result.stderr
    warning = "xcompile: warning: the proof command is not run: --no-verify (verify = false) skips the whole proof"
    assert warning in result.stderr.splitlines()
    assert warning not in run_in_process("--dry-run", "--no-push", cwd=tmp_path, env=user_env).stderr


def test_version_and_help(tmp_path: Path, user_env: dict[str, str]) -> None:
    from xcompile import __version__

    assert run_in_process("--version", cwd=tmp_path, env=user_env).stdout.strip() == f"xcompile {__version__}"
    helped = run_in_process("--help", cwd=tmp_path, env=user_env)
    assert helped.returncode == 0
    for word in ("--tag", "--no-push", "--keep-going", "--dry-run", "--report", "qemu", "experimental", "build"):
        assert word in helped.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--no-verify", "join"], "xcompile: error: --no-verify is not a switch of `xcompile join`"),
        (["matrix", "--no-push"], "xcompile: error: Unknown switch --no-push"),
        (["--tag", "3.7", "qemu"], "xcompile: error: --tag is not a switch of `xcompile qemu`"),
        (["trial", "7.2", "--report", "r.json"], "xcompile: error: Unknown switch --report"),
    ],
)
def test_a_switch_a_command_would_ignore_is_refused(
    tmp_path: Path, user_env: dict[str, str], args: list[str], message: str
) -> None:
    result = run_in_process(*args, cwd=tmp_path, env=user_env)
    assert result.returncode == 2, result
    assert result.stderr.startswith(message), result.stderr
    assert len(result.stderr.splitlines()) == 1 and result.stdout == ""


@pytest.mark.parametrize("where", ["setup.cfg", "XCOMPILE_REPORT"])
@pytest.mark.parametrize("report", ["build/xcompile-report.json", "/dev/null"])
def test_a_report_setting_stops_only_the_commands_that_write_a_report(
    where: str, report: str, tmp_path: Path, user_env: dict[str, str]
) -> None:
    """`report = build/xcompile-report.json` in setup.cfg, before build/ is made, made `xcompile matrix`
    exit 2, and XCOMPILE_REPORT=/dev/null `xcompile inspect` (issue 27)."""
    env = dict(user_env)
    line = f"report = {report}\n" if where == "setup.cfg" else ""
    (tmp_path / "setup.cfg").write_text(f"[xcompile]\ntags = 3.7\n{line}")
    if where == "XCOMPILE_REPORT":
        env["XCOMPILE_REPORT"] = report
    matrix = run_in_process("matrix", cwd=tmp_path, env=env)
    assert (matrix.returncode, matrix.stderr) == (0, ""), matrix.stderr
    assert [cell["tag"] for cell in json.loads(matrix.stdout)] == ["3.7"]
    qemu = run_in_process("qemu", cwd=tmp_path, env=env)
    assert qemu.returncode == 0 and qemu.stdout.strip().endswith("/qemu-arm-static"), qemu.stderr
    inspect = run_in_process("inspect", "127.0.0.1:1/nothing/here:a", cwd=tmp_path, env=env)
    assert inspect.returncode == 3 and "report" not in inspect.stderr, inspect.stderr
    build = run_in_process("build", "--dry-run", cwd=tmp_path, env=env)  # writes one: refused before any work
    assert build.returncode == 2 and build.stdout == "", build.stderr
    assert build.stderr.startswith("xcompile: error: report: ") and len(build.stderr.splitlines()) == 1
