"""`xcompile qemu` and `xcompile build` fetching a static qemu as a user without
apt would: from a signed Debian archive (the real qemu-user-static .deb) served
on 127.0.0.1, or from a direct URL with its SHA256."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import Registry, docker, run_xcompile
from debian_archive import QEMU, Archive, GpgKey, file_handler, real_deb
from hostbinfmt import replaced, seed_world
from pytest_httpserver import HTTPServer

from integration.test_e2e import layer_file
from xcompile.host import platforms
from xcompile.host.elf import host_debian_arch

ARM = platforms.get("arm32v7")
SUITE = "bookworm"


@dataclasses.dataclass
class Mirror:
    url: str
    keyring: Path
    server: HTTPServer

    def deb_requests(self) -> int:
        return sum(1 for request, _ in self.server.log if request.path.endswith(".deb"))


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mirror]:
    deb = real_deb(QEMU)
    version = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], capture_output=True, text=True, check=True)
    key = GpgKey.create("Mirror Key")
    archive = Archive(tmp_path_factory.mktemp("mirror"), suite=SUITE)
    archive.add(deb, package=QEMU, version=version.stdout.strip(), arch=host_debian_arch())
    archive.write(key)
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.expect_request("/qemu-arm-static").respond_with_data(Path("/usr/bin/qemu-arm-static").read_bytes())
    server.expect_request(re.compile("^/debian/")).respond_with_handler(file_handler(archive.root))
    server.start()
    yield Mirror(server.url_for("/debian"), key.keyring, server)
    server.stop()
    key.close()


@pytest.fixture
def no_apt_env(user_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """A PATH with docker, cp and gpgv, but neither qemu nor apt: a Fedora laptop, say."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for program in ("docker", "cp", "gpgv"):
        found = shutil.which(program)
        assert found, f"{program} not installed; run ci/provision.sh"
        (bin_dir / program).symlink_to(found)
    return {**user_env, "PATH": str(bin_dir), "XDG_CACHE_HOME": str(tmp_path / "cache")}


@pytest.mark.parametrize("host_binfmt", ["debian"], indirect=True)  # the build's proof runs here
def test_build_downloads_verifies_caches_and_the_image_runs(
    host_binfmt: str, registry: Registry, armhf_base: str, mirror: Mirror, no_apt_env: dict[str, str], tmp_path: Path
) -> None:
    repo = f"{registry.host}/downloaded/rpi"
    trusted = ["--mirror", mirror.url, "--suite", SUITE, "--keyring", str(mirror.keyring)]
    args = ["--base", armhf_base, "--repo", repo, "--tag", "a", *trusted]
    before = mirror.deb_requests()
    first = run_xcompile("build", *args, cwd=tmp_path, env=no_apt_env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert mirror.deb_requests() == before + 1
    assert f"xcompile: qemu: {tmp_path}/cache/xcompile/bin/" in first.stderr
    assert f"(downloaded from {mirror.url} ({SUITE}, qemu-user-static " in first.stderr
    assert "signed by Mirror Key <mirror-key@example.invalid> (" in first.stderr
    assert "apt-get" not in first.stderr
    cached = next((tmp_path / "cache" / "xcompile" / "bin").glob("*/qemu-arm-static"))
    _, manifest = registry.manifest("downloaded/rpi", "a")
    assert layer_file(registry, "downloaded/rpi", manifest, "usr/bin/qemu-arm-static") == cached.read_bytes()

    # The same emulation proof as the apt path: the pulled image runs where binfmt lacks F.
    image = f"{repo}:a"
    docker("rmi", image)
    docker("pull", "--platform", ARM.platform, image)
    with replaced(seed_world(ARM)):
        ran = docker("run", "--rm", "--platform", ARM.platform, image, "uname", "-m", check=False)
    assert (ran.returncode, ran.stdout.strip()) == (0, "armv7l"), ran.stderr

    second = run_xcompile("build", *args, cwd=tmp_path, env=no_apt_env)
    assert second.returncode == 0, second.stderr[-3000:]
    assert mirror.deb_requests() == before + 1  # no second .deb download
    assert f"(cached from {mirror.url}" in second.stderr


def test_qemu_dest_and_offline(mirror: Mirror, no_apt_env: dict[str, str], tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    download = ["qemu", "--source", "download"]
    where = ["--mirror", mirror.url, "--suite", SUITE]
    keys = ["--keyring", str(mirror.keyring)]
    offline = run_xcompile(*download, "--offline", *where, cwd=tmp_path, env=no_apt_env)
    assert offline.returncode == 3
    assert offline.stderr.splitlines()[-1].startswith("xcompile: error: offline: no cached qemu-arm-static for ")
    assert offline.stderr.splitlines()[-1].endswith(" — run once without --offline")

    got = run_xcompile(*download, *where, *keys, "--dest", str(dest), cwd=tmp_path, env=no_apt_env)
    assert got.returncode == 0, got.stderr
    assert got.stdout == f"{dest}/qemu-arm-static\n"
    assert sorted(p.name for p in dest.iterdir()) == ["qemu-arm-static"]
    version = subprocess.run([str(dest / "qemu-arm-static"), "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("qemu-arm version")

    again = run_xcompile(*download, "--offline", *where, *keys, cwd=tmp_path, env=no_apt_env)
    assert again.returncode == 0, again.stderr
    assert "cached from" in again.stderr
    # Offline, the cache serves a binary only to the keys that verified it (here: not the default ones).
    other = run_xcompile(*download, "--offline", *where, cwd=tmp_path, env=no_apt_env)
    assert other.returncode == 1
    assert other.stderr.splitlines()[-1] == (
        f"xcompile: error: the cached qemu for {mirror.url} {SUITE} was verified with other keys than these"
        " — run once online with these keys (--keyring), or offline with the keys it was verified with"
    )


def test_direct_url_needs_and_checks_its_sha256(mirror: Mirror, no_apt_env: dict[str, str], tmp_path: Path) -> None:
    url = mirror.server.url_for("/qemu-arm-static")
    real = hashlib.sha256(Path("/usr/bin/qemu-arm-static").read_bytes()).hexdigest()
    dest = tmp_path / "dest"
    dest.mkdir()

    alone = run_xcompile("qemu", "--qemu-url", url, cwd=tmp_path, env=no_apt_env)
    assert alone.returncode == 2
    assert alone.stderr.startswith("xcompile: error: --qemu-url and --qemu-sha256 go together")

    download = ["qemu", "--source", "download", "--qemu-url", url]
    wrong = run_xcompile(*download, "--qemu-sha256", "0" * 64, "--dest", str(dest), cwd=tmp_path, env=no_apt_env)
    assert wrong.returncode == 1
    errors = [line for line in wrong.stderr.splitlines() if line.startswith("xcompile: error:")]
    assert errors == [wrong.stderr.splitlines()[-1]]
    assert f"xcompile: error: {url}: SHA256 mismatch" in errors[0]
    assert list(dest.iterdir()) == []
    cache = tmp_path / "cache" / "xcompile"
    assert not cache.exists() or [p for p in cache.rglob("*") if p.is_file()] == []

    right = run_xcompile(*download, "--qemu-sha256", real, "--dest", str(dest), cwd=tmp_path, env=no_apt_env)
    assert right.returncode == 0, right.stderr
    assert (dest / "qemu-arm-static").read_bytes() == Path("/usr/bin/qemu-arm-static").read_bytes()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--mirror", "ftp:/nowhere"], 2, "xcompile: error: --mirror: 'ftp:/nowhere' is not an http(s) URL"),
        (["--source", "download"], 3, "xcompile: error: no Debian mirror to download qemu-arm-static from"),
        (["--source", "path"], 3, "xcompile: error: qemu-arm-static is not on PATH"),
    ],
)
def test_bad_sources(no_apt_env: dict[str, str], tmp_path: Path, args: list[str], code: int, message: str) -> None:
    result = run_xcompile("qemu", *args, cwd=tmp_path, env=no_apt_env)
    assert result.returncode == code, result.stderr
    assert result.stderr.splitlines()[-1].startswith(message)


def test_credentials_in_the_mirror_are_never_printed(
    mirror: Mirror, no_apt_env: dict[str, str], tmp_path: Path
) -> None:
    secret = mirror.url.replace("http://", "http://bob:hunter2-pw@")
    download = ["qemu", "--source", "download"]
    keys = ["--keyring", str(mirror.keyring)]
    got = run_xcompile(*download, "--mirror", secret, "--suite", SUITE, *keys, "-v", cwd=tmp_path, env=no_apt_env)
    assert got.returncode == 0, got.stderr
    assert "hunter2" not in got.stdout + got.stderr and "bob" not in got.stdout + got.stderr
    assert f"from {mirror.url} (" in got.stderr
    nowhere = ["--mirror", secret + "/nowhere", "--suite", SUITE]
    failed = run_xcompile(*download, *nowhere, "-v", cwd=tmp_path, env=no_apt_env)
    assert failed.returncode == 3
    assert "hunter2" not in failed.stdout + failed.stderr and "bob:" not in failed.stdout + failed.stderr
    cache = tmp_path / "cache" / "xcompile"
    assert all(b"hunter2" not in p.read_bytes() for p in cache.rglob("*") if p.is_file() and p.suffix != ".deb")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_text("#!/bin/sh\necho fake qemu\n"), "is not an ELF executable"),
        (lambda p: p.symlink_to(shutil.which("ls") or "/bin/ls"), "is dynamically linked, not static"),
    ],
)
def test_a_qemu_on_path_must_be_a_static_host_elf(
    no_apt_env: dict[str, str], tmp_path: Path, make: Callable[[Path], object], message: str
) -> None:
    fake = Path(no_apt_env["PATH"]) / "qemu-arm-static"
    make(fake)
    if not fake.is_symlink():
        fake.chmod(0o755)
    for source in ("path", "auto"):
        got = run_xcompile("qemu", "--source", source, cwd=tmp_path, env=no_apt_env)
        assert got.returncode == 3, got.stderr
        last = got.stderr.splitlines()[-1]
        assert last.startswith("xcompile: error: ") and message in last and "Traceback" not in got.stderr


def test_dest_never_writes_through_a_planted_link_and_two_runs_do_not_clobber(
    mirror: Mirror, no_apt_env: dict[str, str], tmp_path: Path
) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    (dest / ".qemu-arm-static.part").symlink_to(victim)  # the old fixed name
    (dest / "qemu-arm-static").symlink_to(victim)
    qemu = ["qemu", "--source", "download", "--mirror", mirror.url, "--suite", SUITE, "--keyring", str(mirror.keyring)]
    argv = [sys.executable, "-m", "xcompile", *qemu, "--dest", str(dest)]
    warm = run_xcompile(*argv[3:], cwd=tmp_path, env=no_apt_env)  # fills the cache once
    assert warm.returncode == 0, warm.stderr
    runs = [
        subprocess.Popen(argv, cwd=tmp_path, env=no_apt_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    for run in runs:
        _, err = run.communicate(timeout=120)
        assert run.returncode == 0, err
    assert victim.read_text() == "keep me\n"
    final = dest / "qemu-arm-static"
    assert (
        not final.is_symlink()
        and final.read_bytes() == next((tmp_path / "cache" / "xcompile" / "bin").glob("*/qemu-arm-static")).read_bytes()
    )
    assert sorted(p.name for p in dest.iterdir()) == [".qemu-arm-static.part", "qemu-arm-static"]
