"""Leftovers of other work on the host, made on purpose and removed exactly.

A host that has done other work holds dangling images (one held 120), stopped
containers and tags that no test made. The suite must pass there: a check of
host state compares sets, and only what the test session made (its label), never
docker's listing order, nor a host taken to be empty. ``seeded`` makes such a
host in docker's or podman's store, then removes exactly what it made:

- ``DANGLING`` untagged images, each with a file of its own, all created in the
  same second (so that `images` lists them in no stable order: docker sorts by
  the time alone);
- the same kind of image under unrelated tags, two of them under the names
  trial images take (``xcompile-trial-*/*``);
- ``CONTAINERS`` stopped containers named as proof containers are
  (``xcompile-proof-*``), as an earlier run that was killed would leave them.

The images come from one archive written here (`docker load`, `podman load`),
not from builds: no base, no build cache, and the same second for every one.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

DANGLING = 24
TAGGED = 4
CONTAINERS = 3
LABEL = "xcompile-test-leftover"
"""On every seeded image and so every seeded container, valued with the seed's ID."""
CREATED = "2026-01-02T03:04:05Z"
PODMAN = ["env", "-u", "DOCKER_CONFIG", "podman"]
"""Podman 4 stops on a DOCKER_CONFIG folder without config.json (a CI job's fresh one); it needs none here."""


@dataclass
class Leftovers:
    seed: str
    image_ids: set[str] = field(default_factory=set)
    tags: list[str] = field(default_factory=list)
    containers: set[str] = field(default_factory=set)


def _tar_bytes(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def archive(seed: str, count: int) -> tuple[bytes, list[str]]:
    """A `docker save` archive of ``count`` untagged images, each one file of its own;
    and their IDs (sha256:<config digest>), as both engines name them."""
    members: dict[str, bytes] = {}
    manifest, ids = [], []
    for number in range(count):
        layer = _tar_bytes({"leftover": f"{seed} {number}\n".encode()})
        diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "created": CREATED,
                "config": {"Cmd": ["/leftover"], "Labels": {LABEL: seed}},
                "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                "history": [{"created": CREATED, "created_by": "xcompile test leftover"}],
            },
            sort_keys=True,
        ).encode()
        digest = hashlib.sha256(config).hexdigest()
        members[f"{digest}.json"] = config
        members[f"{number}/layer.tar"] = layer
        manifest.append({"Config": f"{digest}.json", "RepoTags": None, "Layers": [f"{number}/layer.tar"]})
        ids.append(f"sha256:{digest}")
    members["manifest.json"] = json.dumps(manifest).encode()
    return _tar_bytes(members), ids


def run(program: list[str], *args: str, stdin: bytes | None = None, check: bool = True) -> str:
    done = subprocess.run([*program, *args], input=stdin, capture_output=True, timeout=120, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join([*program, *args])}: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout.decode(errors="replace")


@contextlib.contextmanager
def seeded(program: list[str]) -> Iterator[Leftovers]:
    """Leftovers in the store of ``program`` (["docker"], or ``PODMAN``), removed
    exactly afterwards, whatever happened."""
    made = Leftovers(uuid.uuid4().hex[:10])
    data, ids = archive(made.seed, DANGLING + TAGGED)
    try:
        run(program, "load", stdin=data)
        made.image_ids.update(ids)
        for number, image in enumerate(ids[DANGLING:]):
            repo = f"xcompile-trial-left{made.seed}/image" if number < 2 else f"xcompile-leftover-{made.seed}/app"
            made.tags.append(f"{repo}:t{number}")
            run(program, "tag", image, made.tags[-1])
        for number in range(CONTAINERS):
            name = f"xcompile-proof-left{made.seed}{number}"
            made.containers.add(run(program, "create", "--name", name, ids[number], "/leftover").strip())
        yield made
    finally:
        remove(program, made)


def remove(program: list[str], made: Leftovers) -> None:
    """Exactly what ``seeded`` made: its containers, its tags, its images, by ID."""
    if made.containers:
        run(program, "rm", "--force", *made.containers, check=False)
    if made.tags:
        run(program, "rmi", *made.tags, check=False)
    if made.image_ids:
        run(program, "rmi", *made.image_ids, check=False)


def still_there(program: list[str], made: Leftovers) -> set[str]:
    """What of ``made`` the store still holds, asked by ID: podman's `images` lists only
    part of its store while another run removes images (it says an image "may be corrupted")."""
    found = set()
    for kind, ids in (("image", made.image_ids), ("container", made.containers)):
        if ids:
            out = run(program, kind, "inspect", "--format", "{{.Id}}", *sorted(ids), check=False)
            found.update(line.strip() for line in out.splitlines() if line.strip())
    # Podman prints an image's ID without "sha256:".
    return {f"sha256:{one}" if f"sha256:{one}" in made.image_ids else one for one in found}
