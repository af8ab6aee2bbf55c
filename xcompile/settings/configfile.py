"""The config file: which one a run reads (--config, else setup.cfg's [xcompile], else
pyproject.toml's [tool.xcompile]), and its section as raw keys and values. What each key takes
is settings/keys.py; the cascade that layers them is settings/config.py.
"""

from __future__ import annotations

import configparser
import sys
from pathlib import Path
from typing import Any

from xcompile.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib


def read_file(cwd: Path, explicit: Path | None) -> tuple[dict[str, Any], str]:
    if explicit is not None:
        path = explicit if explicit.is_absolute() else cwd / explicit
        if not path.is_file():
            msg = f"config file {explicit} {'is not a file' if path.exists() else 'not found'}"
            raise ConfigError(msg)
        section = _section(path)
        if section is None:
            where = "[tool.xcompile]" if path.suffix == ".toml" else "[xcompile]"
            msg = f"{explicit} has no {where} section"
            raise ConfigError(msg)
        return section, str(explicit)
    for name in ("setup.cfg", "pyproject.toml"):
        path = cwd / name
        if path.is_file():
            section = _section(path)
            if section is not None:
                return section, name
    return {}, "built-in defaults"


def has_section(path: Path) -> bool:
    """Whether a file that is not read holds settings (one that cannot be read holds none)."""
    try:
        return path.is_file() and _section(path) is not None
    except ConfigError:
        return False


def _section(path: Path) -> dict[str, Any] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        msg = f"cannot read {path}: {err}"
        raise ConfigError(msg) from None
    if path.suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            msg = f"{path.name}: not valid TOML: {err}"
            raise ConfigError(msg) from None
        section = data.get("tool", {}).get("xcompile", data.get("xcompile"))
        if section is not None and not isinstance(section, dict):
            msg = f"{path.name}: [tool.xcompile] must be a table"
            raise ConfigError(msg)
        return section
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text, source=path.name)
    except configparser.Error as err:
        first_line = str(err).splitlines()[0]
        msg = f"{path.name}: not a valid INI file: {first_line}"
        raise ConfigError(msg) from None
    if not parser.has_section("xcompile"):
        return None
    return dict(parser.items("xcompile"))
