"""Which qemu is inside: pinned, recorded in the image, readable from the registry.

A test archive of the real bookworm (qemu 7.2) and trixie (qemu 10.0) packages
on 127.0.0.1 serves the pins; a real registry holds what is built.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path

import pytest
from conftest import Registry, run_xcompile
from debian_archive import Archive, GpgKey, file_handler, key_fixture, real_package
from pytest_httpserver import HTTPServer

from integration.commands.test_trial import PREFIX, two_releases

SEVEN = real_package("bookworm", "qemu-user-static").field("Version")
TEN = real_package("trixie", "qemu-user").field("Version")


key = key_fixture("Pin Archive")


@pytest.fixture
def mirror(tmp_path: Path, httpserver: HTTPServer, key: GpgKey) -> list[str]:
    """The switches that point the download at the test archive."""
    two_releases(tmp_path / "archive", key)
    httpserver.expect_request(re.compile(f"^{PREFIX}/")).respond_with_handler(
        file_handler(tmp_path / "archive", PREFIX)
    )
    return ["--qemu-source", "download", "--mirror", httpserver.url_for(PREFIX), "--keyring", str(key.keyring)]


def test_qemu_versions_lists_each_suite_and_its_signer(
    mirror: list[str], tmp_path: Path, user_env: dict[str, str]
) -> None:
    result = run_xcompile("qemu", "--versions", *mirror, cwd=tmp_path, env=user_env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "qemu-arm-static:"
    assert lines[1].split() == ["suite", "package", "version", "signed", "by"]
    rows = [line.split()[:3] for line in lines[2:]]
    assert ["bookworm", "qemu-user-static", SEVEN] in rows and ["trixie", "qemu-user", TEN] in rows
    assert all(line.endswith("Pin Archive") for line in lines[2:])
    as_json = run_xcompile("qemu", "--versions", "--format", "json", *mirror, cwd=tmp_path, env=user_env)
    listed = json.loads(as_json.stdout)["qemu-arm-static"]
    assert {"suite": "trixie", "package": "qemu-user", "version": TEN} in [
        {k: row[k] for k in ("suite", "package", "version")} for row in listed
    ]
    assert all(row["signer"].startswith("Pin Archive") for row in listed)


def test_qemu_versions_passes_over_an_expired_suite_and_says_so(
    mirror: list[str], tmp_path: Path, user_env: dict[str, str], key: GpgKey
) -> None:
    stale = Archive(tmp_path / "archive", suite="testing")
    stale.add_real(real_package("trixie", "qemu-user"))
    day = 24 * 3600
    stale.write(
        key, suite_field="testing", codename="forky", date=time.time() - 30 * day, valid_until=time.time() - day
    )
    result = run_xcompile("qemu", "--versions", *mirror, cwd=tmp_path, env=user_env)
    assert result.returncode == 0, result.stderr
    suites = {line.split()[0] for line in result.stdout.splitlines()[2:]}
    assert suites == {"bookworm", "trixie"}, result.stdout
    assert (
        "xcompile: warning: not listed: testing (its Release has expired on the mirror:"
        " stale versions are not to be trusted)" in result.stderr.splitlines()
    )


def test_a_missing_pin_lists_what_the_mirror_has(mirror: list[str], tmp_path: Path, user_env: dict[str, str]) -> None:
    result = run_xcompile("qemu", "--qemu-version", "9.2", *mirror, cwd=tmp_path, env=user_env)
    assert result.returncode == 3
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("xcompile: error:")]
    assert f"holds qemu 9.2; it has {SEVEN}, " in line and TEN in line


@pytest.mark.parametrize("host_binfmt", ["debian"], indirect=True)
def test_the_pin_is_in_the_labels_inspect_reads_them_and_a_change_names_both(
    host_binfmt: str, mirror: list[str], registry: Registry, armhf_base: str, user_env: dict[str, str], tmp_path: Path
) -> None:
    name = f"pin-{uuid.uuid4().hex[:6]}/py"
    repo = f"{registry.host}/{name}"
    argv = ["--base", armhf_base, "--repo", repo, "--tag", "a", *mirror]
    first = run_xcompile(*argv, "--qemu-version", "7.2", cwd=tmp_path, env=user_env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "(bookworm, qemu-user-static " in first.stderr  # the success line names the suite
    _, manifest = registry.manifest(name, "a")
    config = json.loads(registry.blob(name, manifest["config"]["digest"]))  # type: ignore[index]
    labels = config["config"]["Labels"]
    assert labels["xcompile.qemu.version"] == SEVEN
    assert labels["xcompile.qemu.source"] == f"debian bookworm qemu-user-static {SEVEN}"

    seen = run_xcompile("inspect", f"{repo}:a", "--format", "json", cwd=tmp_path, env=user_env)
    assert seen.returncode == 0, seen.stderr
    (image,) = json.loads(seen.stdout)
    assert (image["qemu_version"], image["base"], image["platform"]) == (SEVEN, f"{armhf_base}:a", "linux/arm/v7")
    assert image["qemu_sha256"] == labels["xcompile.qemu.sha256"] and image["xcompile"]

    second = run_xcompile(*argv, "--qemu-version", "10.0", cwd=tmp_path, env=user_env)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "changed since sha256:" in second.stderr and f": qemu {SEVEN} -> {TEN}; building" in second.stderr
    text = run_xcompile("inspect", f"{repo}:a", cwd=tmp_path, env=user_env)
    assert re.search(rf"^  qemu version  {re.escape(TEN)}$", text.stdout, re.MULTILINE), text.stdout
    assert f"  qemu source   debian trixie qemu-user {TEN}" in text.stdout


@pytest.mark.parametrize("host_binfmt", ["debian"], indirect=True)
def test_inspect_reads_each_platform_of_a_list(
    host_binfmt: str, registry: Registry, armhf_base: str, arm64_base: str, user_env: dict[str, str], tmp_path: Path
) -> None:
    name = f"pin-{uuid.uuid4().hex[:6]}/list"
    repo = f"{registry.host}/{name}"
    (tmp_path / "setup.cfg").write_text(
        f"[xcompile]\nbase_arm32v7 = {armhf_base}\nbase_arm64v8 = {arm64_base}\narches = arm32v7 arm64v8\n"
        f"repo = {repo}\ntags = a\n"
    )
    built = run_xcompile(cwd=tmp_path, env=user_env)
    assert built.returncode == 0, built.stderr[-3000:]
    seen = run_xcompile("inspect", f"{repo}:a", "--format", "json", cwd=tmp_path, env=user_env)
    assert seen.returncode == 0, seen.stderr
    platforms = {image["platform"]: image for image in json.loads(seen.stdout)}
    assert set(platforms) == {"linux/arm/v7", "linux/arm64/v8"}
    assert platforms["linux/arm64/v8"]["base"] == f"{arm64_base}:a"
    assert platforms["linux/arm/v7"]["qemu_source"].startswith("path ")
    missing = run_xcompile("inspect", f"{repo}:nope", cwd=tmp_path, env=user_env)
    assert missing.returncode == 1
    said = f"xcompile: error: {repo}:nope: the registry has no such image — check the name and the tag"
    assert missing.stderr.strip() == said
    # One name missing among others: the others are still shown, and the run says which one failed.
    some = run_xcompile("inspect", f"{repo}:a", f"{repo}:nope", "--format", "json", cwd=tmp_path, env=user_env)
    assert some.returncode == 1
    assert {image["platform"] for image in json.loads(some.stdout)} == {"linux/arm/v7", "linux/arm64/v8"}
    assert [line for line in some.stderr.splitlines() if "error" in line] == [said]
