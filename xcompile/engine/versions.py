"""What an engine says of itself: its client's and daemon's versions, its machine, and
whether docker's experimental flag is needed (the flow's step 3)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

EngineName = Literal["docker", "podman"]
# `docker manifest` (and `build --platform` before 19.03) sat behind the
# client's experimental flag until docker 20.10. Podman has no such flag.
EXPERIMENTAL_SINCE = (20, 10)
EXPERIMENTAL_SINCE_TEXT = "20.10"
# Before 19.03 the daemon itself had to run with experimental for --platform.
DAEMON_PLATFORM_SINCE = (19, 3)


@dataclass(frozen=True)
class Versions:
    engine: EngineName = "docker"
    client: str | None = None
    """None where unknown (a dry run asks nothing)."""
    server: str | None = None
    """The daemon's version; None for podman, which has none."""
    server_experimental: bool | None = None
    arch: str | None = None
    """The engine's machine, as the engine says it (amd64, arm64): docker's server Arch, podman's
    server (else client: podman runs here) OsArch; None where unknown (a dry run)."""


def parse(engine: EngineName, out: str | None) -> Versions:
    """What `version --format '{{json .}}'` said (None: not asked, a dry run)."""
    info = _json_object(out)
    server, client = _json_object(info.get("Server")), _json_object(info.get("Client"))
    return Versions(
        engine,
        _str_or_none(client.get("Version")),
        _str_or_none(server.get("Version")),
        _server_experimental(server),
        _machine_arch(server) or (None if server else _machine_arch(client)),
    )


def _json_object(text: object) -> dict[str, Any]:
    """``text`` as a JSON object (or the object itself); {} for anything else."""
    if isinstance(text, str):
        try:
            text = json.loads(text)
        except json.JSONDecodeError:
            return {}
    return text if isinstance(text, dict) else {}


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _machine_arch(part: dict[str, Any]) -> str | None:
    """docker's ``Arch`` (amd64), or podman's ``OsArch`` (linux/amd64), of a `version` part."""
    arch = _str_or_none(part.get("Arch")) or (_str_or_none(part.get("OsArch")) or "").rpartition("/")[2]
    return arch or None


def _server_experimental(server: dict[str, Any]) -> bool | None:
    for component in server.get("Components") or []:
        if isinstance(component, dict) and component.get("Name") == "Engine":
            details = component.get("Details")
            flag = details.get("Experimental") if isinstance(details, dict) else None
            return None if flag is None else str(flag).lower() == "true"
    flag = server.get("Experimental")
    return None if flag is None else bool(flag)


def needs_experimental(client_version: str | None) -> bool:
    """Unknown (a dry run) counts as needing it: the plan shows the edit."""
    return client_version is None or older_than(client_version, EXPERIMENTAL_SINCE)


def older_than(version: str | None, since: tuple[int, int]) -> bool:
    found = re.match(r"(\d+)\.(\d+)", version or "")
    return found is not None and (int(found.group(1)), int(found.group(2))) < since
