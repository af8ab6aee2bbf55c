"""The one reader of docker's and podman's JSON config and auth files (``config.json``,
``auth.json``, the legacy ``.dockercfg``), read as docker reads them, with one policy for a
file that cannot be read.

Docker itself warns about a config file it cannot read and goes on without it. So do we,
for a file the engine looks for by default: it is said once, and read as holding no
login. A file the user named (DOCKER_CONFIG, REGISTRY_AUTH_FILE) is an error to fix, and
so is any file the experimental edit must change: a file that cannot be read is never
rewritten.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from xcompile.errors import ConfigError, EnvironmentProblem, XcompileError
from xcompile.system.terminal import Say


def read(path: Path, *, warn: Say | None = None) -> dict[str, Any] | None:
    """The file's object, or None where there is none. Where it cannot be read: with ``warn``
    (a file the engine looks for by default), the line that says so goes there and the
    answer is None; without (a file the user named, or one to be edited), the error is raised."""
    try:
        return _parse(path)
    except XcompileError as err:
        if warn is None:
            raise
        warn(
            f"warning: {err.message.removesuffix('; left unchanged')}; read as holding no login, as docker reads it",
            None,
        )
        return None


def _parse(path: Path) -> dict[str, Any] | None:
    """The parsed object, or None when there is no file yet; raises where docker could not read it."""
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
