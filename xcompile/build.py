"""Step 3: build — the original's two-line Dockerfile, one `LABEL` line, `docker build --platform --no-cache`."""

from __future__ import annotations

import json
import re
from pathlib import Path

from xcompile import engine
from xcompile.plan import Image
from xcompile.runner import Runner

_BUILT = re.compile(r"^Successfully built ([0-9a-f]{12,64})$", re.MULTILINE)


def dockerfile(image: Image, labels: dict[str, str]) -> str:
    # One LABEL line, not one `--label` each: the classic builder makes every
    # label switch a step of its own, with a container commit each.
    return image.dockerfile + "LABEL " + " ".join(f"{key}={json.dumps(value)}" for key, value in labels.items()) + "\n"


def build(runner: Runner, shapes: engine.Engine, image: Image, context: Path, labels: dict[str, str]) -> str | None:
    """Build; returns the start of the new image's ID where the builder printed it."""
    path = context / image.dockerfile_name
    runner.write_file(path, dockerfile(image, labels), label=image.label)
    out = runner.stream(*shapes.build_cmd(image.platform, path, image.name, context), label=image.label)
    found = _BUILT.search(out or "")
    return found.group(1) if found else None
