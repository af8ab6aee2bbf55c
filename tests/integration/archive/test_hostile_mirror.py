"""What a mirror or a URL can send to make xcompile write where it should not, fill the disk, or fail
with a traceback, each run as a user runs `xcompile qemu` against a server on 127.0.0.1:

- a Release whose Codename is a path (signed, and taken with --allow-unsigned);
- bodies without end: endless bytes, a gzip Content-Encoding that inflates 1000-fold, a small .deb
  whose member is (or claims to be) 300 MB; where the disk is what is at stake, the run gets a file
  size limit (RLIMIT_FSIZE), so writing what it should not ends in a different error;
- a Depends chain that never reaches the binary, and a Version that is not one.

Each of these was reproduced on the code before the fix (commit 6756343). Nothing here skips.
"""

from __future__ import annotations

import hashlib
import re
import resource
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run_xcompile
from debian_archive import QEMU, Archive, GpgKey, build_deb, file_handler, key_fixture, tiny_elf, zeros_tar_xz
from pytest_httpserver import HTTPServer
from werkzeug.wrappers import Request, Response

from xcompile.archive.download import MAX_BINARY
from xcompile.host.elf import host_debian_arch

PREFIX = "/debian"
ARCH = host_debian_arch()
ESCAPE = "../../../../tmp/escaped/dir"


key = key_fixture("Hardening Archive")


@pytest.fixture
def user(user_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return {**user_env, "XDG_CACHE_HOME": str(tmp_path / "cache")}


def serve(server: HTTPServer, root: Path) -> str:
    server.expect_request(re.compile(f"^{PREFIX}/")).respond_with_handler(file_handler(root, PREFIX))
    return server.url_for(PREFIX)


def limited(*args: str, env: dict[str, str], cwd: Path, fsize: int) -> subprocess.CompletedProcess[str]:
    """`python -m xcompile ARGS` that cannot write a file beyond ``fsize`` bytes (Python ignores
    SIGXFSZ, so such a write fails with EFBIG: xcompile then says it cannot write the cache)."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    argv = [sys.executable, "-m", "xcompile", *args]
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, preexec_fn=limit)


DOWNLOAD = ("qemu", "--source", "download")


def from_bookworm(mirror: str, *trust: str) -> list[str]:
    """The switches that download from ``mirror``'s bookworm, trusting what ``trust`` says."""
    return ["--mirror", mirror, "--suite", "bookworm", *trust]


def said(stderr: str) -> list[str]:
    """What xcompile itself said (warnings and errors), without the commands and the progress."""
    return [line for line in stderr.splitlines() if line.startswith("xcompile: ")]


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def requested(server: HTTPServer, suffix: str) -> list[str]:
    return [request.path for request, _ in server.log if request.path.endswith(suffix)]


def index_url(mirror: str, suite: str = "bookworm") -> str:
    return f"{mirror}/dists/{suite}/main/binary-{ARCH}/Packages.xz"


def small_deb(folder: Path, package: str, version: str = "1:7.2+dfsg-7", *, binary: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    files = {f"usr/share/doc/{package}/README": b"synthetic\n"}
    if binary:
        files["usr/bin/qemu-arm-static"] = tiny_elf()
    return build_deb(folder / f"{package}_{version.split(':')[-1]}.deb", package=package, version=version, files=files)


# --- a Codename that is a path -------------------------------------------------------------------


@pytest.mark.parametrize("trust", ["--keyring", "--allow-unsigned"])
def test_a_codename_that_is_a_path_is_refused_and_nothing_is_written_outside_the_cache(
    trust: str, key: GpgKey, httpserver: HTTPServer, user_env: dict[str, str], tmp_path: Path
) -> None:
    archive = Archive(tmp_path / "archive", suite="stable")
    archive.add(small_deb(tmp_path / "debs", QEMU, binary=True), package=QEMU, version="1:7.2+dfsg-7", arch=ARCH)
    archive.write(key if trust == "--keyring" else None, suite_field="stable", codename=ESCAPE)
    mirror = serve(httpserver, archive.root)
    # The cache is four folders down from `out`, so that the codename's ../../../.. from
    # cache/xcompile/index/ would land in out/tmp/escaped/ (from ~/.cache/xcompile/index/: /tmp/escaped/).
    out = tmp_path / "out"
    cache_home = out / "home" / "cache"
    env = {**user_env, "XDG_CACHE_HOME": str(cache_home)}
    given = [trust, str(key.keyring)] if trust == "--keyring" else [trust]
    got = run_xcompile(*DOWNLOAD, "--mirror", mirror, "--suite", "stable", *given, cwd=tmp_path, env=env)
    assert got.returncode == 1, got.stderr
    assert said(got.stderr) == [
        f"xcompile: error: {mirror}/dists/stable/Release names the codename {ESCAPE!r},"
        " which is not a Debian suite name"
    ]
    assert got.stdout == "" and "Traceback" not in got.stderr
    cache = cache_home / "xcompile"
    outside = [p for p in out.rglob("*") if p not in (out / "home", cache_home) and not p.is_relative_to(cache)]
    assert outside == []
    assert files_under(cache) == [] and requested(httpserver, ".deb") == []


# --- bodies without end ----------------------------------------------------------------------------


def test_a_url_serving_endless_bytes_stops_at_the_cap_and_keeps_nothing(
    httpserver: HTTPServer, user: dict[str, str], tmp_path: Path
) -> None:
    sent = [0]

    def endless(request: Request) -> Response:
        del request

        def body() -> Iterator[bytes]:
            chunk = bytes(1 << 20)
            while sent[0] < 16 * MAX_BINARY:  # "endless": 4 GiB, sixteen times the cap
                sent[0] += len(chunk)
                yield chunk

        return Response(body(), mimetype="application/octet-stream")  # no Content-Length

    httpserver.expect_request("/qemu-arm-static").respond_with_handler(endless)
    url = httpserver.url_for("/qemu-arm-static")
    got = run_xcompile(*DOWNLOAD, "--qemu-url", url, "--qemu-sha256", "0" * 64, cwd=tmp_path, env=user)
    assert got.returncode == 1, got.stderr
    (line,) = said(got.stderr)
    assert line.startswith(f"xcompile: error: {url}: more than {MAX_BINARY} bytes")
    assert sent[0] < 2 * MAX_BINARY  # it stopped reading, rather than ran out of server
    assert files_under(tmp_path / "cache") == []


@pytest.fixture(scope="module")
def gzip_bomb() -> tuple[bytes, str]:
    """1000 MB of zeros as gzip (about 1 MB), and the SHA256 of the 1000 MB."""
    inflated, squeeze, chunk = hashlib.sha256(), zlib.compressobj(9, zlib.DEFLATED, 31), bytes(1 << 20)
    parts = []
    for _ in range(1000):
        parts.append(squeeze.compress(chunk))
        inflated.update(chunk)
    parts.append(squeeze.flush())
    return b"".join(parts), inflated.hexdigest()


def test_a_gzip_content_encoding_is_hashed_as_served_and_never_inflated(
    gzip_bomb: tuple[bytes, str], httpserver: HTTPServer, user: dict[str, str], tmp_path: Path
) -> None:
    body, inflated = gzip_bomb
    assert len(body) < 2 << 20
    httpserver.expect_request("/qemu-arm-static").respond_with_data(
        body, content_type="application/octet-stream", headers={"Content-Encoding": "gzip"}
    )
    url = httpserver.url_for("/qemu-arm-static")
    # The SHA256 of what it inflates to: a client that inflates it would write 1000 MB (here: fail
    # on the 16 MiB limit) and match it.
    got = limited(*DOWNLOAD, "--qemu-url", url, "--qemu-sha256", inflated, cwd=tmp_path, env=user, fsize=16 << 20)
    assert got.returncode == 1, got.stderr
    assert said(got.stderr) == [
        f"xcompile: error: {url}: SHA256 mismatch: got {hashlib.sha256(body).hexdigest()}, --qemu-sha256 says"
        f" {inflated} — the download is corrupt or tampered with; nothing was kept"
    ]
    assert files_under(tmp_path / "cache") == []


@pytest.mark.parametrize("truthful", [True, False], ids=["expands to 300 MB", "claims 300 MB"])
def test_a_small_deb_with_a_300_mb_member_is_refused_unwritten(
    truthful: bool, httpserver: HTTPServer, user: dict[str, str], tmp_path: Path
) -> None:
    size = 300 << 20
    data = zeros_tar_xz("usr/bin/qemu-arm-static", size, truthful=truthful)
    deb = build_deb(tmp_path / "qemu.deb", data_tar_xz=data)
    assert deb.stat().st_size < 64 << 10
    archive = Archive(tmp_path / "archive", suite="bookworm")
    archive.add(deb, package=QEMU, version="1:7.2+dfsg-7", arch=ARCH)
    archive.write(None)  # unsigned: --allow-unsigned takes whatever the mirror says
    mirror = serve(httpserver, archive.root)
    got = limited(*DOWNLOAD, *from_bookworm(mirror, "--allow-unsigned"), cwd=tmp_path, env=user, fsize=64 << 20)
    assert got.returncode == 1, got.stderr
    assert said(got.stderr) == [
        f"xcompile: error: usr/bin/qemu-arm-static from qemu-user-static_7.2+dfsg-7_{ARCH}.deb: {size} bytes,"
        f" more than a static qemu can be ({MAX_BINARY} at most)"
    ]
    assert files_under(tmp_path / "cache" / "xcompile" / "bin") == []
    assert not list((tmp_path / "cache").rglob("*.part"))


# --- the walk through the index ------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["a chain of 11", "a circle"])
def test_a_depends_chain_that_never_reaches_the_binary_says_it_is_missing(
    shape: str, key: GpgKey, httpserver: HTTPServer, user: dict[str, str], tmp_path: Path
) -> None:
    links = [f"qemu-link-{i}" for i in range(1, 12 if shape == "a chain of 11" else 3)]
    archive = Archive(tmp_path / "archive", suite="bookworm")
    chain = [QEMU, *links]
    for package, after in zip(chain, [*chain[1:], QEMU if shape == "a circle" else ""], strict=True):
        deb = small_deb(tmp_path / "debs", package)
        archive.add(deb, package=package, version="1:7.2+dfsg-7", arch=ARCH, depends=after and f"{after} (>= 1:7.2)")
    archive.write(key)
    mirror = serve(httpserver, archive.root)
    got = run_xcompile(*DOWNLOAD, *from_bookworm(mirror, "--keyring", str(key.keyring)), cwd=tmp_path, env=user)
    assert got.returncode == 3, got.stderr
    (line,) = said(got.stderr)
    missing = f"xcompile: error: {index_url(mirror)}: no package holds usr/bin/qemu-arm-static (looked in "
    assert line.startswith(missing)
    assert re.search(r"\(looked in [^)]*qemu-link-1[,)]", line) and "links" not in line
    assert line.endswith(" — check the binary name, or use a suite that carries it")
    assert len(requested(httpserver, "Packages.xz")) == 1  # the index, once, however many packages are asked for
    assert files_under(tmp_path / "cache" / "xcompile" / "bin") == []


@pytest.mark.parametrize("case", ["the only paragraph", "beside a valid one", "pinned", "a dependency"])
def test_an_invalid_version_in_the_index_is_a_one_line_refusal(
    case: str, key: GpgKey, httpserver: HTTPServer, user: dict[str, str], tmp_path: Path
) -> None:
    bad = "1:7.2 dfsg-9"
    archive = Archive(tmp_path / "archive", suite="bookworm")
    debs = tmp_path / "debs"
    if case == "a dependency":
        archive.add(small_deb(debs, QEMU), package=QEMU, version="1:7.2+dfsg-7", arch=ARCH, depends="qemu-helper")
        archive.add(small_deb(debs, "qemu-helper", binary=True), package="qemu-helper", version=bad, arch=ARCH)
    else:
        if case == "beside a valid one":
            archive.add(small_deb(debs, QEMU, binary=True), package=QEMU, version="1:7.2+dfsg-7", arch=ARCH)
        archive.add(small_deb(debs, QEMU, "1:7.2+dfsg-9", binary=True), package=QEMU, version=bad, arch=ARCH)
    archive.write(key)
    mirror = serve(httpserver, archive.root)
    pin = ["--qemu-version", "7.2"] if case == "pinned" else []
    got = run_xcompile(*DOWNLOAD, *from_bookworm(mirror, "--keyring", str(key.keyring)), *pin, cwd=tmp_path, env=user)
    assert got.returncode == 1, got.stderr
    assert said(got.stderr) == [f"xcompile: error: {index_url(mirror)}: {bad!r} is not a Debian version"]
    assert "Traceback" not in got.stderr and got.stdout == ""
    assert files_under(tmp_path / "cache" / "xcompile" / "bin") == []


@pytest.mark.parametrize("epoch", ["9" * 5000, "2147483648", "\u0661"])
@pytest.mark.parametrize("pinned", [False, True])
def test_an_epoch_dpkg_refuses_is_a_one_line_refusal_where_versions_are_compared(
    epoch: str, pinned: bool, key: GpgKey, httpserver: HTTPServer, user: dict[str, str], tmp_path: Path
) -> None:
    """dpkg reads the epoch as an int ("epoch in version is too big"); a 5000-digit one made the
    comparison of two versions raise ValueError ("internal error"), pinned or not."""
    bad = f"{epoch}:7.2+dfsg-9"
    archive = Archive(tmp_path / "archive", suite="bookworm")
    debs = tmp_path / "debs"
    archive.add(small_deb(debs, QEMU, binary=True), package=QEMU, version="1:7.2+dfsg-7", arch=ARCH)
    archive.add(small_deb(debs, QEMU, "1:7.2+dfsg-9", binary=True), package=QEMU, version=bad, arch=ARCH)
    archive.write(key)
    mirror = serve(httpserver, archive.root)
    pin = ["--qemu-version", "7.2"] if pinned else []
    got = run_xcompile(*DOWNLOAD, *from_bookworm(mirror, "--keyring", str(key.keyring)), *pin, cwd=tmp_path, env=user)
    assert got.returncode == 1, got.stderr
    assert said(got.stderr) == [f"xcompile: error: {index_url(mirror)}: {bad[:60]!r} is not a Debian version"]
    assert "Traceback" not in got.stderr and got.stdout == ""
    assert files_under(tmp_path / "cache" / "xcompile" / "bin") == []


@pytest.mark.parametrize("what", [".deb", "Packages.xz"])
def test_under_allow_unsigned_a_size_the_mirror_claims_is_not_taken_on_its_word(
    what: str, httpserver: HTTPServer, user: dict[str, str], tmp_path: Path
) -> None:
    claimed = 10 << 30
    archive = Archive(tmp_path / "archive", suite="bookworm")
    deb = small_deb(tmp_path / "debs", QEMU, binary=True)
    archive.add(deb, package=QEMU, version="1:7.2+dfsg-7", arch=ARCH)
    text = archive.packages_text()
    if what == ".deb":
        text = text.replace(f"Size: {deb.stat().st_size}\n".encode(), f"Size: {claimed}\n".encode())
    archive.write(None, packages=text)
    if what == "Packages.xz":  # the Release, unsigned, says the index is 10 GiB
        release = archive.dists / "Release"
        release.write_text(
            re.sub(r" \d+ (main/binary-\S+/Packages\.xz)$", rf" {claimed} \1", release.read_text(), flags=re.MULTILINE)
        )

    def endless(request: Request) -> Response:
        del request
        return Response((bytes(1 << 20) for _ in range(512)), mimetype="application/octet-stream")

    httpserver.expect_request(re.compile(rf".*{re.escape(what)}$")).respond_with_handler(endless)
    mirror = serve(httpserver, archive.root)
    got = limited(*DOWNLOAD, *from_bookworm(mirror, "--allow-unsigned"), cwd=tmp_path, env=user, fsize=64 << 20)
    assert got.returncode == 1, got.stderr
    (line,) = said(got.stderr)
    source = "Packages" if what == ".deb" else "Release"
    assert re.fullmatch(
        rf"xcompile: error: \S+{re.escape(what)}: the {source}, not verified, says {claimed} bytes;"
        r" more than xcompile takes unverified \(\d+ at most\) — use a signed mirror",
        line,
    ), line
    assert requested(httpserver, what) == []  # refused before the download
    assert files_under(tmp_path / "cache" / "xcompile" / "bin") == []
