"""The docker client config edit: ``"experimental": "enabled"``.

The file usually holds registry credentials (``auths``), so it is never
clobbered: every other key, its mode and its owner are kept, the write is
atomic, and a file that is not a JSON object is refused untouched.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from xcompile.engine import EXPERIMENTAL_SINCE_TEXT, Engine, Versions
from xcompile.errors import ConfigError, EnvironmentProblem
from xcompile.system.runner import Runner

KEY = "experimental"
VALUE = "enabled"
NEW_FILE_MODE = 0o600  # it may come to hold credentials


@dataclass(frozen=True)
class Edit:
    path: Path
    action: Literal["create", "add", "change", "unchanged"]
    current: Any = None
    """The value already there, when the action is "change" or "unchanged"."""

    def describe(self, *, done: bool) -> str:
        setting = f'"{KEY}": "{VALUE}"'
        if self.action == "unchanged":
            return f"{self.path}: {KEY} already set to {json.dumps(self.current)}, left as it is"
        verb = ("set" if done else "would set") + f" {setting} in {self.path}"
        if self.action == "change":
            return verb + f" (it was {json.dumps(self.current)})"
        return verb + (" (new file)" if self.action == "create" else "")


def plan(path: Path) -> Edit:
    """Read and check the file; say what enabling would do. Writes nothing."""
    if path.is_symlink() and not path.exists():
        msg = f"{path} is a link to {os.readlink(path)}, which does not exist; left as it is"
        raise EnvironmentProblem(
            msg,
            hint="fix or remove the link, or point DOCKER_CONFIG at another folder",
        )
    data = read(path)
    if data is None:
        return Edit(path, "create")
    if KEY not in data:
        return Edit(path, "add")
    return Edit(path, "unchanged" if data[KEY] == VALUE else "change", data[KEY])


def enable_experimental(path: Path, runner: Runner) -> tuple[Edit, bool]:
    """Set "experimental": "enabled", keeping every other key. Returns the edit,
    and whether it was written (not in a dry run, not when already set)."""
    edit = plan(path)
    if edit.action == "unchanged":
        return edit, False
    data = read(path) or {}
    data[KEY] = VALUE
    # Write through a symlink (dotfile managers link config.json) so the link stays.
    target = path.resolve() if path.is_symlink() else path
    try:
        written = runner.write_file(target, json.dumps(data, indent="\t") + "\n", echo=False, mode=NEW_FILE_MODE)
    except OSError as err:
        raise _unwritable(path, err) from None
    return edit, written


def step(shapes: Engine, versions: Versions, path: Path, runner: Runner) -> str:
    """The flow's step 3: enable experimental where this docker client needs it; the line that says what happened."""
    if not shapes.has_experimental:
        return f"experimental: docker only; nothing to do with {shapes.name}"
    if not shapes.needs_experimental(versions):
        return f"experimental: not needed with docker client {versions.client}"
    edit, written = enable_experimental(path, runner)
    line = edit.describe(done=written)
    if versions.client is None and edit.action != "unchanged":
        line += f" (only where the docker client is older than {EXPERIMENTAL_SINCE_TEXT})"
    return line


def read(path: Path) -> dict[str, Any] | None:
    """The parsed object, or None when there is no file yet."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        msg = f"{path} is a folder, not a docker config file"
        raise ConfigError(msg) from None
    except OSError as err:
        msg = f"cannot read {path}: {err.strerror}"
        raise EnvironmentProblem(msg) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        msg = f"{path} is not UTF-8 text; left unchanged"
        raise ConfigError(msg) from None
    if not text.strip():
        return {}  # docker itself reads an empty config as no settings
    try:
        data = json.loads(
            text,
            parse_float=_finite,
            parse_int=_fits_a_double,
            parse_constant=_no_constant,
            object_pairs_hook=_no_repeated_keys,
        )
    except json.JSONDecodeError as err:
        msg = f"{path} is not valid JSON (line {err.lineno}, column {err.colno}: {err.msg}); left unchanged"
        raise ConfigError(
            msg,
            hint=_FIX_IT,
        ) from None
    except _Unreadable as err:
        msg = f"{path} {err}; left unchanged"
        raise ConfigError(msg, hint=_FIX_IT) from None
    except RecursionError:
        msg = f"{path} is nested too deeply to read; left unchanged"
        raise ConfigError(msg, hint=_FIX_IT) from None
    if not isinstance(data, dict):
        kind = "an array" if isinstance(data, list) else f"a JSON {type(data).__name__}"
        msg = f"{path} holds {kind}, not a JSON object; left unchanged"
        raise ConfigError(
            msg,
            hint="a docker config is a JSON object such as {}",
        )
    return data


_FIX_IT = "fix or remove it, then run again"


class _Unreadable(ValueError):
    """A number docker cannot read: it reads every JSON number as a float64,
    and Python would write 1e400 back as `Infinity`."""


def _no_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json keeps the last of repeated keys: a second "auths" would silently drop the first one's credentials.
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            msg = f"has the key {json.dumps(key)} twice, which docker would read as one"
            raise _Unreadable(msg)
        seen[key] = value
    return seen


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        msg = f"holds the number {_short(text)}, beyond what docker can read (a float64)"
        raise _Unreadable(msg)
    return value


def _fits_a_double(text: str) -> int:
    # float() has no digit limit and turns a huge integer into inf; int() of
    # 5000 digits raises ValueError on Python 3.11+.
    if not math.isfinite(float(text)):
        digits = len(text.lstrip("-"))
        msg = f"holds a {digits}-digit integer, beyond what docker can read (a float64)"
        raise _Unreadable(msg)
    return int(text)


def _no_constant(text: str) -> float:
    msg = f"holds {text}, which is not JSON"
    raise _Unreadable(msg)


def _short(text: str) -> str:
    return text if len(text) <= 20 else text[:17] + "..."


def _unwritable(path: Path, err: OSError) -> EnvironmentProblem:
    return EnvironmentProblem(
        f"cannot write {path}: {err.strerror or err}; left unchanged",
        hint="make its folder writable, or point DOCKER_CONFIG at another folder",
    )
