"""What each setting takes: its parser, its spellings (switch, file key, XCOMPILE_* variable), and its choices.

A parser takes the raw value (a string from a file, a variable or a switch;
a TOML value) and the name to blame, and returns the value or raises
ConfigError. ``KEYS`` is every key a file or variable may set; ``config.load``
runs the cascade over them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from xcompile import engine
from xcompile.errors import ConfigError
from xcompile.host import platforms
from xcompile.urls import redact

DEFAULT_JOBS = 4
DEFAULT_PROOF_TIMEOUT = 300
QEMU_SOURCES = ("auto", "path", "apt", "download")
REBUILD = ("changed", "always")
PULL = ("always", "missing", "never")


def _text(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        msg = f"{key}: expected a non-empty string, got {value!r}"
        raise ConfigError(msg)
    return value.strip()


def _words(value: Any, key: str) -> tuple[str, ...]:
    if isinstance(value, list):
        # TOML's `tags = [3.9, 3.10]` are floats, and 3.10 would become "3.1".
        odd = next((item for item in value if not isinstance(item, str)), None)
        if odd is not None:
            msg = f"{key}: expected strings, got {odd!r} ({type(odd).__name__})"
            raise ConfigError(
                msg,
                hint="quote each item: TOML reads 3.10 as the number 3.1",
            )
        items = value
    else:
        items = re.split(r"[\s,]+", _text(value, key))
    words = tuple(item.strip() for item in items if item.strip())
    if not words:
        msg = f"{key}: expected at least one value"
        raise ConfigError(msg)
    return words


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if not isinstance(value, str):
        msg = f"{key}: expected true or false, got {value!r}"
        raise ConfigError(msg)
    word = str(value).strip().lower()
    if word in _TRUE | _FALSE:
        return word in _TRUE
    msg = f"{key}: expected true or false, got {value!r}"
    raise ConfigError(msg)


def _command(value: Any, key: str) -> str | tuple[str, ...]:
    """A shell line (a string), or exec form (a TOML list of strings)."""
    if isinstance(value, list):
        if not value or not all(isinstance(item, str) and item for item in value):
            msg = f"{key}: expected a shell line or a list of non-empty strings, got {value!r}"
            raise ConfigError(msg)
        return tuple(value)
    return _text(value, key)


def _whole(low: int, high: int) -> Callable[[Any, str], int]:
    def parse(value: Any, key: str) -> int:
        # int(True) is 1 and int(2.5) is 2: a boolean or a fraction is a mistake, not a number.
        if not isinstance(value, (int, str)) or isinstance(value, bool):
            msg = f"{key}: expected a whole number, got {value!r}"
            raise ConfigError(msg)
        try:
            number = int(value)
        except (TypeError, ValueError):
            msg = f"{key}: expected a whole number, got {value!r}"
            raise ConfigError(msg) from None
        if not low <= number <= high:
            msg = f"{key}: expected {low} to {high}, got {number}"
            raise ConfigError(msg)
        return number

    return parse


def _path(value: Any, key: str) -> Path:
    return Path(_text(value, key))


def _choice(*choices: str) -> Callable[[Any, str], str]:
    def parse(value: Any, key: str) -> str:
        word = _text(value, key).lower()
        if word not in choices:
            msg = f"{key}: expected one of {', '.join(choices)}, got {value!r}"
            raise ConfigError(msg)
        return word

    return parse


def _sha256(value: Any, key: str) -> str:
    digest = _text(value, key).lower()
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        msg = f"{key}: expected 64 hex digits (a SHA256), got {value!r}"
        raise ConfigError(msg)
    return digest


def _qemu_version(value: Any, key: str) -> str:
    version = _text(value, key)
    if not re.fullmatch(r"(\d+:)?\d[A-Za-z0-9.+~-]*", version):
        msg = f"{key}: {version[:60]!r} is not a qemu version"
        raise ConfigError(
            msg,
            hint="give a Debian version (1:7.2+dfsg-7+deb12u18+b3) or an upstream prefix (7.2, 10.0, 11.1)",
        )
    return version


def _url(value: Any, key: str) -> str:
    url = _text(value, key)
    if not re.match(r"https?://[^/\s]+", url):
        # Shown without credentials or query: a mistyped URL may still carry a password.
        msg = f"{key}: {redact(url)!r} is not an http(s) URL"
        raise ConfigError(msg)
    return url.rstrip("/")


def _mirror(value: Any, key: str) -> str:
    """An archive's base URL: paths are joined to it, so it has no query or fragment."""
    url = _url(value, key)
    if "?" in url or "#" in url:
        msg = f"{key}: {redact(url)}: a query or fragment cannot be part of an archive's base URL"
        raise ConfigError(msg, hint="give the archive's base URL, e.g. http://HOST/debian")
    return url


def _arches(value: Any, key: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(platforms.get(word).name for word in _words(value, key)))


def _qemu_host(value: Any, key: str) -> str:
    """A row of the arch table whose static qemu the archive has (BY_DEBIAN): amd64, arm64v8, ..."""
    try:
        arch = platforms.get(_text(value, key))
    except ConfigError as err:  # which setting it was: an arch name alone does not say
        msg = f"{key}: {err.message}"
        raise ConfigError(msg, hint=err.hint) from None
    if arch.debian_arch not in platforms.BY_DEBIAN:
        msg = f"{key}: the archive has no static qemu built for {arch.name}"
        raise ConfigError(msg, hint=f"use one of {', '.join(a.name for a in platforms.BY_DEBIAN.values())}")
    return arch.name


def _cells(value: Any, key: str) -> tuple[str, ...]:
    """TAG/ARCH words, the arch by its row name (3.7/aarch64 is 3.7/arm64v8)."""
    cells = []
    for word in _words(value, key):
        tag, slash, arch = word.partition("/")
        if not slash or not tag or not arch:
            msg = f"{key}: expected TAG/ARCH, got {word!r}"
            raise ConfigError(msg)
        cells.append(f"{tag}/{platforms.get(arch).name}")
    return tuple(dict.fromkeys(cells))


KEYS: dict[str, Callable[[Any, str], Any]] = {
    "image": _text,
    "base": _text,
    "tags": _words,
    "repo": _text,
    "engine": _choice(*engine.CHOICES),
    "arches": _arches,
    "push": _bool,
    "verify": _bool,
    "manifest": _bool,
    "insecure": _bool,
    "jobs": _whole(1, 64),
    "proof_timeout": _whole(1, 3600),
    "keep_going": _bool,
    "report": _path,
    "qemu_source": _choice(*QEMU_SOURCES),
    "rebuild": _choice(*REBUILD),
    "pull": _choice(*PULL),
    "mirror": _mirror,
    "suite": _text,
    "keyring": _path,
    "allow_unsigned": _bool,
    "offline": _bool,
    "qemu_url": _url,
    "qemu_sha256": _sha256,
    "qemu_version": _qemu_version,
    "qemu_host": _qemu_host,
    "proof_command": _command,
}
SWITCH_KEYS: dict[str, Callable[[Any, str], Any]] = {"only": _cells}
"""Keys only a switch sets: they describe one run, not a project."""
ALIASES = {"arch": "arches", "tag": "tags", "source": "qemu_source"}
"""Other spellings a file, variable or switch may use for a key."""
PER_ARCH: dict[str, tuple[str, Callable[[Any, str], Any]]] = {
    "base_": ("bases", _text),
    "proof_command_": ("proof_commands", _command),
}
"""``base_<arch>`` overrides the base of one architecture, ``proof_command_<arch>`` its proof command:
each prefix with the Config field that holds the (arch, value) pairs, and the value's parser."""
ENV_PREFIX = "XCOMPILE_"


def repeatable(key: str) -> bool:
    """Does the key take several values (a repeatable switch)?"""
    return (KEYS.get(key) or SWITCH_KEYS.get(key)) in (_words, _arches, _cells)


def switch_names(key: str) -> tuple[str, ...]:
    """The switch spellings of a key: its own name and its ALIASES, the one
    shown first. A repeatable key is shown by its singular alias (--arch)."""
    aliases = [alias for alias, target in ALIASES.items() if target == key]
    names = [*aliases, key] if repeatable(key) else [key, *aliases]
    return tuple(name.replace("_", "-") for name in names)
