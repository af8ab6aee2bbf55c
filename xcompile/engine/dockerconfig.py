"""The docker client config edit: ``"experimental": "enabled"``.

The file usually holds registry credentials (``auths``), so it is never
clobbered: every other key, its mode and its owner are kept, the write is
atomic, and a file that is not a JSON object is refused untouched.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from xcompile.engine import EXPERIMENTAL_SINCE_TEXT, Engine, Versions
from xcompile.engine.jsonfiles import read
from xcompile.errors import EnvironmentProblem
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


def step(engine: Engine, versions: Versions, path: Path, runner: Runner) -> str:
    """The flow's step 3: enable experimental where this docker client needs it; the line that says what happened."""
    if not engine.has_experimental:
        return f"experimental: docker only; nothing to do with {engine.name}"
    if not engine.needs_experimental(versions):
        return f"experimental: not needed with docker client {versions.client}"
    edit, written = enable_experimental(path, runner)
    line = edit.describe(done=written)
    if versions.client is None and edit.action != "unchanged":
        line += f" (only where the docker client is older than {EXPERIMENTAL_SINCE_TEXT})"
    return line


def _unwritable(path: Path, err: OSError) -> EnvironmentProblem:
    return EnvironmentProblem(
        f"cannot write {path}: {err.strerror or err}; left unchanged",
        hint="make its folder writable, or point DOCKER_CONFIG at another folder",
    )
