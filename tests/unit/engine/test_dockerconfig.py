"""The docker config edit, against real files: every ugly input leaves the
file byte-for-byte as it was, or gains exactly the one key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_in_process

from xcompile.engine import dockerconfig
from xcompile.engine.dockerconfig import Edit, plan
from xcompile.errors import ConfigError, EnvironmentProblem
from xcompile.system.runner import Runner


def enable_experimental(path: Path, *, dry_run: bool = False) -> Edit:
    edit, written = dockerconfig.enable_experimental(path, Runner(lambda line, label: None, dry_run=dry_run))
    assert written is (not dry_run and edit.action != "unchanged")
    return edit


AUTHS = {"auths": {"registry.invalid": {"auth": "c2VjcmV0"}}, "credsStore": "pass"}


def test_missing_file_and_folder_are_created(tmp_path: Path) -> None:
    path = tmp_path / "new" / ".docker" / "config.json"
    edit = enable_experimental(path)
    assert edit.action == "create"
    assert json.loads(path.read_text()) == {"experimental": "enabled"}
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700


def test_other_keys_order_and_mode_kept(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(AUTHS))
    path.chmod(0o640)
    assert enable_experimental(path).action == "add"
    data = json.loads(path.read_text())
    assert data == {**AUTHS, "experimental": "enabled"}
    assert list(data) == ["auths", "credsStore", "experimental"]
    assert path.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]  # no temp file left


def test_present_key_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    original = json.dumps({"experimental": "enabled", **AUTHS}, indent=1).encode()
    path.write_bytes(original)
    before = path.stat()
    edit = enable_experimental(path)
    assert edit.action == "unchanged" and edit.current == "enabled"
    assert path.read_bytes() == original
    assert path.stat().st_mtime_ns == before.st_mtime_ns and path.stat().st_ino == before.st_ino


@pytest.mark.parametrize("value", ["disabled", True, None])
def test_another_value_is_set_to_enabled_and_said(tmp_path: Path, value: object) -> None:
    """The edit is what the original script did: "enabled", whatever was there; the line says what was."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"experimental": value, **AUTHS}))
    edit = enable_experimental(path)
    assert edit.action == "change" and edit.current == value
    assert json.loads(path.read_text()) == {"experimental": "enabled", **AUTHS}
    assert edit.describe(done=True) == f'set "experimental": "enabled" in {path} (it was {json.dumps(value)})'


def test_repeated_keys_are_refused_untouched(tmp_path: Path) -> None:
    """json keeps the last of repeated keys: rewriting would drop the first "auths" and its credentials."""
    path = tmp_path / "config.json"
    original = b'{"auths": {"a.example": {"auth": "eA=="}}, "auths": {"b.example": {}}}'
    path.write_bytes(original)
    with pytest.raises(ConfigError) as err:
        enable_experimental(path)
    assert 'has the key "auths" twice' in str(err.value) and "left unchanged" in str(err.value)
    assert path.read_bytes() == original


def test_a_dangling_link_is_refused_and_nothing_made(tmp_path: Path) -> None:
    link = tmp_path / ".docker" / "config.json"
    link.parent.mkdir()
    link.symlink_to(tmp_path / "gone" / "deeper" / "docker.json")
    with pytest.raises(EnvironmentProblem) as err:
        enable_experimental(link)
    assert "which does not exist; left as it is" in str(err.value)
    assert not (tmp_path / "gone").exists() and link.is_symlink()


@pytest.mark.parametrize("content", [b"", b"  \n"])
def test_empty_file_counts_as_no_settings(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(content)
    assert enable_experimental(path).action == "add"
    assert json.loads(path.read_text()) == {"experimental": "enabled"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"auths": {}', "is not valid JSON (line 1, column 13"),
        (b'{"auths": {},}', "is not valid JSON"),
        (b"[1, 2]", "holds an array, not a JSON object"),
        (b'"text"', "holds a JSON str, not a JSON object"),
        (b"null", "holds a JSON NoneType, not a JSON object"),
        (b"\xff\xfe{}", "is not UTF-8 text"),
    ],
)
def test_bad_content_refused_untouched(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as err:
        enable_experimental(path)
    assert message in str(err.value) and "left unchanged" in str(err.value)
    assert err.value.exit_code == 2
    assert path.read_bytes() == content
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


def test_symlink_is_followed_and_kept(tmp_path: Path) -> None:
    target = tmp_path / "dotfiles" / "docker.json"
    target.parent.mkdir()
    target.write_text(json.dumps(AUTHS))
    link = tmp_path / ".docker" / "config.json"
    link.parent.mkdir()
    link.symlink_to(target)
    enable_experimental(link)
    assert link.is_symlink() and link.resolve() == target
    assert json.loads(target.read_text()) == {**AUTHS, "experimental": "enabled"}


def test_folder_in_place_of_file(tmp_path: Path) -> None:
    (tmp_path / "config.json").mkdir()
    with pytest.raises(ConfigError, match="is a folder"):
        enable_experimental(tmp_path / "config.json")


def test_plan_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "d" / "config.json"
    assert plan(path).action == "create"
    assert enable_experimental(path, dry_run=True).action == "create"
    assert not path.parent.exists()


# Through the command, as a user runs it.


def test_command_uses_DOCKER_CONFIG(tmp_path: Path, user_env: dict[str, str]) -> None:
    result = run_in_process("experimental", cwd=tmp_path, env=user_env)
    path = Path(user_env["DOCKER_CONFIG"]) / "config.json"
    assert result.returncode == 0, result.stderr
    assert result.stdout == f'set "experimental": "enabled" in {path} (new file)\n'
    assert json.loads(path.read_text()) == {"experimental": "enabled"}
    again = run_in_process("experimental", cwd=tmp_path, env=user_env)
    assert again.stdout == f'{path}: experimental already set to "enabled", left as it is\n'


def test_command_bad_json_one_line_exit_2(tmp_path: Path, user_env: dict[str, str]) -> None:
    folder = Path(user_env["DOCKER_CONFIG"])
    folder.mkdir()
    (folder / "config.json").write_bytes(b"{oops")
    result = run_in_process("experimental", cwd=tmp_path, env=user_env)
    assert result.returncode == 2
    assert result.stderr == (
        f"xcompile: error: {folder}/config.json is not valid JSON (line 1, column 2: Expecting property name"
        " enclosed in double quotes); left unchanged — fix or remove it, then run again\n"
    )
    assert (folder / "config.json").read_bytes() == b"{oops"


def test_build_refuses_bad_config_before_any_work(tmp_path: Path, user_env: dict[str, str]) -> None:
    """A broken config.json stops `build` before qemu, cp or any build runs."""
    folder = Path(user_env["DOCKER_CONFIG"])
    folder.mkdir()
    (folder / "config.json").write_bytes(b"[]")
    result = run_in_process("build", "--tag", "3.7", cwd=tmp_path, env=user_env)
    assert result.returncode == 2, result.stderr
    assert "holds an array, not a JSON object" in result.stderr
    assert "+ cp" not in result.stderr and "docker build" not in result.stderr
    assert (folder / "config.json").read_bytes() == b"[]"
