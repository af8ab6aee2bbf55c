"""Bad input, through the command as a user runs it:
each is refused with one line and exit 2, no traceback, before any work, and
the file it came from is left byte for byte as it was."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_in_process

from xcompile.errors import UsageError
from xcompile.settings.config import load

HOME = Path("/home/user")


def refused(result_stderr: str) -> str:
    lines = result_stderr.strip().splitlines()
    assert len(lines) == 1, result_stderr
    assert "Traceback" not in result_stderr
    return lines[0]


# --- docker's config.json: numbers and nesting docker itself cannot read ------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"proxies": {"x": 1e400}}', "holds the number 1e400, beyond what docker can read (a float64)"),
        (b'{"x": -1e999}', "holds the number -1e999, beyond what docker can read (a float64)"),
        (b'{"x": ' + b"9" * 5000 + b"}", "holds a 5000-digit integer, beyond what docker can read (a float64)"),
        (b'{"x": NaN}', "holds NaN, which is not JSON"),
        (b'{"x": Infinity}', "holds Infinity, which is not JSON"),
        (b'{"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "is nested too deeply to read"),
    ],
    ids=["1e400", "-1e999", "5000-digits", "NaN", "Infinity", "100k-levels"],
)
def test_docker_config_docker_cannot_read(
    tmp_path: Path, user_env: dict[str, str], content: bytes, message: str
) -> None:
    folder = Path(user_env["DOCKER_CONFIG"])
    folder.mkdir()
    path = folder / "config.json"
    path.write_bytes(content)
    result = run_in_process("experimental", cwd=tmp_path, env=user_env)
    assert result.returncode == 2, result.stderr
    assert refused(result.stderr) == (
        f"xcompile: error: {path} {message}; left unchanged — fix or remove it, then run again"
    )
    assert path.read_bytes() == content
    assert [p.name for p in folder.iterdir()] == ["config.json"]


def test_docker_config_large_but_readable_numbers_are_kept(tmp_path: Path, user_env: dict[str, str]) -> None:
    folder = Path(user_env["DOCKER_CONFIG"])
    folder.mkdir()
    (folder / "config.json").write_text('{"x": 1e300, "y": 123456789012345678901234567890}')
    result = run_in_process("experimental", cwd=tmp_path, env=user_env)
    assert result.returncode == 0, result.stderr
    text = (folder / "config.json").read_text()
    assert "1e+300" in text and "123456789012345678901234567890" in text and "Infinity" not in text


# --- settings ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("tags = [3.9, 3.10]", "pyproject.toml: tags: expected strings, got 3.9 (float)"),
        ('tags = ["3.9", 3]', "pyproject.toml: tags: expected strings, got 3 (int)"),
        ('arches = ["arm32v7", true]', "pyproject.toml: arches: expected strings, got True (bool)"),
        ("jobs = true", "pyproject.toml: jobs: expected a whole number, got True"),
        ("jobs = 2.5", "pyproject.toml: jobs: expected a whole number, got 2.5"),
        ("push = 1", "pyproject.toml: push: expected true or false, got 1"),
        ('repo = "exa_mple.com/app"', "invalid repository 'exa_mple.com/app': 'exa_mple.com' is not a valid"),
        ('base_armv9 = "x/y"', "pyproject.toml: base_armv9: unknown architecture 'armv9'"),
    ],
)
def test_bad_settings_in_pyproject(tmp_path: Path, user_env: dict[str, str], toml: str, message: str) -> None:
    text = f"[tool.xcompile]\n{toml}\n"
    (tmp_path / "pyproject.toml").write_text(text)
    result = run_in_process("build", "--no-push", cwd=tmp_path, env=user_env)
    assert result.returncode == 2, result.stderr
    assert refused(result.stderr).startswith(f"xcompile: error: {message}")
    assert (tmp_path / "pyproject.toml").read_text() == text
    assert not Path(user_env["DOCKER_CONFIG"]).exists()


def test_tag_too_long_once_the_arch_is_added(tmp_path: Path, user_env: dict[str, str]) -> None:
    tag = "t" * 125  # a valid tag alone; "-arm64v8" makes it 133 characters
    arches = ["--arch", "arm32v7", "--arch", "arm64v8"]
    result = run_in_process("build", "--repo", "127.0.0.1:9/a", *arches, "--tag", tag, cwd=tmp_path, env=user_env)
    assert result.returncode == 2, result.stderr
    line = refused(result.stderr)
    assert line.startswith(f"xcompile: error: tag '{'t' * 57}...' is too long for several arches: with '-arm")
    assert "docker" not in line and "+ " not in result.stderr  # before any work


def test_a_tag_that_is_another_tags_image_name_is_refused(tmp_path: Path, user_env: dict[str, str]) -> None:
    """With several arches tag 3.7's arm64v8 image is pushed as 3.7-arm64v8: a tag of that name
    would be the manifest list under the same name, overwriting it, and no rerun would settle."""
    arches = ["--arch", "arm32v7", "--arch", "arm64v8"]
    tags = ["--tag", "3.7", "--tag", "3.7-arm64v8"]
    result = run_in_process("build", "--repo", "127.0.0.1:9/a", *arches, *tags, cwd=tmp_path, env=user_env)
    assert result.returncode == 2, result.stderr
    assert refused(result.stderr) == (
        "xcompile: error: tags 3.7 and 3.7-arm64v8 collide: with several arches 3.7's arm64v8 image is"
        " 3.7-arm64v8 — drop one of them, or build 3.7-arm64v8 in a run of its own"
    )
    assert "+ " not in result.stderr  # before any work
    one_arch, _ = load({"tags": ["3.7", "3.7-arm64v8"]}, {}, tmp_path, HOME)  # one arch: plain tags, no clash
    assert one_arch.tags == ("3.7", "3.7-arm64v8")


def test_tag_at_the_limit_with_one_arch_is_fine(tmp_path: Path) -> None:
    config, _ = load({"tags": ["t" * 128]}, {}, tmp_path, HOME)
    assert config.tags == ("t" * 128,)
    with pytest.raises(UsageError, match="too long for several arches"):
        load({"tags": ["t" * 121], "arches": ["arm32v7", "riscv64"]}, {}, tmp_path, HOME)
    config, _ = load({"tags": ["t" * 120], "arches": ["arm32v7", "riscv64"]}, {}, tmp_path, HOME)
    assert config.tags == ("t" * 120,)


@pytest.mark.parametrize("repo", ["exa_mple.com/app", "my_host:5000/app", "-bad.example/app"])
def test_registry_domain_docker_would_refuse(tmp_path: Path, repo: str) -> None:
    with pytest.raises(UsageError) as err:
        load({"repo": repo}, {}, tmp_path, HOME)
    assert "is not a valid registry host" in str(err.value)
    assert err.value.exit_code == 2


def test_unknown_base_variable_warns(tmp_path: Path, user_env: dict[str, str]) -> None:
    config, warnings = load({}, {"XCOMPILE_BASE_ARMV9": "x/y", "XCOMPILE_BASE_ARM64V8": "me/py"}, tmp_path, HOME)
    (warning,) = warnings
    assert warning.startswith(
        "XCOMPILE_BASE_ARMV9: unknown architecture 'armv9', so it is ignored — did you mean 'arm32v7'? known: arm32v6,"
    )
    assert config.bases == (("arm64v8", "me/py"),)
    # Through the command: a warning line, and the run goes on (here: a dry run).
    result = run_in_process("--dry-run", "--tag", "3.7", cwd=tmp_path, env={**user_env, "XCOMPILE_BASE_ARMV9": "x/y"})
    assert result.returncode == 0, result.stderr
    assert "xcompile: warning: XCOMPILE_BASE_ARMV9: unknown architecture 'armv9', so it is ignored" in result.stderr
