"""The download against the real shapes: the real bookworm and trixie packages, with their real
Packages paragraphs, served from 127.0.0.1 in the archive's own layout and signed with a throwaway
key; and the real Debian-signed InRelease files, checked with the bundled keys alone.

ci/provision.sh (make test) fetches the real packages once per machine with ci/fetch-deb.sh, from
the Debian archive this machine's apt uses. Nothing here skips.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import debian_archive
import pytest
from debian_archive import Archive, GpgKey, file_handler, key_fixture, real_inrelease, real_package
from pytest_httpserver import HTTPServer

from xcompile.archive import fetcher, trust
from xcompile.archive.fetcher import FetchResult, fetch_all
from xcompile.errors import VerificationError
from xcompile.system.runner import Runner

PREFIX = "/debian"
QUIET = Runner(lambda line, label: None)


key = key_fixture("Layout Archive")


def serve(server: HTTPServer, root: Path) -> str:
    server.clear()
    server.expect_request(re.compile(f"^{PREFIX}/")).respond_with_handler(file_handler(root, PREFIX))
    return server.url_for(PREFIX)


def fetch(mirror: str, suite: str, key: GpgKey, cache: Path, binary: str = "qemu-arm-static") -> FetchResult:
    archive = fetcher.Archive(mirror, suite, keyrings=(key.keyring,))
    (found,) = fetch_all([binary], archive, cache, timeout=10.0)
    return found


def debs_fetched(server: HTTPServer) -> list[str]:
    return sorted(request.path.rsplit("/", 1)[-1] for request, _ in server.log if request.path.endswith(".deb"))


def runs(path: Path, name: str) -> str:
    out = subprocess.run([str(path), "--version"], capture_output=True, text=True, check=True).stdout
    assert out.startswith(f"{name} version "), out
    return out.splitlines()[0]


def bookworm_archive(root: Path, key: GpgKey) -> Archive:
    archive = Archive(root, suite="bookworm")
    archive.add_real(real_package("bookworm", "qemu-user-static"))
    archive.write(key)
    return archive


def test_bookworm_layout_the_binary_is_in_qemu_user_static(tmp_path: Path, httpserver: HTTPServer, key: GpgKey) -> None:
    archive = bookworm_archive(tmp_path / "archive", key)
    result = fetch(serve(httpserver, archive.root), "bookworm", key, tmp_path / "cache")
    assert (result.package, result.codename) == ("qemu-user-static", "bookworm")
    assert result.version.startswith("1:7.2")
    assert debs_fetched(httpserver) == [archive.entries[0].filename.rsplit("/", 1)[-1]]
    runs(result.path, "qemu-arm")


def trixie_archive(root: Path, key: GpgKey, *, suite: str = "trixie", with_static: bool = True) -> Archive:
    archive = Archive(root, suite=suite)
    if with_static:
        archive.add_real(real_package("trixie", "qemu-user-static"))
    archive.add_real(real_package("trixie", "qemu-user"))
    archive.write(key, codename=suite)
    return archive


def test_trixie_layout_follows_the_link_and_the_depends(tmp_path: Path, httpserver: HTTPServer, key: GpgKey) -> None:
    archive = trixie_archive(tmp_path / "archive", key)
    mirror = serve(httpserver, archive.root)
    cache = tmp_path / "cache"
    result = fetch(mirror, "trixie", key, cache)
    # qemu-arm-static -> qemu-arm, which qemu-user-static lacks; its Depends name qemu-user.
    assert (result.package, result.codename) == ("qemu-user", "trixie")
    assert result.version == real_package("trixie", "qemu-user").field("Version")
    assert debs_fetched(httpserver) == sorted(
        e.filename.rsplit("/", 1)[-1] for e in archive.entries
    )  # qemu-user-binfmt, the other dependency, is never needed
    assert "10.0" in runs(result.path, "qemu-arm")
    assert result.path.name == "qemu-arm-static"

    # A link to a link (qemu-armel-static -> qemu-arm-static -> qemu-arm), and another emulator:
    # both from the cached packages, with neither the index nor a .deb fetched again.
    httpserver.clear_log()
    armel = fetch(mirror, "trixie", key, cache, "qemu-armel-static")
    aarch64 = fetch(mirror, "trixie", key, cache, "qemu-aarch64-static")
    assert armel.sha256 == result.sha256
    runs(aarch64.path, "qemu-aarch64")
    assert [r.path.rsplit("/", 1)[-1] for r, _ in httpserver.log] == ["InRelease", "InRelease"]


def test_forky_layout_without_qemu_user_static(tmp_path: Path, httpserver: HTTPServer, key: GpgKey) -> None:
    archive = trixie_archive(tmp_path / "archive", key, suite="forky", with_static=False)
    result = fetch(serve(httpserver, archive.root), "forky", key, tmp_path / "cache")
    assert (result.package, result.codename) == ("qemu-user", "forky")
    runs(result.path, "qemu-arm")


def test_suite_name_resolves_to_its_codename_and_keys_the_cache(
    tmp_path: Path, httpserver: HTTPServer, key: GpgKey
) -> None:
    archive = Archive(tmp_path / "archive", suite="stable")
    archive.add_real(real_package("trixie", "qemu-user-static"))
    archive.add_real(real_package("trixie", "qemu-user"))
    archive.write(key, suite_field="stable", codename="trixie")
    cache = tmp_path / "cache"
    mirror = serve(httpserver, archive.root)
    result = fetch(mirror, "stable", key, cache)
    assert result.codename == "trixie"
    assert [p.name.split("_")[0] for p in (cache / "index").glob("*.json")] == ["trixie"]
    # --offline with the suite's name finds the codename's record (with the keys that verified it).
    (offline,) = fetch_all(["qemu-arm-static"], fetcher.Archive(mirror, "stable", (key.keyring,)), cache, offline=True)
    assert offline.path == result.path and not offline.downloaded


@pytest.fixture(scope="module")
def zstd_qemu_user(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real trixie qemu-user, repacked by dpkg-deb with zstd (as Ubuntu packs); cached per machine."""
    real = real_package("trixie", "qemu-user")
    cached = debian_archive.test_cache_dir() / "debian" / "trixie" / f"{real.deb.stem}.zst.deb"
    if not cached.is_file():
        work = tmp_path_factory.mktemp("zstd")
        tree = work / "tree"
        subprocess.run(["dpkg-deb", "-R", str(real.deb), str(tree)], check=True)
        part = cached.with_suffix(".part")
        repack = ["dpkg-deb", "-Zzstd", "-z3", "--root-owner-group", "-b", str(tree), str(part)]
        subprocess.run(repack, check=True, capture_output=True)
        os.replace(part, cached)
        shutil.rmtree(work)
    return cached


def test_a_zstd_deb_works(tmp_path: Path, httpserver: HTTPServer, key: GpgKey, zstd_qemu_user: Path) -> None:
    members = subprocess.run(["ar", "t", str(zstd_qemu_user)], capture_output=True, text=True, check=True).stdout
    assert "data.tar.zst" in members.split()
    archive = Archive(tmp_path / "archive", suite="trixie")
    archive.add_real(real_package("trixie", "qemu-user-static"))
    archive.add(zstd_qemu_user, package="qemu-user", version="1:10.0.13+ds-0+deb13u1", arch="amd64")
    archive.write(key, codename="trixie")
    result = fetch(serve(httpserver, archive.root), "trixie", key, tmp_path / "cache")
    assert result.package == "qemu-user"
    runs(result.path, "qemu-arm")


# --- the real InRelease files, with the bundled keys alone ---------------------------------------


HIDDEN_KEYRINGS_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from xcompile.archive import trust
    from xcompile.system.runner import Runner
    quiet = Runner(lambda line, label: None)
    hidden = [str(p) for p in trust.host_keyrings()]
    out = {"host_keyrings": hidden}
    for path in sys.argv[1:]:
        text, signer = trust.verify(quiet, trust.keyrings(), Path(path).read_bytes())
        out[path] = [str(signer), text.decode().split("Codename: ")[1].split()[0]]
    print(json.dumps(out))
    """
)


def hidden_keyrings(*argv: str) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in a private mount namespace where the host's keyring folders are empty tmpfs."""
    assert os.geteuid() == 0, "hiding the host's keyrings needs root (unshare -m, mount)"
    assert shutil.which("unshare"), "unshare (util-linux) is missing"
    mounts = " && ".join(
        f"mount -t tmpfs none {d}" for d in ("/usr/share/keyrings", "/etc/apt/trusted.gpg.d") if Path(d).is_dir()
    )
    script = f'{mounts} && exec "$@"' if mounts else 'exec "$@"'
    return subprocess.run(["unshare", "-m", "sh", "-c", script, "-", *argv], capture_output=True, text=True)


def test_real_inrelease_files_verify_with_the_bundled_keys_alone() -> None:
    files = [str(real_inrelease("bookworm")), str(real_inrelease("trixie"))]
    ran = hidden_keyrings(sys.executable, "-c", HIDDEN_KEYRINGS_SCRIPT, *files)
    assert ran.returncode == 0, ran.stderr
    out = json.loads(ran.stdout)
    assert out["host_keyrings"] == []  # really out of sight
    assert out[files[0]][1] == "bookworm" and out[files[1]][1] == "trixie"
    for path in files:
        assert "Debian" in out[path][0] and "(" in out[path][0]
    # The host still has its keyrings: the namespace was private.
    assert trust.host_keyrings()


def test_the_bundled_keys_refuse_a_real_inrelease_that_was_changed() -> None:
    text = real_inrelease("trixie").read_bytes().replace(b"Codename: trixie", b"Codename: trixiE")
    with pytest.raises(VerificationError, match="signature"):
        trust.verify(QUIET, (trust.BUNDLED_KEYRING,), text)


def test_with_keyrings_hidden_an_archive_signed_by_a_throwaway_key_is_refused(
    tmp_path: Path, httpserver: HTTPServer, key: GpgKey
) -> None:
    archive = bookworm_archive(tmp_path / "archive", key)
    mirror = serve(httpserver, archive.root)
    dest = tmp_path / "dest"
    dest.mkdir()
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    qemu = ["qemu", "--source", "download", "--mirror", mirror, "--suite", "bookworm", "--dest", str(dest)]
    argv = [sys.executable, "-m", "xcompile", *qemu]
    hide = 'mount -t tmpfs none /usr/share/keyrings && mount -t tmpfs none /etc/apt/trusted.gpg.d && exec "$@"'
    ran = subprocess.run(["unshare", "-m", "sh", "-c", hide, "-", *argv], capture_output=True, text=True, env=env)
    assert ran.returncode == 1, ran.stderr
    last = ran.stderr.splitlines()[-1]
    assert last.startswith("xcompile: error: ") and "no good signature by a trusted key" in last
    assert "Traceback" not in ran.stderr
    assert list(dest.iterdir()) == []
    cache = tmp_path / "cache"
    assert not cache.exists() or [p for p in cache.rglob("*") if p.is_file()] == []
    assert debs_fetched(httpserver) == []
