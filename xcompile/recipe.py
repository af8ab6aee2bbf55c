"""What an image is made of, as labels on it, and whether the registry's image is the same.

An image is ``unchanged`` when the registry's image under its tag carries the
same four labels: the base (OCI's base.name and base.digest), the qemu's
SHA256, and the recipe (xcompile's version and the Dockerfile template). Then
a build would make the same thing again, so none is made and nothing is pushed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from xcompile import __version__

BASE_NAME = "org.opencontainers.image.base.name"
BASE_DIGEST = "org.opencontainers.image.base.digest"
QEMU_SHA256 = "xcompile.qemu.sha256"
RECIPE = "xcompile.recipe"


def recipe(template: str) -> str:
    """xcompile's version and the Dockerfile template (the base left out: it has labels of its own)."""
    return f"xcompile {__version__}; Dockerfile sha256:{hashlib.sha256(template.encode()).hexdigest()}"


def labels(base_name: str, base_digest: str, qemu_sha256: str, template: str) -> dict[str, str]:
    return {
        BASE_NAME: base_name,
        BASE_DIGEST: base_digest,
        QEMU_SHA256: qemu_sha256,
        RECIPE: recipe(template),
    }


def differences(wanted: Mapping[str, str], found: Mapping[str, str]) -> list[str]:
    """Which of the labels differ, in words ([] when the image is the same)."""
    names = {BASE_DIGEST: "base", QEMU_SHA256: "qemu", RECIPE: "recipe", BASE_NAME: "base name"}
    return [names.get(key, key) for key, value in wanted.items() if found.get(key) != value]
