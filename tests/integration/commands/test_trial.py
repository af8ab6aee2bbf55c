"""`xcompile trial`: every image with each qemu version, proven, pushed nowhere, left nowhere.

The versions come from a test archive of the real bookworm (qemu 7.2) and
trixie (qemu 10.0) packages on 127.0.0.1, as oldstable and stable.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import run_xcompile, session_container_ids, session_image_ids
from debian_archive import Archive, GpgKey, file_handler, key_fixture, real_package
from pytest_httpserver import HTTPServer

PREFIX = "/debian"
# The shipped qemu says its own version when a proof command runs it (it is a program of the host's machine).
ONLY_TEN = 'case "$(/usr/bin/qemu-arm-static --version)" in *"version 10."*) exit 0;; *) exit 1;; esac'


key = key_fixture("Trial Archive")


def two_releases(root: Path, key: GpgKey) -> None:
    old = Archive(root, suite="oldstable")
    old.add_real(real_package("bookworm", "qemu-user-static"))
    old.write(key, suite_field="oldstable", codename="bookworm")
    new = Archive(root, suite="stable")
    new.add_real(real_package("trixie", "qemu-user-static"))
    new.add_real(real_package("trixie", "qemu-user"))
    new.write(key, suite_field="stable", codename="trixie")


@pytest.mark.parametrize("host_binfmt", ["debian"], indirect=True)
def test_two_versions_two_images_give_the_right_cells_and_leave_nothing(
    host_binfmt: str, armhf_base: str, user_env: dict[str, str], tmp_path: Path, httpserver: HTTPServer, key: GpgKey
) -> None:
    two_releases(tmp_path / "archive", key)
    httpserver.expect_request(re.compile(f"^{PREFIX}/")).respond_with_handler(
        file_handler(tmp_path / "archive", PREFIX)
    )
    mirror = httpserver.url_for(PREFIX)
    before = session_image_ids("reference=xcompile-trial-*/*")
    qemu = ["--qemu-source", "download", "--mirror", mirror, "--keyring", str(key.keyring)]
    images = ["--base", armhf_base, "--tag", "a", "--tag", "b", "--proof-command", ONLY_TEN]
    result = run_xcompile("trial", "7.2", "10.0", *qemu, *images, cwd=tmp_path, env=user_env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    header, row_a, row_b, *notes = result.stdout.splitlines()
    assert header.split() == ["image", "7.2", "10.0"]
    for row, tag in ((row_a, "a"), (row_b, "b")):
        cells = re.fullmatch(rf"{tag}\s+(\w+) [\d.]+s\s+(\w+) [\d.]+s", row)
        assert cells is not None and cells.groups() == ("fail", "pass"), row
    assert notes[0].startswith("7.2: 1:7.2") and notes[1].startswith("10.0: 1:10.0"), notes
    assert any(line.startswith(f"{tag}@7.2: the proof command ") for line in notes for tag in "ab"), notes
    # With F, the command's programs ran under the host's qemu (7.2 here): said, with the columns it was not.
    host = [line for line in notes if line.startswith("note: this host's binfmt entry has the F flag")]
    assert len(host) == 1 and host[0].endswith(
        "not under the version tried, in the columns 10.0; try them on a host whose entry has no F flag"
    ), notes
    assert "xcompile: every image passes with qemu 10.0" in result.stderr
    assert "docker push" not in result.stderr
    # Nothing left: no trial image, no container, no temporary folder. Sets, and only what this
    # session made: docker lists images made in the same second in no stable order, and a host that
    # has done other work holds other images and containers (the seeded leftovers of
    # integration/test_host_leftovers.py).
    assert session_image_ids("reference=xcompile-trial-*/*") == before
    assert session_container_ids("xcompile-proof-") == set()
    assert list(Path(user_env["TMPDIR"]).iterdir()) == []
    # No version passes every image: exit 1. A version given twice is tried once (one image per cell).
    dangling = session_image_ids("dangling=true")
    image = ["--base", armhf_base, "--tag", "a", "--proof-command", ONLY_TEN]
    failing = run_xcompile("trial", "7.2", "7.2", *qemu, *image, cwd=tmp_path, env=user_env, timeout=600)
    assert failing.returncode == 1, failing.stderr[-3000:]
    assert "xcompile: no version passes every image" in failing.stderr
    assert "xcompile: warning: versions: duplicates dropped, each version is tried once" in failing.stderr
    assert failing.stdout.splitlines()[0].split() == ["image", "7.2"]
    assert session_image_ids("dangling=true") == dangling


def test_a_base_that_is_not_there_fails_its_row_and_the_others_still_run(
    armhf_base: str, user_env: dict[str, str], tmp_path: Path, httpserver: HTTPServer, key: GpgKey
) -> None:
    two_releases(tmp_path / "archive", key)
    httpserver.expect_request(re.compile(f"^{PREFIX}/")).respond_with_handler(
        file_handler(tmp_path / "archive", PREFIX)
    )
    qemu = ["--qemu-source", "download", "--mirror", httpserver.url_for(PREFIX), "--keyring", str(key.keyring)]
    images = ["--base", armhf_base, "--tag", "a", "--tag", "gone", "--pull", "never"]
    result = run_xcompile("trial", "10.0", *qemu, *images, cwd=tmp_path, env=user_env, timeout=600)
    assert result.returncode == 1, result.stderr[-3000:]
    header, row_a, row_gone, *notes = result.stdout.splitlines()
    assert header.split() == ["image", "10.0"]
    assert re.fullmatch(r"a\s+pass [\d.]+s", row_a), row_a
    assert row_gone.split() == ["gone", "fail"], row_gone
    assert f"gone@10.0: base {armhf_base}:gone is not on this host — check its name, or log in to its registry" in notes
    assert "Traceback" not in result.stderr
    assert session_container_ids("xcompile-proof-") == set()


def test_versions_that_differ_only_in_punctuation_get_images_of_their_own(
    user_env: dict[str, str], tmp_path: Path, httpserver: HTTPServer
) -> None:
    """Each version's image name was its version with every other character a dash: 1:10.0.2+ds-2 and
    1:10.0.2~ds-2 built, proved and removed one image (so did 7.2+b1 and 7.2-b1, 7.2 and 7.2.). A dry
    run shows the names, and asks nothing of docker or the mirror."""
    versions = ["1:10.0.2+ds-2", "1:10.0.2~ds-2", "7.2+b1", "7.2-b1", "7.2", "7.2."]
    long_tag = "t" * 127  # two tags alike but for their last character, each at docker's limit
    qemu = ["--qemu-source", "download", "--mirror", httpserver.url_for("/debian")]
    tags = ["--tag", "3.7", "--tag", f"{long_tag}a", "--tag", f"{long_tag}b"]
    result = run_xcompile("trial", *versions, "--dry-run", *qemu, *tags, cwd=tmp_path, env=user_env)
    assert result.returncode == 0, result.stderr
    built = re.findall(r"^\[(\S+)\] \+ docker build .* -t (\S+) ", result.stderr, re.MULTILINE)
    names = dict(built)
    assert len(built) == len(names) == 3 * len(versions), built  # one build per cell
    assert len(set(names.values())) == len(names), names  # and one image per cell
    for name in names.values():
        repo, _, tag = name.partition(":")
        assert re.fullmatch(r"xcompile-trial-[0-9a-f]{8}/image", repo) and len(tag) <= 128, name
        assert re.fullmatch(r"[\w][\w.-]*", tag), name
    assert "3.7-arm32v7-qemu-1-10.0.2-ds-2-" in names["3.7@1:10.0.2+ds-2"]  # still readable
    assert list(httpserver.log) == []
