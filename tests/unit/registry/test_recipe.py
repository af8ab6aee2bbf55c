"""The labels an image carries (registry/recipe.py): their names are a contract with every image
already pushed."""

from __future__ import annotations

from xcompile.registry import recipe


def test_the_labels_keep_the_names_pushed_images_carry() -> None:
    """Images already in registries carry these names, and whether a rebuild is needed, inspect and
    verify all read them: moving the code that writes them must not rename them. Written out here,
    not taken from the constants, so that a renamed constant fails."""
    made = recipe.labels("arm32v7/python:3.7", "sha256:" + "1" * 64, "2" * 64, "FROM {base}\n", qemu_version="1:10.0")
    pushed = {
        "org.opencontainers.image.base.name": "arm32v7/python:3.7",
        "org.opencontainers.image.base.digest": "sha256:" + "1" * 64,
        "xcompile.qemu.sha256": "2" * 64,
        "xcompile.qemu.version": "1:10.0",
        "xcompile.qemu.source": "unknown",
        "xcompile.qemu.host": "amd64",
        "xcompile.recipe": recipe.recipe("FROM {base}\n"),
    }
    assert made == pushed
    assert recipe.differences(made, pushed) == []
