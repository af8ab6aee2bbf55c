"""The settings cascade: defaults < config file < XCOMPILE_* env < switches."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import REPO

from xcompile.errors import ConfigError, UsageError
from xcompile.settings.config import Config, load

HOME = Path("/home/user")


def settings(
    tmp_path: Path,
    switches: dict[str, object] | None = None,
    env: dict[str, str] | None = None,
    config_file: Path | None = None,
) -> Config:
    config, _ = load(switches or {}, env or {}, tmp_path, HOME, config_file)
    return config


def test_defaults_are_the_original_job(tmp_path: Path) -> None:
    config = settings(tmp_path)
    (arch,) = config.targets
    assert config.base_for(arch) == "arm32v7/python"
    assert config.tags == ("3.6", "3.6-slim", "3.7", "3.7-slim")
    assert config.repo == "brewblox/rpi-python"
    assert arch.platform == "linux/arm/v7"
    assert arch.qemu_binary == "qemu-arm-static"
    assert config.push and not config.keep_going and config.jobs == 4
    assert config.docker_config == HOME / ".docker" / "config.json"
    assert config.source == "built-in defaults"


def test_the_projects_setup_cfg_holds_the_same_defaults() -> None:
    repo = REPO
    from_file = settings(repo)
    assert from_file.source == "setup.cfg"
    defaults = Config()
    assert (from_file.targets, from_file.tags, from_file.repo) == (defaults.targets, defaults.tags, defaults.repo)
    assert from_file.base_for(from_file.targets[0]) == defaults.base_for(defaults.targets[0]) == "arm32v7/python"


def test_layers_lowest_first(tmp_path: Path) -> None:
    (tmp_path / "setup.cfg").write_text("[xcompile]\nrepo = file/repo\ntags = 1 2\njobs = 2\nbase = file/base\n")
    env = {"XCOMPILE_REPO": "env/repo", "XCOMPILE_JOBS": "3"}
    config = settings(tmp_path, {"repo": "switch/repo"}, env)
    assert config.repo == "switch/repo"
    assert config.jobs == 3
    assert config.tags == ("1", "2")
    assert config.base == "file/base"
    assert config.source == "setup.cfg"


def test_pyproject_tool_section(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.xcompile]\ntags = ["3.9", "3.9-slim"]\npush = false\nkeep-going = true\n'
    )
    config = settings(tmp_path)
    assert config.tags == ("3.9", "3.9-slim")
    assert not config.push and config.keep_going


def test_setup_cfg_without_section_falls_through_to_pyproject(tmp_path: Path) -> None:
    (tmp_path / "setup.cfg").write_text("[flake8]\nmax-line-length = 100\n")
    (tmp_path / "pyproject.toml").write_text('[tool.xcompile]\nrepo = "from/pyproject"\n')
    assert settings(tmp_path).repo == "from/pyproject"


def test_settings_in_both_files_read_setup_cfg_and_say_so(tmp_path: Path) -> None:
    (tmp_path / "setup.cfg").write_text("[xcompile]\nrepo = from/setup\n")
    (tmp_path / "pyproject.toml").write_text('[tool.xcompile]\nrepo = "from/pyproject"\n')
    config, warnings = load({}, {}, tmp_path, HOME)
    assert config.repo == "from/setup"
    assert warnings == ["pyproject.toml: its [tool.xcompile] is not read — setup.cfg's [xcompile] is; keep one"]
    (tmp_path / "pyproject.toml").write_text("[tool.black]\n")  # no settings there: nothing to say
    assert load({}, {}, tmp_path, HOME)[1] == []


def test_explicit_config_file(tmp_path: Path) -> None:
    (tmp_path / "setup.cfg").write_text("[xcompile]\nrepo = not/this\n")
    (tmp_path / "ci.ini").write_text("[xcompile]\nrepo = this/one\n")
    config = settings(tmp_path, config_file=Path("ci.ini"))
    assert config.repo == "this/one"
    assert config.source == "ci.ini"


def test_explicit_config_file_missing_or_without_section(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config file nope\.cfg not found"):
        settings(tmp_path, config_file=Path("nope.cfg"))
    (tmp_path / "other.toml").write_text("[tool.black]\n")
    with pytest.raises(ConfigError, match=r"other.toml has no \[tool.xcompile\] section"):
        settings(tmp_path, config_file=Path("other.toml"))


def test_unknown_key_names_it_and_suggests(tmp_path: Path) -> None:
    (tmp_path / "setup.cfg").write_text("[xcompile]\nrepos = a/b\n")
    with pytest.raises(ConfigError) as err:
        settings(tmp_path)
    assert str(err.value) == "setup.cfg: unknown key 'repos' — did you mean 'repo'?"
    assert err.value.exit_code == 2


def test_unknown_env_variable_is_a_warning(tmp_path: Path) -> None:
    _, warnings = load({}, {"XCOMPILE_REPOS": "a/b"}, tmp_path, HOME)
    assert warnings == ["environment: unknown key 'XCOMPILE_REPOS' is ignored — did you mean 'repo'?"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[xcompile]\njobs = many\n", "setup.cfg: jobs: expected a whole number, got 'many'"),
        ("[xcompile]\njobs = 0\n", "setup.cfg: jobs: expected 1 to 64, got 0"),
        ("[xcompile]\npush = maybe\n", "setup.cfg: push: expected true or false, got 'maybe'"),
        ("[xcompile\nrepo = x\n", "setup.cfg: not a valid INI file"),
        (
            "[xcompile]\narch = armv9\n",
            "unknown architecture 'armv9' — did you mean 'arm32v7'? known: arm32v6, arm32v7",
        ),
        ("[xcompile]\ntags = 3.7;rm\n", "invalid tag '3.7;rm'"),
        ("[xcompile]\nrepo = Team/App\n", "invalid repository 'Team/App'"),
        ("[xcompile]\nbase = arm32v7/python:3.7\n", "invalid base image for arm32v7 'arm32v7/python:3.7': give"),
    ],
)
def test_bad_values(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "setup.cfg").write_text(text)
    with pytest.raises(UsageError) as err:
        settings(tmp_path)
    assert str(err.value).startswith(message)
    assert err.value.exit_code == 2


def test_env_bools_and_lists(tmp_path: Path) -> None:
    config = settings(tmp_path, env={"XCOMPILE_PUSH": "no", "XCOMPILE_TAGS": "a,b  c", "XCOMPILE_KEEP_GOING": "1"})
    assert not config.push and config.keep_going
    assert config.tags == ("a", "b", "c")
    # An empty variable is not set, unlike plumbum's envname flags.
    assert settings(tmp_path, env={"XCOMPILE_PUSH": ""}).push


def test_docker_config_follows_DOCKER_CONFIG(tmp_path: Path) -> None:
    assert settings(tmp_path, env={"DOCKER_CONFIG": "/etc/dc"}).docker_config == Path("/etc/dc/config.json")


def test_duplicate_tags_are_built_once(tmp_path: Path) -> None:
    config, warnings = load({"tags": ["a", "b", "a"]}, {}, tmp_path, HOME)
    assert config.tags == ("a", "b")
    assert warnings == ["tags: duplicates dropped, each tag is built once"]


def test_relative_report_is_relative_to_cwd(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    assert settings(tmp_path, {"report": "out/r.json"}).report == tmp_path / "out" / "r.json"
