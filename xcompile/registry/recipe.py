"""What an image is made of, as labels on it, and whether the registry's image is the same.

Every image carries seven labels: the base (OCI's base.name and base.digest),
the qemu inside (its SHA256, its version, where it came from, and the qemu
host: the machine whose CPU it is built for), and the
recipe (xcompile's version and the Dockerfile template). An image is
``unchanged`` when the registry's image under its tag carries the same base,
qemu host, qemu SHA256 and recipe: a build would make the same thing again, so none is
made and nothing is pushed. The qemu's version and source describe its bytes
for people (`xcompile inspect`); the SHA256 decides.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from xcompile import __version__

BASE_NAME = "org.opencontainers.image.base.name"
BASE_DIGEST = "org.opencontainers.image.base.digest"
QEMU_SHA256 = "xcompile.qemu.sha256"
QEMU_VERSION = "xcompile.qemu.version"
QEMU_SOURCE = "xcompile.qemu.source"
QEMU_HOST = "xcompile.qemu.host"
RECIPE = "xcompile.recipe"
_SAME = {BASE_DIGEST: "base", QEMU_HOST: "qemu host", QEMU_SHA256: "qemu", RECIPE: "recipe", BASE_NAME: "base name"}
"""The labels that decide whether an image is unchanged, each with its word."""


def recipe(template: str) -> str:
    """xcompile's version and the Dockerfile template (the base left out: it has labels of its own)."""
    return f"xcompile {__version__}; Dockerfile sha256:{hashlib.sha256(template.encode()).hexdigest()}"


def labels(
    base_name: str,
    base_digest: str,
    qemu_sha256: str,
    template: str,
    *,
    qemu_version: str = "",
    qemu_source: str = "",
    qemu_host: str = "amd64",
) -> dict[str, str]:
    return {
        BASE_NAME: base_name,
        BASE_DIGEST: base_digest,
        QEMU_SHA256: qemu_sha256,
        QEMU_VERSION: qemu_version or "unknown",
        QEMU_SOURCE: qemu_source or "unknown",
        QEMU_HOST: qemu_host,
        RECIPE: recipe(template),
    }


def differences(wanted: Mapping[str, str], found: Mapping[str, str]) -> list[str]:
    """Which of the deciding labels differ, in words ([] when the image is the same).
    A qemu that changed is named by its old and new version where both are known."""
    said = []
    for key, word in _SAME.items():
        if key not in wanted or found.get(key) == wanted[key]:
            continue
        if key == QEMU_HOST:
            # An image from before the label was built for amd64, the only qemu host then.
            was = found.get(QEMU_HOST, "amd64 (no label)")
            said.append(f"qemu host {was} -> {wanted[key]}")
            continue
        if key == QEMU_SHA256 and found.get(QEMU_HOST, "amd64") != wanted.get(QEMU_HOST, "amd64"):
            continue  # another CPU's qemu has other bytes: the host's change says it
        old, new = found.get(QEMU_VERSION), wanted.get(QEMU_VERSION)
        if key == QEMU_SHA256 and old and new and old != new:
            word = f"qemu {old} -> {new}"
        said.append(word)
    return said
