"""The docker engine: whether it answers, its versions, and what they need."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from xcompile.errors import CommandFailed, DockerUnavailable
from xcompile.runner import Runner

DOCKER_PROBE_TIMEOUT = 30.0
# `docker manifest` (and `build --platform` before 19.03) sat behind the
# client's experimental flag until docker 20.10.
EXPERIMENTAL_SINCE = (20, 10)
EXPERIMENTAL_SINCE_TEXT = "20.10"
# Before 19.03 the daemon itself had to run with experimental for --platform.
DAEMON_PLATFORM_SINCE = (19, 3)


@dataclass(frozen=True)
class DockerVersions:
    client: str | None = None
    server: str | None = None
    server_experimental: bool | None = None


def versions(runner: Runner) -> DockerVersions:
    """Both versions, from the one command that needs the daemon to answer."""
    try:
        out = runner.run("docker", "version", "--format", "{{json .}}", timeout=DOCKER_PROBE_TIMEOUT)
    except CommandFailed as err:
        raise _docker_unavailable(err) from None
    if runner.dry_run:
        return DockerVersions()
    try:
        info = json.loads(out)
    except json.JSONDecodeError:
        return DockerVersions()
    return DockerVersions(
        client=(info.get("Client") or {}).get("Version"),
        server=(info.get("Server") or {}).get("Version"),
        server_experimental=_server_experimental(info.get("Server") or {}),
    )


def _server_experimental(server: dict[str, Any]) -> bool | None:
    for component in server.get("Components") or []:
        if component.get("Name") == "Engine":
            flag = (component.get("Details") or {}).get("Experimental")
            return None if flag is None else str(flag).lower() == "true"
    flag = server.get("Experimental")
    return None if flag is None else bool(flag)


def needs_experimental(client_version: str | None) -> bool:
    """Unknown (a dry run) counts as needing it: the plan shows the edit."""
    return client_version is None or older_than(client_version, EXPERIMENTAL_SINCE)


def older_than(version: str | None, since: tuple[int, int]) -> bool:
    found = re.match(r"(\d+)\.(\d+)", version or "")
    return found is not None and (int(found.group(1)), int(found.group(2))) < since


def _docker_unavailable(err: CommandFailed) -> DockerUnavailable:
    text = err.stderr or err.stdout
    if err.retcode is None:
        return DockerUnavailable(
            f"docker daemon did not answer within {DOCKER_PROBE_TIMEOUT:g} s",
            hint="check that dockerd is running and healthy",
        )
    found = re.search(r"Cannot connect to the Docker daemon at (\S+?)\.? Is the docker daemon running", text)
    if found:
        return DockerUnavailable(
            f"docker daemon not reachable at {found.group(1)}",
            hint="start it (e.g. `sudo systemctl start docker`, or `sudo dockerd &`)",
        )
    if "permission denied" in text.lower():
        return DockerUnavailable(
            "permission denied on the docker daemon's socket",
            hint="add yourself to the docker group, or run as root",
        )
    return DockerUnavailable(f"docker daemon not usable: {err}")
