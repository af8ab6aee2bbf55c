"""What a registry serves, read as a registry's content must be: and whatever it says, shown escaped.

- Text from outside (labels, digests, an archive's fields) reaches the terminal with its control
  characters escaped (`\\x1b`), never as a screen clear or a window title.
- A digest is `sha256:` and 64 hex digits, and what is read by digest hashes to it; a manifest has
  the fields its media type requires; a list holds at most 64 members, each a digest and a platform.
  Anything else is "cannot read".
- `inspect` of a registry it cannot reach is an environment problem: exit 3.

The registries are stand-ins on pytest-httpserver (127.0.0.1, kernel-assigned ports), answering as a
distribution registry does; the archive is tests/debian_archive.py's, signed, on another.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path

import pytest
from conftest import free_port, run_in_process
from pytest_httpserver import HTTPServer

from xcompile.registry import IMAGE_TYPES, LIST_TYPES, recipe

CONFIG_TYPE = "application/vnd.docker.container.image.v1+json"
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
"""A control character other than a line break or a tab: what the terminal would act on."""
SCREEN = "\x1b[2J\x1b]0;PWNED\x07"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Stand:
    """A registry's answers for team/app, as the test sets them."""

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.host = f"127.0.0.1:{server.port}"

    def blob(self, data: bytes) -> str:
        digest = sha(data)
        self.server.expect_request(f"/v2/team/app/blobs/{digest}").respond_with_data(data)
        return digest

    def manifest(self, ref: str, body: bytes, *, media_type: str = IMAGE_TYPES[0], digest: str | None = None) -> None:
        """``body`` under ``ref``, with the digest header a registry sends (``digest`` in place of the true one)."""
        headers = {"Docker-Content-Digest": sha(body) if digest is None else digest}
        self.server.expect_request(f"/v2/team/app/manifests/{ref}").respond_with_data(
            body, content_type=media_type, headers=headers
        )

    def image(self, labels: dict[str, str], platform: tuple[str, str, str] = ("linux", "arm", "v7")) -> bytes:
        """An image's config and manifest, the manifest served under its digest; its bytes."""
        os_, architecture, variant = platform
        config = {"os": os_, "architecture": architecture, "variant": variant, "config": {"Labels": labels}}
        data = json.dumps(config).encode()
        body = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": IMAGE_TYPES[0],
                "config": {"mediaType": CONFIG_TYPE, "size": len(data), "digest": self.blob(data)},
                "layers": [],
            }
        ).encode()
        self.manifest(sha(body), body)
        return body

    def requests_for(self, what: str) -> list[str]:
        return [request.path for request, _ in self.server.log if what in request.path]


def a_list(members: list[dict[str, object]]) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": LIST_TYPES[0], "manifests": members}).encode()


def member(body: bytes, platform: object = None) -> dict[str, object]:
    return {
        "mediaType": IMAGE_TYPES[0],
        "size": len(body),
        "digest": sha(body),
        "platform": {"os": "linux", "architecture": "arm", "variant": "v7"} if platform is None else platform,
    }


def errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("xcompile: error:")]


@pytest.fixture
def stand(httpserver: HTTPServer) -> Stand:
    return Stand(httpserver)


@pytest.fixture
def env(user_env: dict[str, str]) -> dict[str, str]:
    return user_env


# --- 3. what the terminal is given ------------------------------------------------------------


def test_inspect_shows_labels_with_their_control_characters_escaped(
    stand: Stand, env: dict[str, str], tmp_path: Path
) -> None:
    """A label that would clear the screen and retitle the window, one that would forge a line of
    its own, and one Python cannot even encode (a lone surrogate): each shown escaped, on its line."""
    labels = {
        recipe.BASE_NAME: SCREEN,
        recipe.QEMU_SOURCE: "debian\n  recipe        forged",
        recipe.QEMU_VERSION: "\x9b31m\x7f\ud800",
    }
    stand.manifest("a", stand.image(labels))
    got = run_in_process("inspect", f"{stand.host}/team/app:a", cwd=tmp_path, env=env)
    assert got.returncode == 0, got.stderr
    assert not RAW.search(got.stdout + got.stderr), got.stdout
    lines = got.stdout.splitlines()
    assert "  base          \\x1b[2J\\x1b]0;PWNED\\x07" in lines
    assert "  qemu source   debian\\x0a  recipe        forged" in lines
    assert "  qemu version  \\x9b31m\\x7f\\ud800" in lines
    assert not any(line.startswith("  recipe        forged") for line in lines)
    shown = run_in_process("inspect", f"{stand.host}/team/app:a", "--format", "json", cwd=tmp_path, env=env)
    assert shown.returncode == 0, shown.stderr
    assert not RAW.search(shown.stdout)
    assert json.loads(shown.stdout)[0]["base"] == SCREEN


@pytest.mark.parametrize(
    ("header", "why"),
    [
        ("sha256:abc\x1b[5mBLINK", "the digest 'sha256:abc\\x1b[5mBLINK' is not sha256: and 64 hex digits"),
        ("sha256:" + "A" * 64, "the digest 'sha256:" + "A" * 64 + "' is not sha256: and 64 hex digits"),
        ("sha256:" + "0" * 64, "its bytes hash to {body}, not to sha256:" + "0" * 64),
    ],
    ids=["escapes", "upper-case", "another-hash"],
)
def test_a_manifest_digest_must_be_sha256_and_the_hash_of_its_bytes(
    stand: Stand, env: dict[str, str], tmp_path: Path, header: str, why: str
) -> None:
    body = stand.image({recipe.BASE_NAME: "arm32v7/python:3.7"})
    stand.manifest("a", body, digest=header)
    got = run_in_process("inspect", f"{stand.host}/team/app:a", cwd=tmp_path, env=env)
    assert got.returncode == 1, got.stderr
    assert got.stdout == ""
    assert not RAW.search(got.stderr), got.stderr
    said = why.format(body=sha(body))
    assert errors(got.stderr) == [
        f"xcompile: error: cannot read {stand.host}/team/app:a from the registry: the manifest of team/app:a: {said}"
    ]


def test_what_is_read_by_digest_must_hash_to_it(stand: Stand, env: dict[str, str], tmp_path: Path) -> None:
    """A list member served as other bytes than its digest names, and a config blob likewise:
    "cannot read", never the other image's labels."""
    real = stand.image({recipe.BASE_NAME: "arm32v7/python:3.7"})
    other = stand.image({recipe.BASE_NAME: "evil/base:1"})
    claimed = sha(real)
    stand.manifest(claimed.replace(claimed[-8:], "0" * 8), other)  # served under a digest it is not
    swapped = {**member(real), "digest": claimed.replace(claimed[-8:], "0" * 8)}
    stand.manifest("list", a_list([swapped]), media_type=LIST_TYPES[0])
    got = run_in_process("inspect", f"{stand.host}/team/app:list", cwd=tmp_path, env=env)
    assert got.returncode == 1, got.stdout
    assert "evil/base" not in got.stdout
    (line,) = errors(got.stderr)
    assert line.startswith(f"xcompile: error: cannot read {stand.host}/team/app:list@sha256:")
    assert f"its bytes hash to {sha(other)}, not to" in line

    config = json.dumps({"os": "linux", "architecture": "arm", "config": {"Labels": {}}}).encode()
    evil = json.dumps({"os": "linux", "architecture": "arm", "config": {"Labels": {recipe.BASE_NAME: "evil"}}})
    stand.server.expect_request(f"/v2/team/app/blobs/{sha(config)}").respond_with_data(evil)
    image = {
        "schemaVersion": 2,
        "mediaType": IMAGE_TYPES[0],
        "layers": [],
        "config": {"mediaType": CONFIG_TYPE, "size": len(config), "digest": sha(config)},
    }
    stand.manifest("c", json.dumps(image).encode())
    got = run_in_process("inspect", f"{stand.host}/team/app:c", cwd=tmp_path, env=env)
    assert got.returncode == 1 and "evil" not in got.stdout, got.stdout
    (line,) = errors(got.stderr)
    assert line.endswith(f"the config of team/app:c: its bytes hash to {sha(evil.encode())}, not to {sha(config)}")


# --- 4. what a manifest is --------------------------------------------------------------------


GOOD_CONFIG = {"mediaType": CONFIG_TYPE, "size": 2, "digest": "sha256:" + "c" * 64}


@pytest.mark.parametrize(
    ("document", "media_type", "why"),
    [
        ({"token": "T0K3N"}, "application/json", "not a manifest of a type xcompile reads ('application/json')"),
        ({"schemaVersion": 1, "name": "team/app", "tag": "a", "fsLayers": []},
         "application/vnd.docker.distribution.manifest.v1+prettyjws",
         "not a manifest of a type xcompile reads ('application/vnd.docker.distribution.manifest.v1+prettyjws')"),
        ({"mediaType": IMAGE_TYPES[0], "config": GOOD_CONFIG, "layers": []}, IMAGE_TYPES[0],
         "its schemaVersion is not 2"),
        ({"schemaVersion": 2, "mediaType": IMAGE_TYPES[0], "layers": []}, IMAGE_TYPES[0],
         "an image manifest without a config descriptor"),
        ({"schemaVersion": 2, "mediaType": IMAGE_TYPES[0], "config": {**GOOD_CONFIG, "size": "2"}}, IMAGE_TYPES[0],
         "an image manifest whose config has no size"),
        ({"schemaVersion": 2, "mediaType": IMAGE_TYPES[0], "config": {**GOOD_CONFIG, "digest": "sha256:x"}},
         IMAGE_TYPES[0], "an image manifest whose config digest 'sha256:x' is not sha256: and 64 hex digits"),
        ({"schemaVersion": 2, "mediaType": LIST_TYPES[0]}, LIST_TYPES[0], "a manifest list without manifests"),
        ({"schemaVersion": 2, "config": GOOD_CONFIG, "layers": []}, IMAGE_TYPES[0],
         f"a manifest without the mediaType its type requires ({IMAGE_TYPES[0]})"),
    ],
    ids=["token", "schema-1", "no-schema-version", "no-config", "size-text", "config-digest", "no-manifests",
         "docker-without-media-type"],
)  # fmt: skip
def test_a_document_without_a_manifest_s_fields_is_cannot_read(
    stand: Stand, env: dict[str, str], tmp_path: Path, document: object, media_type: str, why: str
) -> None:
    stand.manifest("a", json.dumps(document).encode(), media_type=media_type)
    got = run_in_process("inspect", f"{stand.host}/team/app:a", cwd=tmp_path, env=env)
    assert (got.returncode, got.stdout) == (1, ""), got.stdout
    assert errors(got.stderr) == [
        f"xcompile: error: cannot read {stand.host}/team/app:a from the registry: the manifest of team/app:a: {why}"
    ]
    assert stand.requests_for("/blobs/") == []


def test_an_oci_manifest_without_a_media_type_is_read_by_its_content_type(
    stand: Stand, env: dict[str, str], tmp_path: Path
) -> None:
    """OCI's image-spec 1.0 has mediaType optional: the registry's Content-Type says what it is."""
    data = json.dumps({"os": "linux", "architecture": "arm64", "config": {"Labels": {recipe.BASE_NAME: "b"}}})
    config = {
        "mediaType": "application/vnd.oci.image.config.v1+json",
        "size": len(data),
        "digest": stand.blob(data.encode()),
    }
    body = json.dumps({"schemaVersion": 2, "config": config, "layers": []}).encode()
    stand.manifest("a", body, media_type=IMAGE_TYPES[1])
    got = run_in_process("inspect", f"{stand.host}/team/app:a", "--format", "json", cwd=tmp_path, env=env)
    assert got.returncode == 0, got.stderr
    (seen,) = json.loads(got.stdout)
    assert (seen["base"], seen["platform"], seen["digest"]) == ("b", "linux/arm64", sha(body))


# --- 5. lists, bounded and checked ---------------------------------------------------------------


def test_a_list_of_3000_members_is_refused_in_one_line_after_one_request(
    stand: Stand, env: dict[str, str], tmp_path: Path
) -> None:
    """Every member is served (the same image under each digest), as the list of issue 27 was:
    read one by one, they made 2131 requests in 120 s before the run was killed."""
    body = stand.image({recipe.BASE_NAME: "arm32v7/python:3.7"})
    members = [{**member(body), "digest": "sha256:" + f"{n:064x}"} for n in range(3000)]
    stand.server.expect_request(re.compile("/v2/team/app/manifests/sha256:.*")).respond_with_data(
        body, content_type=IMAGE_TYPES[0]
    )
    stand.manifest("a", a_list(members), media_type=LIST_TYPES[0])
    started = time.monotonic()
    got = run_in_process("inspect", f"{stand.host}/team/app:a", cwd=tmp_path, env=env)
    assert time.monotonic() - started < 20
    assert (got.returncode, got.stdout) == (1, ""), got.stdout
    assert errors(got.stderr) == [
        f"xcompile: error: cannot read {stand.host}/team/app:a from the registry: the manifest of team/app:a:"
        " a manifest list of 3000 members, more than the 64 xcompile reads"
    ]
    assert stand.requests_for("/manifests/") == ["/v2/team/app/manifests/a"]


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ({"digest": "latest"}, "a manifest list entry whose digest 'latest' is not sha256: and 64 hex digits"),
        ({"digest": "sha256:.."}, "a manifest list entry whose digest 'sha256:..' is not sha256: and 64 hex digits"),
        ({"digest": None}, "a manifest list entry without a digest"),
        ({"platform": "linux/arm/v7"}, "a manifest list entry whose platform is not an os and an architecture"),
        ({"platform": {"os": "linux"}}, "a manifest list entry whose platform is not an os and an architecture"),
        (
            {"platform": {"os": "linux", "architecture": "arm", "variant": 7}},
            "a manifest list entry whose platform's variant is not text",
        ),
        ({"platform": None}, "a manifest list entry without a platform"),
    ],
    ids=["tag", "path", "no-digest", "platform-text", "no-architecture", "variant-number", "no-platform"],
)
def test_each_list_member_must_be_a_digest_and_a_platform(
    stand: Stand, env: dict[str, str], tmp_path: Path, entry: dict[str, object], why: str
) -> None:
    body = stand.image({recipe.BASE_NAME: "fine"})
    odd = {k: v for k, v in {**member(body), **entry}.items() if v is not None}
    stand.manifest("latest", body)
    stand.manifest("a", a_list([member(body), odd]), media_type=LIST_TYPES[0])
    got = run_in_process("inspect", f"{stand.host}/team/app:a", cwd=tmp_path, env=env)
    assert (got.returncode, got.stdout) == (1, ""), got.stdout
    assert errors(got.stderr) == [
        f"xcompile: error: cannot read {stand.host}/team/app:a from the registry: the manifest of team/app:a: {why}"
    ]
    assert stand.requests_for("/manifests/") == ["/v2/team/app/manifests/a"]


def test_a_list_of_two_platforms_and_an_attestation_is_read(stand: Stand, env: dict[str, str], tmp_path: Path) -> None:
    arm = stand.image({recipe.BASE_NAME: "arm32v7/python:3.7"})
    arm64 = stand.image({recipe.BASE_NAME: "arm64v8/python:3.7"}, ("linux", "arm64", "v8"))
    attestation = {**member(stand.image({})), "platform": {"os": "unknown", "architecture": "unknown"}}
    members = [member(arm), member(arm64, {"os": "linux", "architecture": "arm64", "variant": "v8"}), attestation]
    stand.manifest("a", a_list(members), media_type=LIST_TYPES[1])
    got = run_in_process("inspect", f"{stand.host}/team/app:a", "--format", "json", cwd=tmp_path, env=env)
    assert got.returncode == 0, got.stderr
    assert [(seen["platform"], seen["base"]) for seen in json.loads(got.stdout)] == [
        ("linux/arm/v7", "arm32v7/python:3.7"),
        ("linux/arm64/v8", "arm64v8/python:3.7"),
    ]


# --- 12a. a registry that cannot be reached ---------------------------------------------------------


def test_inspect_of_a_registry_it_cannot_reach_is_exit_3(stand: Stand, env: dict[str, str], tmp_path: Path) -> None:
    """Alone, exit 3; beside a readable name and a missing one, the readable one is shown, each
    failure is a line of its own, and the exit is 3: the unreachable registry is what to fix first."""
    down = f"127.0.0.1:{free_port()}/team/app:a"
    alone = run_in_process("inspect", down, cwd=tmp_path, env=env)
    assert alone.returncode == 3, alone.stderr
    unreachable = (
        f"xcompile: error: cannot read {down} from the registry: http://{down.split('/')[0]}/v2/team/app/manifests/a:"
        " connection refused or host unknown"
    )
    assert errors(alone.stderr) == [unreachable]
    stand.manifest("a", stand.image({recipe.BASE_NAME: "arm32v7/python:3.7"}))
    stand.server.expect_request("/v2/team/app/manifests/nope").respond_with_data("", status=404)
    mixed = run_in_process(
        "inspect", f"{stand.host}/team/app:a", down, f"{stand.host}/team/app:nope", cwd=tmp_path, env=env
    )
    assert mixed.returncode == 3, mixed.stderr
    assert mixed.stdout.startswith(f"{stand.host}/team/app:a  linux/arm/v7  sha256:")
    assert errors(mixed.stderr) == [
        unreachable,
        f"xcompile: error: {stand.host}/team/app:nope: the registry has no such image — check the name and the tag",
    ]
    some = run_in_process("inspect", f"{stand.host}/team/app:a", f"{stand.host}/team/app:nope", cwd=tmp_path, env=env)
    assert some.returncode == 1, some.stderr


@pytest.mark.parametrize(
    ("given", "why"),
    [
        ("team/app:..", "inspect: invalid tag '..'"),
        ("team/app@latest", "inspect: invalid digest 'latest' in 'HOST/team/app@latest'"),
        ("team/app@sha256:..", "inspect: invalid digest 'sha256:..' in 'HOST/team/app@sha256:..'"),
    ],
    ids=["dot-dot-tag", "tag-as-digest", "digest-a-path"],
)
def test_a_tag_or_digest_docker_would_refuse_is_exit_2_and_never_asked(
    stand: Stand, env: dict[str, str], tmp_path: Path, given: str, why: str
) -> None:
    """A tag of `..` went into the registry's URL (`/manifests/..`, which the HTTP library folds into
    another path), and a digest was not checked at all: each is refused before any request."""
    got = run_in_process("inspect", f"{stand.host}/{given}", cwd=tmp_path, env=env)
    assert (got.returncode, got.stdout) == (2, ""), got.stderr
    (line,) = errors(got.stderr)
    assert line.startswith(f"xcompile: error: {why.replace('HOST', stand.host)} — "), line
    assert stand.server.log == []
