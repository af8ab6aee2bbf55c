"""An archive's fields reach the terminal escaped: the archive signed with gpg, served on 127.0.0.1.
The rest of what a registry serves is read in tests/unit/registry/test_content.py."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import run_xcompile
from debian_archive import Archive, GpgKey, build_deb, file_handler, key_fixture
from pytest_httpserver import HTTPServer

from xcompile.host.elf import host_debian_arch

RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
"""A control character other than a line break or a tab: what the terminal would act on."""
SCREEN = "\x1b[2J\x1b]0;PWNED\x07"


def errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("xcompile: error:")]


key = key_fixture("Content Archive")


# gpg signs the archive
def test_an_archive_field_reaches_the_terminal_escaped(
    key: GpgKey, httpserver: HTTPServer, user_env: dict[str, str], tmp_path: Path
) -> None:
    """A Depends naming a package with a screen clear in its name: python-debian's warning about it
    and xcompile's "looked in" line both show it escaped."""
    arch = host_debian_arch()
    archive = Archive(tmp_path / "archive", suite="bookworm")
    deb = build_deb(
        tmp_path / "q.deb",
        package="qemu-user-static",
        version="1:7.2+dfsg-7",
        files={"usr/share/doc/qemu-user-static/README": b"synthetic\n"},
    )
    archive.add(deb, package="qemu-user-static", version="1:7.2+dfsg-7", arch=arch, depends=f"qemu-link{SCREEN}")
    archive.write(key)
    httpserver.expect_request(re.compile("^/debian/")).respond_with_handler(file_handler(archive.root, "/debian"))
    trusted = ["--mirror", httpserver.url_for("/debian"), "--suite", "bookworm", "--keyring", str(key.keyring)]
    cached = {**user_env, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    got = run_xcompile("qemu", "--source", "download", *trusted, cwd=tmp_path, env=cached)
    assert got.returncode == 3, got.stderr
    assert not RAW.search(got.stderr), got.stderr
    (line,) = errors(got.stderr)
    assert "(looked in qemu-link\\x1b[2J\\x1b]0;PWNED\\x07, qemu-user-static)" in line
