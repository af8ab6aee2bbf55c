"""Step 4 (per image): build — the original's two-line Dockerfile, one `LABEL` line,
`docker build --platform --no-cache`."""

from __future__ import annotations

import json
import re

from xcompile.engine import Engine
from xcompile.errors import BaseUnavailable, CommandFailed
from xcompile.pipeline.context import Workspace
from xcompile.pipeline.plan import Image
from xcompile.system.runner import Runner

_MADE = re.compile(
    r"^Successfully built ([0-9a-f]{12,64})$"  # the classic builder
    r"|writing image (sha256:[0-9a-f]{64})"  # BuildKit
    r"|^([0-9a-f]{64})$",  # podman, last
    re.MULTILINE,
)


def dockerfile(image: Image, labels: dict[str, str]) -> str:
    # One LABEL line, not one `--label` each: the classic builder makes every
    # label switch a step of its own, with a container commit each. No labels
    # (a trial's image, never kept), no step.
    if not labels:
        return image.dockerfile
    return image.dockerfile + "LABEL " + " ".join(f"{key}={json.dumps(value)}" for key, value in labels.items()) + "\n"


def build(runner: Runner, engine: Engine, image: Image, work: Workspace, labels: dict[str, str]) -> str | None:
    """Build; returns what the builder said (its last lines; None in a dry run),
    from which ``made`` reads the new image's ID."""
    path = work.dockerfiles / image.dockerfile_name
    runner.write_file(path, dockerfile(image, labels), label=image.label)
    context = work.context(image.arch.qemu_binary)
    try:
        return runner.stream(*engine.build_cmd(image.platform, path, image.name, context), label=image.label)
    except CommandFailed as err:
        # Podman's build does not pull (--pull=never), and found no base for the platform: the one
        # here is made for another variant, which podman 4's inspect does not tell (pipeline/store.py).
        if re.search(rf"(?m)^Error: creating build container: {re.escape(image.base)}: image not known", err.output):
            msg = f"base {image.base} on this host is not made for {image.platform}: podman finds none for it"
            raise BaseUnavailable(msg, hint="give a base made for that platform, or pull the base for it") from err
        raise


def made(output: str | None) -> str | None:
    """The ID of the image a build made (or the start of it), where its output says
    it: also the output of a build that failed, or was cut, after its image was made."""
    found = [next(group for group in match.groups() if group) for match in _MADE.finditer(output or "")]
    return found[-1] if found else None
