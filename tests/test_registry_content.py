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
from pathlib import Path

import pytest
from conftest import run_xcompile
from debian_archive import Archive, GpgKey, build_deb, file_handler, key_fixture
from pytest_httpserver import HTTPServer

from xcompile import recipe
from xcompile.elf import host_debian_arch
from xcompile.registry import IMAGE_TYPES, LIST_TYPES

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
    got = run_xcompile("inspect", f"{stand.host}/team/app:a", cwd=tmp_path, env=env)
    assert got.returncode == 0, got.stderr
    assert not RAW.search(got.stdout + got.stderr), got.stdout
    lines = got.stdout.splitlines()
    assert "  base          \\x1b[2J\\x1b]0;PWNED\\x07" in lines
    assert "  qemu source   debian\\x0a  recipe        forged" in lines
    assert "  qemu version  \\x9b31m\\x7f\\ud800" in lines
    assert not any(line.startswith("  recipe        forged") for line in lines)
    shown = run_xcompile("inspect", f"{stand.host}/team/app:a", "--format", "json", cwd=tmp_path, env=env)
    assert shown.returncode == 0, shown.stderr
    assert not RAW.search(shown.stdout)
    assert json.loads(shown.stdout)[0]["base"] == SCREEN


key = key_fixture("Content Archive")


@pytest.mark.integration  # gpg signs the archive
def test_an_archive_field_reaches_the_terminal_escaped(
    key: GpgKey, httpserver: HTTPServer, user_env: dict[str, str], tmp_path: Path
) -> None:
    """A Depends naming a package with a screen clear in its name: python-debian's warning about it
    and xcompile's "looked in" line both show it escaped."""
    arch = host_debian_arch()
    archive = Archive(tmp_path / "archive", suite="bookworm")
    deb = build_deb(tmp_path / "q.deb", package="qemu-user-static", version="1:7.2+dfsg-7",
                    files={"usr/share/doc/qemu-user-static/README": b"synthetic\n"})  # fmt: skip
    archive.add(deb, package="qemu-user-static", version="1:7.2+dfsg-7", arch=arch, depends=f"qemu-link{SCREEN}")
    archive.write(key)
    httpserver.expect_request(re.compile("^/debian/")).respond_with_handler(file_handler(archive.root, "/debian"))
    got = run_xcompile("qemu", "--source", "download", "--mirror", httpserver.url_for("/debian"), "--suite",
                       "bookworm", "--keyring", str(key.keyring), cwd=tmp_path,
                       env={**user_env, "XDG_CACHE_HOME": str(tmp_path / "cache")})  # fmt: skip
    assert got.returncode == 3, got.stderr
    assert not RAW.search(got.stderr), got.stderr
    (line,) = errors(got.stderr)
    assert "(looked in qemu-link\\x1b[2J\\x1b]0;PWNED\\x07, qemu-user-static)" in line
