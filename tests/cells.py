"""A job of tags x arches as CI matrix cells run it (xcompile matrix, build --only, join): its
project folder, a runner of its own, and what a pushed list holds. The tests of matrix and join in
both tiers share it."""

from __future__ import annotations

from pathlib import Path

from conftest import Registry

from xcompile.host import platforms

ARCHES = ("amd64", "arm32v7", "arm64v8")
TAGS = ("3.7", "3.7-slim")


def project(folder: Path, repo: str, bases: dict[str, str], tags: tuple[str, ...] = TAGS) -> Path:
    """A project folder whose setup.cfg asks for tags x arches, with per-arch bases."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["[xcompile]", f"repo = {repo}", f"tags = {' '.join(tags)}", f"arches = {' '.join(ARCHES)}"]
    lines += [f"base_{arch} = {base}" for arch, base in bases.items()]
    (folder / "setup.cfg").write_text("\n".join(lines) + "\n")
    return folder


def runner_env(user_env: dict[str, str], tmp_path: Path, name: str) -> dict[str, str]:
    """A CI runner of its own: its own docker config and temp folder."""
    (tmp_path / name / "tmp").mkdir(parents=True)
    return {**user_env, "DOCKER_CONFIG": str(tmp_path / name / "docker"), "TMPDIR": str(tmp_path / name / "tmp")}


def list_platforms(registry: Registry, name: str, tag: str) -> dict[str, str]:
    """platform (os/architecture[/variant]) -> member digest of a manifest list."""
    _, index = registry.manifest(name, tag)
    assert index["mediaType"] in (
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.index.v1+json",
    ), index
    found = {}
    for member in index["manifests"]:  # type: ignore[union-attr]
        p = member["platform"]
        found["/".join(x for x in (p["os"], p["architecture"], p.get("variant")) if x)] = member["digest"]
    return found


def arch_of(platform: str) -> str:
    """The row a list's platform names (arm64 with or without v8)."""
    os_, architecture, variant = [*platform.split("/"), ""][:3]
    (row,) = [a for a in ARCHES if platforms.get(a).matches(os_, architecture, variant)]
    return row
