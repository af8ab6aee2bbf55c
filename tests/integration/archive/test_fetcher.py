"""xcompile.archive.fetcher against a real HTTP server on 127.0.0.1 serving an archive built in tmp.

The archive is signed with throwaway gpg keys; the end-to-end test uses the
real qemu-user-static .deb and runs the extracted qemu on an armhf busybox.
Nothing here skips: a missing tool or .deb is a failure. What needs neither gpg nor the real .deb
is in tests/unit (archive/test_fetcher.py, host/test_aptsources.py, host/test_elf.py)."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from debian_archive import QEMU, Archive, GpgKey, build_deb, file_handler, real_deb, tiny_elf
from pytest_httpserver import HTTPServer
from werkzeug.wrappers import Request, Response

from xcompile.archive import fetcher
from xcompile.archive.download import ProgressEvent, make_session
from xcompile.archive.fetcher import FetchResult, fetch_all
from xcompile.archive.transfer import MAX_BODY_RESUMES
from xcompile.errors import (
    CacheError,
    DownloadError,
    PackageMissing,
    QemuUnavailable,
    UsageError,
    VerificationError,
)
from xcompile.host.elf import host_debian_arch

PREFIX = "/debian"
ARCH = host_debian_arch()
DEB_URI = re.compile(r".*\.deb$")


@pytest.fixture(scope="session")
def keys() -> Iterator[tuple[GpgKey, GpgKey]]:
    good, wrong = GpgKey.create("Test Archive"), GpgKey.create("Wrong Key")
    yield good, wrong
    good.close()
    wrong.close()


@pytest.fixture(scope="session")
def synthetic_deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 2 MiB of random payload: several progress steps, and a body worth cutting.
    return build_deb(
        tmp_path_factory.mktemp("debs") / "qemu.deb",
        version="1:7.2+dfsg-7",
        files={
            "usr/bin/qemu-arm-static": tiny_elf(size=2 << 20),
            "usr/bin/qemu-aarch64-static": tiny_elf(),
            "usr/share/doc/qemu-user-static/README": b"synthetic\n",
        },
    )


@dataclass
class Site:
    archive: Archive
    server: HTTPServer
    cache: Path
    key: GpgKey

    @property
    def mirror(self) -> str:
        return self.server.url_for(PREFIX)

    @property
    def deb_uri(self) -> str:
        return f"{PREFIX}/{self.archive.entries[0].filename}"

    @property
    def deb_file(self) -> Path:
        return self.archive.root / self.archive.entries[0].filename

    def serve(self, deb_handler: Callable[[Request], Response] | None = None) -> None:
        if deb_handler is not None:
            self.server.expect_request(DEB_URI).respond_with_handler(deb_handler)
        self.server.expect_request(re.compile(f"^{PREFIX}/")).respond_with_handler(
            file_handler(self.archive.root, PREFIX)
        )

    def fetch(
        self,
        binary: str = "qemu-arm-static",
        *,
        keyring: Path | str | None = "default",
        mirror: str | None = None,
        suite: str | None = None,
        allow_unsigned: bool = False,
        cache_dir: Path | None = None,
        **kwargs: Any,
    ) -> FetchResult:
        """``binary`` fetched (fetch_all) from this site, trusting its key unless ``keyring`` says
        otherwise (None: the defaults)."""
        ring = self.key.keyring if keyring == "default" else keyring
        archive = fetcher.Archive(
            mirror or self.mirror,
            suite or self.archive.suite,
            keyrings=(Path(ring),) if ring else (),
            allow_unsigned=allow_unsigned,
        )
        kwargs.setdefault("timeout", 5.0)
        (found,) = fetch_all([binary], archive, cache_dir or self.cache, **kwargs)
        return found

    def paths(self) -> list[str]:
        return [request.path for request, _ in self.server.log]

    def deb_requests(self) -> list[Request]:
        return [request for request, _ in self.server.log if request.path.endswith(".deb")]


@pytest.fixture
def site(tmp_path: Path, httpserver: HTTPServer, keys: tuple[GpgKey, GpgKey], synthetic_deb: Path) -> Site:
    archive = Archive(tmp_path / "archive")
    archive.add(synthetic_deb, package=QEMU, version="1:7.2+dfsg-7", arch=ARCH)
    archive.write(keys[0])
    return Site(archive, httpserver, tmp_path / "cache", keys[0])


def leftovers(cache: Path) -> list[Path]:
    return sorted(cache.rglob("*.part")) if cache.exists() else []


def assert_nothing_kept(cache: Path) -> None:
    """No partial file and no package or binary: a failure leaves the cache as it was."""
    assert leftovers(cache) == []
    kept = [p for p in cache.rglob("*") if p.is_file()] if cache.exists() else []
    assert kept == []


def cut_response(data: bytes, keep: int) -> Response:
    """Announce all of ``data`` but send only ``keep`` bytes: a connection cut mid-body."""

    def body() -> Iterator[bytes]:
        yield data[:keep]

    return Response(
        body(),
        status=200,
        content_type="application/octet-stream",
        headers={"Content-Length": str(len(data)), "Connection": "close"},
    )


def test_missing_keyring_file_is_a_usage_error(site: Site) -> None:
    site.serve()
    with pytest.raises(UsageError, match="does not exist"):
        site.fetch(keyring=site.cache / "nope.gpg")


# --- signatures ---------------------------------------------------------------------------------


def test_good_signature(site: Site) -> None:
    site.serve()
    events: list[ProgressEvent] = []
    result = site.fetch(mirror=site.mirror + "//", progress=events.append)
    assert result.signer.startswith("Test Archive") and result.downloaded
    assert result.notes == ()
    assert result.version == "1:7.2+dfsg-7"
    assert result.path.parent.parent == site.cache / "bin" and result.path.name == "qemu-arm-static"
    assert result.path.read_bytes().startswith(b"\x7fELF")
    assert stat.S_IMODE(result.path.stat().st_mode) == 0o755
    assert (site.cache / "debs" / f"{result.path.parent.name}.deb").is_file()
    assert leftovers(site.cache) == []
    deb_events = [e for e in events if e.what.endswith(".deb")]
    assert deb_events[0].done_bytes == 0 and deb_events[-1].finished
    assert deb_events[-1].done_bytes == deb_events[-1].total_bytes == site.deb_file.stat().st_size
    assert len(deb_events) <= 2 + site.deb_file.stat().st_size // (1 << 20)


def test_good_detached_signature_on_release(site: Site) -> None:
    site.archive.write(site.key, inrelease=False, release_gpg=True)
    site.serve()
    assert site.fetch().signer
    assert site.paths()[:3] == [f"{PREFIX}/dists/bookworm/{n}" for n in ("InRelease", "Release", "Release.gpg")]


def test_signature_by_another_key_is_refused(site: Site, keys: tuple[GpgKey, GpgKey]) -> None:
    site.serve()
    with pytest.raises(VerificationError, match="no good signature") as err:
        site.fetch(keyring=keys[1].keyring)
    assert err.value.exit_code == 1
    assert "gpgv" in err.value.details()
    assert site.deb_requests() == []
    assert_nothing_kept(site.cache)


def test_tampered_inrelease_is_refused(site: Site) -> None:
    inrelease = site.archive.dists / "InRelease"
    text = inrelease.read_text()
    inrelease.write_text(re.sub(r"(?m)^ ([0-9a-f]{64})", lambda m: " " + "0" * 64, text))
    site.serve()
    with pytest.raises(VerificationError, match="bad signature"):
        site.fetch()
    assert_nothing_kept(site.cache)


def test_unsigned_release_is_refused(site: Site) -> None:
    site.archive.write(None)
    site.serve()
    with pytest.raises(VerificationError, match="not signed") as err:
        site.fetch(keyring=None)
    assert "--allow-unsigned" in str(err.value)
    assert site.deb_requests() == []
    assert_nothing_kept(site.cache)


def test_unsigned_release_is_taken_with_allow_unsigned_and_warned_every_run(site: Site) -> None:
    site.archive.write(None)
    site.serve()
    first = site.fetch(keyring=None, allow_unsigned=True)
    assert first.signer == "" and first.path.is_file()
    assert len(first.notes) == 1 and "NOT verified" in first.notes[0]
    again = site.fetch(keyring=None, allow_unsigned=True)
    assert not again.downloaded and "NOT verified" in again.notes[0]
    offline = site.fetch(keyring=None, allow_unsigned=True, offline=True)
    assert "NOT verified" in offline.notes[0]
    with pytest.raises(VerificationError, match="not verified"):
        site.fetch(keyring=None, offline=True)


def test_archive_signed_by_an_untrusted_key_is_refused_by_the_default_trust(site: Site, tmp_path: Path) -> None:
    # Neither the bundled Debian keys nor the host's know the test key.
    site.serve()
    with pytest.raises(VerificationError, match="no good signature") as err:
        site.fetch(keyring=None)
    assert "--keyring" in str(err.value)
    assert site.deb_requests() == []
    assert_nothing_kept(site.cache)
    # ...and --allow-unsigned takes it, saying so.
    taken = site.fetch(keyring=None, allow_unsigned=True)
    assert taken.signer == "" and "no good signature" in taken.notes[0]


def test_trusted_keyring_dirs_count(site: Site, tmp_path: Path) -> None:
    site.serve()
    keyrings = tmp_path / "trusted.gpg.d"
    keyrings.mkdir()
    shutil.copy(site.key.keyring, keyrings / "test-archive.gpg")
    result = site.fetch(keyring=None, keyring_dirs=(keyrings,))
    assert result.signer.startswith("Test Archive") and site.key.fingerprint in result.signer
    assert result.notes == ()


def test_ascii_armored_host_key_counts(site: Site, tmp_path: Path) -> None:
    site.serve()
    keyrings = tmp_path / "trusted.gpg.d"
    keyrings.mkdir()
    armored = subprocess.run(
        ["gpg", "--homedir", str(site.key.home), "--armor", "--export", site.key.fingerprint],
        check=True,
        capture_output=True,
    ).stdout
    (keyrings / "test-archive.asc").write_bytes(armored)
    assert site.fetch(keyring=None, keyring_dirs=(keyrings,)).signer.startswith("Test Archive")


def test_third_party_keys_in_usr_share_keyrings_do_not_count(site: Site, tmp_path: Path) -> None:
    site.serve()
    keyrings = tmp_path / "keyrings"
    keyrings.mkdir()
    shutil.copy(site.key.keyring, keyrings / "nodesource.gpg")
    with pytest.raises(VerificationError, match="no good signature"):
        site.fetch(keyring=None, keyring_dirs=(keyrings,))
    shutil.copy(site.key.keyring, keyrings / "debian-archive-test.gpg")
    assert site.fetch(keyring=None, keyring_dirs=(keyrings,)).signer


def test_without_gpgv_pysequoia_verifies(site: Site, tmp_path: Path) -> None:
    site.serve()
    from xcompile.system.runner import Runner

    class NoGpgv(Runner):
        def which(self, program: str) -> Path | None:
            return None if program == "gpgv" else super().which(program)

    result = site.fetch(runner=NoGpgv(lambda line, label: None))
    assert result.signer.startswith("Test Archive") and site.key.fingerprint in result.signer
    with pytest.raises(VerificationError, match="no good signature"):
        site.fetch(runner=NoGpgv(lambda line, label: None), keyring=None, cache_dir=tmp_path / "other")


def test_release_of_another_suite_is_refused(site: Site) -> None:
    # A correctly signed Release for bullseye, served where bookworm's should be.
    (site.archive.root / "dists" / "bookworm").rename(site.archive.root / "dists" / "bullseye")
    site.archive.suite = "bullseye"
    site.archive.write(site.key)
    (site.archive.root / "dists" / "bookworm").symlink_to("bullseye")
    site.serve()
    with pytest.raises(VerificationError, match="describes suite"):
        site.fetch(suite="bookworm")


# --- HTTP faults --------------------------------------------------------------------------------


def test_500_then_200_recovers(site: Site) -> None:
    serve_file = file_handler(site.archive.root, PREFIX)
    server = site.server
    server.expect_ordered_request(f"{PREFIX}/dists/bookworm/InRelease").respond_with_handler(serve_file)
    server.expect_ordered_request(f"{PREFIX}/dists/bookworm/main/binary-{ARCH}/Packages.xz").respond_with_handler(
        serve_file
    )
    server.expect_ordered_request(site.deb_uri).respond_with_data("oops", status=500)
    server.expect_ordered_request(site.deb_uri).respond_with_handler(serve_file)
    result = site.fetch()
    assert result.downloaded and result.path.is_file()
    server.check_assertions()
    assert server.ordered_handlers == []
    assert [r.status_code for r in (resp for _, resp in server.log)][-2:] == [500, 200]


def test_cut_mid_body_resumes_with_range(site: Site) -> None:
    data = site.deb_file.read_bytes()
    serve_file = file_handler(site.archive.root, PREFIX)
    cuts = iter([True])

    def deb(request: Request) -> Response:
        if next(cuts, False):
            return cut_response(data, keep=len(data) // 3)
        return serve_file(request)

    site.serve(deb)
    result = site.fetch()
    assert result.downloaded and result.path.is_file()
    first, second = site.deb_requests()
    assert "Range" not in first.headers
    # Resumed from the last whole chunk received: urllib3 drops the chunk it
    # was reading when the connection broke.
    match = re.fullmatch(r"bytes=(\d+)-", second.headers["Range"])
    assert match is not None
    start = int(match.group(1))
    assert 0 < start <= len(data) // 3
    assert [resp.status_code for req, resp in site.server.log if req is second] == [206]


def test_cut_mid_body_restarts_when_range_is_ignored(site: Site) -> None:
    data = site.deb_file.read_bytes()
    cuts = iter([True])

    def deb(request: Request) -> Response:
        if next(cuts, False):
            return cut_response(data, keep=len(data) // 2)
        return Response(data, status=200, content_type="application/octet-stream")

    site.serve(deb)
    assert site.fetch().path.is_file()
    assert len(site.deb_requests()) == 2


def test_cut_every_time_fails_clean(site: Site) -> None:
    data = site.deb_file.read_bytes()
    site.serve(lambda request: cut_response(data, keep=len(data) // 4))
    with pytest.raises(DownloadError, match=f"cut off {1 + MAX_BODY_RESUMES} times, gave up") as err:
        site.fetch()
    assert err.value.exit_code == 3
    assert site.deb_uri in str(err.value)
    assert len(site.deb_requests()) == 1 + MAX_BODY_RESUMES
    assert_nothing_kept(site.cache)


def test_flipped_byte_is_refused(site: Site) -> None:
    data = bytearray(site.deb_file.read_bytes())
    data[len(data) // 2] ^= 0x01
    site.serve(lambda request: Response(bytes(data), content_type="application/octet-stream"))
    with pytest.raises(VerificationError, match="SHA256 mismatch") as err:
        site.fetch()
    assert err.value.exit_code == 1
    assert_nothing_kept(site.cache)


def test_longer_body_than_the_index_says_is_refused(site: Site) -> None:
    data = site.deb_file.read_bytes() + b"trailing junk"
    site.serve(lambda request: Response(data, content_type="application/octet-stream"))
    with pytest.raises(VerificationError, match="says"):
        site.fetch()
    assert_nothing_kept(site.cache)


@pytest.mark.parametrize("where", ["before the headers", "mid-body"])
def test_stall_times_out(site: Site, where: str) -> None:
    release = threading.Event()
    data = site.deb_file.read_bytes()

    def stall(request: Request) -> Response:
        if where == "before the headers":
            release.wait(10)
            return Response(data)

        def body() -> Iterator[bytes]:
            yield data[:4096]
            release.wait(10)
            yield data[4096:]

        return Response(body(), headers={"Content-Length": str(len(data))})

    site.serve(stall)
    start = time.monotonic()
    try:
        with pytest.raises(DownloadError, match="timed out"):
            site.fetch(timeout=0.3, session=make_session(retries=1, backoff=0))
    finally:
        release.set()
    assert time.monotonic() - start < 5
    assert_nothing_kept(site.cache)


def test_404_names_the_url(site: Site) -> None:
    site.deb_file.unlink()
    site.serve()
    with pytest.raises(DownloadError, match="HTTP 404") as err:
        site.fetch()
    assert site.deb_uri in str(err.value) and err.value.status == 404
    assert_nothing_kept(site.cache)


def test_unknown_suite(site: Site) -> None:
    site.serve()
    with pytest.raises(DownloadError, match="no Release either") as err:
        site.fetch(suite="nosuchsuite")
    assert "suite name" in str(err.value)


def test_5xx_outlasting_retries(site: Site) -> None:
    site.serve(lambda request: Response("busy", status=503))
    with pytest.raises(DownloadError, match="HTTP 503") as err:
        site.fetch()  # the default session: 3 retries
    assert err.value.exit_code == 3
    assert len(site.deb_requests()) == 4
    assert_nothing_kept(site.cache)


def test_unreachable_mirror(tmp_path: Path, keys: tuple[GpgKey, GpgKey]) -> None:
    with pytest.raises(DownloadError, match="cannot connect"):
        fetch_all(
            ["qemu-arm-static"],
            fetcher.Archive("http://127.0.0.1:9/debian", "bookworm", keyrings=(keys[0].keyring,)),
            tmp_path,
            session=make_session(retries=0),
            timeout=2,
        )


# --- the index and the package ------------------------------------------------------------------


def test_index_without_the_package(site: Site, tmp_path: Path) -> None:
    other = build_deb(
        tmp_path / "busybox.deb", package="busybox-static", version="1:1.35.0-4", files={"bin/busybox": tiny_elf()}
    )
    site.archive.entries.clear()
    site.archive.add(other, package="busybox-static", version="1:1.35.0-4", arch=ARCH)
    site.archive.add(other, package="qemu-user-static-extra", version="1.0", arch=ARCH)
    site.archive.write(site.key)
    site.serve()
    with pytest.raises(PackageMissing, match="no package holds usr/bin/qemu-arm-static") as err:
        site.fetch()
    assert err.value.exit_code == 3
    assert site.deb_requests() == []


def test_packages_xz_not_matching_release_is_refused(site: Site) -> None:
    site.archive.packages_xz.write_bytes(site.archive.packages_xz.read_bytes()[:-1] + b"\0")
    site.serve()
    with pytest.raises(VerificationError, match="Release says"):
        site.fetch()
    assert site.deb_requests() == []
    assert_nothing_kept(site.cache)


def test_highest_version_wins(site: Site, tmp_path: Path) -> None:
    versions = ["7.2+dfsg-7+deb12u18", "1:7.2+dfsg-7+deb12u18", "1:7.2+dfsg-7+deb12u18~rc1"]
    site.archive.entries.clear()
    for i, version in enumerate(versions):
        deb = build_deb(tmp_path / f"q{i}.deb", version=version, files={"usr/bin/qemu-arm-static": tiny_elf()})
        site.archive.add(deb, package=QEMU, version=version, arch=ARCH)
    site.archive.write(site.key)
    site.serve()
    assert site.fetch().version == "1:7.2+dfsg-7+deb12u18"


def test_binary_not_in_the_package(site: Site) -> None:
    site.serve()
    with pytest.raises(PackageMissing, match="no package holds usr/bin/qemu-mips-static"):
        site.fetch("qemu-mips-static")
    assert leftovers(site.cache) == []
    assert not (site.cache / "bin").exists() or not any((site.cache / "bin").rglob("qemu-*"))


@pytest.mark.parametrize(
    "elf",
    [
        pytest.param(lambda: tiny_elf(dynamic=True), id="dynamic"),
        pytest.param(lambda: tiny_elf(machine=40 if ARCH != "armhf" else 62), id="foreign"),
        pytest.param(lambda: b"#!/bin/sh\necho not elf\n", id="script"),
    ],
)
def test_binary_that_is_not_a_static_host_elf_is_refused(site: Site, tmp_path: Path, elf: Callable[[], bytes]) -> None:
    deb = build_deb(tmp_path / "bad.deb", files={"usr/bin/qemu-arm-static": elf()})
    site.archive.entries.clear()
    site.archive.add(deb, package=QEMU, version="1:7.2+dfsg-7", arch=ARCH)
    site.archive.write(site.key)
    site.serve()
    with pytest.raises(VerificationError):
        site.fetch()
    assert leftovers(site.cache) == []
    assert not any((site.cache / "bin").rglob("qemu-*"))


# --- disk and Ctrl-C ----------------------------------------------------------------------------


def test_disk_full(site: Site, tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.mkdir()
    # 1 MiB of tmpfs: Release and Packages.xz fit, the 2 MiB .deb does not.
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)], check=True)
    try:
        site.serve()
        with pytest.raises(CacheError, match="no space left") as err:
            site.fetch(cache_dir=small)
        assert err.value.exit_code == 3
        assert len(site.deb_requests()) == 1  # a full disk is no cut body: nothing is resumed
        assert leftovers(small) == []
        assert not any(small.rglob("*.deb"))
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_ctrl_c_leaves_no_part_file(site: Site) -> None:
    site.serve()

    def interrupt(event: ProgressEvent) -> None:
        if event.what.endswith(".deb") and event.done_bytes > 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        site.fetch(progress=interrupt)
    assert_nothing_kept(site.cache)


# --- the cache ----------------------------------------------------------------------------------


def test_cache_hit_downloads_and_extracts_nothing(site: Site) -> None:
    site.serve()
    first = site.fetch()
    before = first.path.stat()
    site.server.clear_log()
    second = site.fetch()
    assert second.path == first.path and not second.downloaded
    assert site.deb_requests() == []
    # The index did not change, so the record spares us Packages.xz too.
    assert site.paths() == [f"{PREFIX}/dists/bookworm/InRelease"]
    after = second.path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_new_upload_is_fetched(site: Site, tmp_path: Path) -> None:
    site.serve()
    first = site.fetch()
    newer = build_deb(
        tmp_path / "newer.deb", version="1:7.2+dfsg-7+deb12u1", files={"usr/bin/qemu-arm-static": tiny_elf()}
    )
    site.archive.add(newer, package=QEMU, version="1:7.2+dfsg-7+deb12u1", arch=ARCH)
    site.archive.write(site.key)
    second = site.fetch()
    assert second.downloaded and second.version == "1:7.2+dfsg-7+deb12u1"
    assert second.sha256 != first.sha256 and first.path.is_file()


def test_offline_serves_from_cache_without_any_request(site: Site) -> None:
    site.serve()
    online = site.fetch()
    site.server.clear()
    offline = site.fetch(offline=True)
    assert offline.path == online.path and not offline.downloaded
    assert offline.signer == online.signer and offline.notes == ()
    # Another binary of the same cached package: extracted, still without the network.
    other = site.fetch("qemu-aarch64-static", offline=True)
    assert other.path.is_file() and other.path.parent == online.path.parent
    assert site.server.log == []


def test_offline_without_cache_says_what_to_do(site: Site) -> None:
    site.serve()
    with pytest.raises(QemuUnavailable) as err:
        site.fetch(offline=True)
    assert "offline: no cached qemu-arm-static" in str(err.value)
    assert "run once without --offline" in str(err.value)
    assert err.value.exit_code == 3
    assert site.server.log == []


# --- the real package, end to end ---------------------------------------------------------------


def test_real_qemu_runs_armhf_busybox(tmp_path: Path, httpserver: HTTPServer, keys: tuple[GpgKey, GpgKey]) -> None:
    qemu_deb = real_deb(QEMU)
    archive = Archive(tmp_path / "archive")
    archive.add(qemu_deb)
    archive.write(keys[0])
    site = Site(archive, httpserver, tmp_path / "cache", keys[0])
    site.serve()

    result = site.fetch()
    assert result.downloaded and result.signer
    assert result.version == archive.entries[0].version
    version = subprocess.run([str(result.path), "--version"], check=True, capture_output=True, text=True).stdout
    assert "qemu-arm version" in version

    busybox_deb = real_deb("busybox-static", "armhf")
    root = tmp_path / "busybox"
    subprocess.run(["dpkg-deb", "-x", str(busybox_deb), str(root)], check=True)
    echo = subprocess.run(
        [str(result.path), str(root / "bin" / "busybox"), "echo", "hi"], check=True, capture_output=True, text=True
    )
    assert echo.stdout == "hi\n"

    site.server.clear_log()
    again = site.fetch()
    assert not again.downloaded and again.path == result.path
    assert site.deb_requests() == []
    assert os.access(again.path, os.X_OK)


# --- freshness ------------------------------------------------------------------------------------


def cache_files(cache: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(cache.rglob("*")) if p.is_file()} if cache.exists() else {}


def test_expired_valid_until_is_refused(site: Site) -> None:
    site.archive.write(site.key, date=time.time() - 10 * 86400, valid_until=time.time() - 3 * 86400)
    site.serve()
    with pytest.raises(VerificationError, match=r"expired on .* \(Valid-Until\)") as err:
        site.fetch()
    assert err.value.exit_code == 1
    assert site.deb_requests() == []
    assert_nothing_kept(site.cache)


def test_valid_until_in_the_future_is_fine(site: Site) -> None:
    site.archive.write(site.key, valid_until=time.time() + 7 * 86400)
    site.serve()
    assert site.fetch().path.is_file()


def test_release_dated_in_the_future_is_refused(site: Site) -> None:
    site.archive.write(site.key, date=time.time() + 3600)
    site.serve()
    with pytest.raises(VerificationError, match="in the future"):
        site.fetch()
    assert_nothing_kept(site.cache)


def test_small_clock_skew_is_tolerated(site: Site) -> None:
    site.archive.write(site.key, date=time.time() + 120)
    site.serve()
    assert site.fetch().path.is_file()


def test_rollback_to_an_older_release_is_refused(site: Site, tmp_path: Path) -> None:
    site.serve()
    site.fetch()
    before = cache_files(site.cache)
    # The mirror now serves a properly signed, but older, Release (and a different package).
    older = build_deb(tmp_path / "older.deb", version="1:7.0-1", files={"usr/bin/qemu-arm-static": tiny_elf()})
    site.archive.entries.clear()
    site.archive.add(older, package=QEMU, version="1:7.0-1", arch=ARCH)
    site.archive.write(site.key, date=time.time() - 86400)
    site.server.clear_log()
    with pytest.raises(VerificationError, match="a rollback"):
        site.fetch()
    assert site.deb_requests() == []
    assert cache_files(site.cache) == before
    assert leftovers(site.cache) == []


def test_rollback_is_judged_per_mirror_and_suite(site: Site) -> None:
    site.serve()
    site.fetch()
    site.archive.write(site.key, date=time.time() - 86400)
    # Another cache (another user) has seen nothing newer: the older Release is all it knows.
    assert site.fetch(cache_dir=site.cache.parent / "other-cache").path.is_file()


# --- a cache that cannot hand out damage ----------------------------------------------------------


def cut_short(path: Path) -> None:
    """Keep the ELF header and program headers, lose the rest: still looks like a static ELF."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_cached_binary_cut_short_is_extracted_again_from_the_cached_deb(site: Site) -> None:
    site.serve()
    first = site.fetch()
    whole = first.path.read_bytes()
    cut_short(first.path)
    site.server.clear_log()
    again = site.fetch()
    assert again.path == first.path and again.path.read_bytes() == whole
    assert site.deb_requests() == []  # the cached .deb served, re-hashed first
    cut_short(first.path)
    offline = site.fetch(offline=True)
    assert offline.path.read_bytes() == whole


def test_cached_binary_and_deb_both_damaged_are_downloaded_again(site: Site) -> None:
    site.serve()
    first = site.fetch()
    whole = first.path.read_bytes()
    deb = site.cache / "debs" / f"{first.path.parent.name}.deb"
    cut_short(first.path)
    deb.write_bytes(deb.read_bytes()[:-100] + b"\0" * 100)
    site.server.clear_log()
    again = site.fetch()
    assert again.path.read_bytes() == whole and again.downloaded
    assert len(site.deb_requests()) == 1


def test_offline_never_hands_out_a_damaged_binary(site: Site) -> None:
    site.serve()
    first = site.fetch()
    cut_short(first.path)
    (site.cache / "debs" / f"{first.path.parent.name}.deb").unlink()
    with pytest.raises(QemuUnavailable, match="offline: no cached"):
        site.fetch(offline=True)
    assert not first.path.exists()


# --- what a mirror can make us do ---------------------------------------------------------------


def test_huge_retry_after_is_not_waited_out(site: Site) -> None:
    site.server.expect_request(f"{PREFIX}/dists/bookworm/InRelease").respond_with_response(
        Response("busy", status=503, headers={"Retry-After": "86400"})
    )
    site.serve()
    start = time.monotonic()
    with pytest.raises(DownloadError, match=r"HTTP 503.*asks to wait 86400 s") as err:
        site.fetch()
    assert time.monotonic() - start < 5
    assert err.value.exit_code == 3
    assert sum(1 for r, _ in site.server.log if r.path.endswith("InRelease")) == 1  # no retries either
    assert_nothing_kept(site.cache)


def test_short_retry_after_is_waited_out(site: Site) -> None:
    inrelease = site.archive.dists / "InRelease"
    site.server.expect_ordered_request(f"{PREFIX}/dists/bookworm/InRelease").respond_with_response(
        Response("busy", status=503, headers={"Retry-After": "1"})
    )
    site.server.expect_ordered_request(f"{PREFIX}/dists/bookworm/InRelease").respond_with_data(inrelease.read_bytes())
    site.serve()
    assert site.fetch().path.is_file()


def test_credentials_in_the_mirror_url_are_never_shown_or_recorded(site: Site) -> None:
    site.serve()
    secret_mirror = site.mirror.replace("http://", "http://alice:s3cret-pw@")
    result = site.fetch(mirror=secret_mirror)
    assert result.path.is_file()
    for path, data in cache_files(site.cache).items():
        assert b"s3cret" not in data and b"alice" not in data, path
    # A 404 (a wrong path) puts the URL in the message.
    with pytest.raises(DownloadError) as err:
        site.fetch(mirror=secret_mirror.replace("/debian", "/nowhere"))
    assert "s3cret" not in str(err.value) and "alice" not in str(err.value)
    assert "/nowhere/dists/bookworm/InRelease" in str(err.value)
    for bad in ("ftp://alice:s3cret-pw@host/debian", "http://alice:s3cret-pw@host/debian?token=s3cret"):
        with pytest.raises(UsageError) as refused:
            fetch_all(["qemu-arm-static"], fetcher.Archive(bad), site.cache)
        assert "s3cret" not in str(refused.value)


def test_a_huge_packages_paragraph_is_refused(site: Site) -> None:
    para = site.archive.packages_text() + b"\n\nPackage: x\nDescription: y\n" + b" z" * (1 << 20) + b"\n"
    site.archive.write(site.key, packages=para)
    site.serve()
    with pytest.raises(VerificationError, match="a paragraph larger than 1024 KiB"):
        site.fetch()
    assert_nothing_kept(site.cache)


def test_a_trickling_mirror_is_bounded_by_the_timeout(site: Site) -> None:
    data = (site.archive.dists / "InRelease").read_bytes()

    def trickle(request: Request) -> Response:
        def body() -> Iterator[bytes]:
            for i in range(0, len(data), 32):
                time.sleep(0.1)  # always within the read timeout
                yield data[i : i + 32]

        return Response(body(), status=200, headers={"Content-Length": str(len(data))})

    site.server.expect_request(f"{PREFIX}/dists/bookworm/InRelease").respond_with_handler(trickle)
    site.serve()
    start = time.monotonic()
    with pytest.raises(DownloadError, match="not done within 1 s"):
        site.fetch(timeout=0.5)
    assert time.monotonic() - start < 5
    assert_nothing_kept(site.cache)
