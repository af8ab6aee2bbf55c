"""A pinned qemu (--qemu-version) is looked for in every suite a mirror serves, in each of the archive's
layouts: bookworm's qemu-user-static, trixie's link into qemu-user, and a backports suite that has
qemu-user only. The mirror is built from the real .debs (tests/debian_archive.real_mirror), signed
with a throwaway key and served on 127.0.0.1; the command runs as a user runs it. Also: a pin no
suite holds, a qemu on PATH or from apt of another version, a snapshot archive as the mirror, and
how often a run reads each index and package. Nothing here skips.
"""

from __future__ import annotations

import calendar
import json
import re
import shutil
import subprocess
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest
from conftest import run_xcompile
from debian_archive import TRIXIE_BACKPORT, WEEK, Archive, GpgKey, file_handler, key_fixture, real_mirror, real_package
from pytest_httpserver import HTTPServer

from xcompile.archive import debfile, fetcher
from xcompile.archive.fetcher import FetchResult
from xcompile.errors import VerificationError
from xcompile.host import platforms
from xcompile.host.elf import host_debian_arch

PREFIX = "/debian"
SNAPSHOT = "/archive/debian/20250520T000000Z"
ARCH = host_debian_arch()
EIGHT = ("arm32v7", "arm64v8", "i386", "ppc64le", "s390x", "riscv64", "mips64le", "amd64")


def real_version(codename: str, package: str) -> str:
    return real_package(codename, package).field("Version")


def listed(suite: str, package: str) -> str:
    """The version debian_archive.real_mirror lists for ``package`` in ``suite``."""
    return TRIXIE_BACKPORT if suite == "trixie-backports" else real_version(suite, package)


# Each layout: (the pin, the suite that holds it, the package the binary is in); None pins the exact version.
LAYOUTS = {
    "bookworm, a prefix": ("7.2", "bookworm", "qemu-user-static"),
    "bookworm, exact": (None, "bookworm", "qemu-user-static"),
    "trixie, a link into qemu-user": ("10.0", "trixie", "qemu-user"),
    "trixie-backports, qemu-user only": ("11.1", "trixie-backports", "qemu-user"),
}


key = key_fixture("Pin Archive")


@pytest.fixture(scope="module")
def layouts(tmp_path_factory: pytest.TempPathFactory, key: GpgKey) -> Path:
    root = tmp_path_factory.mktemp("mirror")
    real_mirror(root, key)
    return root


@pytest.fixture(scope="module")
def may_2025(tmp_path_factory: pytest.TempPathFactory, key: GpgKey) -> Path:
    """The same suites as a mirror had them in May 2025: dated the 17th, the backports valid until the 24th."""
    root = tmp_path_factory.mktemp("snapshot")
    real_mirror(root, key, date=calendar.timegm((2025, 5, 17, 0, 0, 0)))
    return root


@pytest.fixture
def user(user_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """A user whose PATH has gpgv and cp but neither qemu nor apt, and whose cache is the test's own."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for program in ("cp", "gpgv"):
        found = shutil.which(program)
        assert found, f"{program} not installed; run ci/provision.sh"
        (bin_dir / program).symlink_to(found)
    return {**user_env, "PATH": str(bin_dir), "XDG_CACHE_HOME": str(tmp_path / "cache")}


def serve(server: HTTPServer, root: Path, prefix: str = PREFIX) -> str:
    server.clear()
    server.expect_request(re.compile(f"^{prefix}/")).respond_with_handler(file_handler(root, prefix))
    return server.url_for(prefix)


def fetch(mirror: str, key: GpgKey, cache: Path, pin: str | None, *binaries: str) -> list[FetchResult]:
    archive = fetcher.Archive(mirror, "stable", (key.keyring,))
    return fetcher.fetch_all(list(binaries or ["qemu-arm-static"]), archive, cache, pin=pin, timeout=10.0)


def requested(server: HTTPServer, suffix: str) -> list[str]:
    return [request.path for request, _ in server.log if request.path.endswith(suffix)]


def says(path: Path) -> str:
    """The first line of ``path --version``: what the binary itself says it is."""
    ran = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=30)
    assert ran.returncode == 0, ran.stderr
    return ran.stdout.splitlines()[0]


def qemu_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("xcompile: qemu: ")]
    assert len(lines) == 1, stderr
    return lines[0]


def errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("xcompile: ")]


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def from_mirror(mirror: str, key: GpgKey) -> tuple[str, ...]:
    """The switches that read ``mirror`` and trust ``key``."""
    return ("--mirror", mirror, "--keyring", str(key.keyring))


# --- 1. a pin is resolved in each layout ---------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_pin_is_taken_from_the_suite_that_holds_it(
    layout: str, layouts: Path, key: GpgKey, httpserver: HTTPServer, tmp_path: Path
) -> None:
    pin, suite, package = LAYOUTS[layout]
    version = listed(suite, package)
    mirror = serve(httpserver, layouts)
    (result,) = fetch(mirror, key, tmp_path / "cache", pin or version)
    assert (result.codename, result.package, result.version) == (suite, package, version)
    assert result.signer.startswith("Pin Archive <pin-archive@example.invalid> (")
    # The backport is trixie's .deb re-listed (debian_archive.real_mirror), so it says 10.0.13.
    upstream = "7.2." if suite == "bookworm" else "10.0.13 "
    assert says(result.path).startswith(f"qemu-arm version {upstream}")
    pool = f"{package}_{version.split(':', 1)[-1]}_"
    assert any(Path(path).name.startswith(pool) for path in requested(httpserver, ".deb"))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_command_says_which_suite_and_version_the_pin_took(
    layout: str, layouts: Path, key: GpgKey, httpserver: HTTPServer, user: dict[str, str], tmp_path: Path
) -> None:
    pin, suite, package = LAYOUTS[layout]
    version = listed(suite, package)
    mirror = serve(httpserver, layouts)
    download = ["qemu", "--source", "download", *from_mirror(mirror, key)]
    got = run_xcompile(*download, "--qemu-version", pin or version, cwd=tmp_path, env=user)
    assert got.returncode == 0, got.stderr
    path = Path(got.stdout.strip())
    assert got.stdout == f"{path}\n" and path.is_relative_to(tmp_path / "cache" / "xcompile" / "bin")
    assert qemu_line(got.stderr).startswith(
        f"xcompile: qemu: {path} (downloaded from {mirror} ({suite}, {package} {version}, signed by Pin Archive "
    )
    assert says(path).startswith("qemu-arm version ")


# --- 2. a pin nothing holds; qemus of another version are not used --------------------------------


@pytest.mark.parametrize("pin", ["9.2", "1:10.0.12+ds-0+deb13u1", "11.2"])
def test_a_pin_no_suite_holds_lists_what_the_mirror_has(
    pin: str, layouts: Path, key: GpgKey, httpserver: HTTPServer, user: dict[str, str], tmp_path: Path
) -> None:
    mirror = serve(httpserver, layouts)
    download = ["qemu", "--source", "download", *from_mirror(mirror, key)]
    got = run_xcompile(*download, "--qemu-version", pin, cwd=tmp_path, env=user)
    assert got.returncode == 3, got.stderr
    bookworm, trixie = real_version("bookworm", "qemu-user-static"), real_version("trixie", "qemu-user")
    have = ", ".join([bookworm, trixie, TRIXIE_BACKPORT])
    assert errors(got.stderr) == [
        f"xcompile: error: no suite of {mirror} holds qemu {pin}; it has {have}"
        " — pin one of those (an exact version, or a prefix such as 7.2), or use another mirror"
    ]
    assert got.stdout == "" and requested(httpserver, ".deb") == []
    assert files_under(tmp_path / "cache" / "xcompile" / "bin") == []


@pytest.fixture
def host_qemu(user: dict[str, str]) -> str:
    """This host's qemu-arm-static (Debian 12's, 7.2) on the user's PATH; its --version line."""
    host = Path("/usr/bin/qemu-arm-static")
    assert host.is_file(), "qemu-user-static is not installed; run ci/provision.sh"
    (Path(user["PATH"]) / "qemu-arm-static").symlink_to(host)
    line = says(host)
    assert "(Debian 1:7.2+" in line, line  # the pins below must differ from it
    return line


def test_source_path_refuses_a_qemu_of_another_version(
    host_qemu: str, layouts: Path, key: GpgKey, httpserver: HTTPServer, user: dict[str, str], tmp_path: Path
) -> None:
    mirror = serve(httpserver, layouts)
    pinned = ["--qemu-version", "10.0", "--mirror", mirror]
    got = run_xcompile("qemu", "--qemu-source", "path", *pinned, cwd=tmp_path, env=user)
    assert got.returncode == 3, got.stderr
    on_path = Path(user["PATH"]) / "qemu-arm-static"
    assert errors(got.stderr) == [
        f"xcompile: error: {on_path} on PATH is {host_qemu}, not the pinned 10.0"
        " — put the pinned qemu first on PATH, or use --qemu-source download"
    ]
    assert got.stdout == "" and list(httpserver.log) == []


def test_source_auto_passes_over_a_qemu_of_another_version_and_downloads_the_pin(
    host_qemu: str, layouts: Path, key: GpgKey, httpserver: HTTPServer, user: dict[str, str], tmp_path: Path
) -> None:
    mirror = serve(httpserver, layouts)
    got = run_xcompile("qemu", "--qemu-version", "10.0", *from_mirror(mirror, key), cwd=tmp_path, env=user)
    assert got.returncode == 0, got.stderr
    on_path = Path(user["PATH"]) / "qemu-arm-static"
    assert f"xcompile: warning: {on_path} on PATH is {host_qemu}, not the pinned 10.0; not used" in got.stderr
    path = Path(got.stdout.strip())
    assert path.is_relative_to(tmp_path / "cache") and "10.0.13" in says(path)
    assert f"(downloaded from {mirror} (trixie, qemu-user {real_version('trixie', 'qemu-user')}, " in got.stderr


def fake_apt(bin_dir: Path, candidate: str) -> Path:
    """apt-get and apt-cache that answer as a host's apt whose candidate is ``candidate``; apt-get writes
    its argv to the returned log instead of touching this host's packages."""
    log = bin_dir.parent / "apt-get.log"
    (bin_dir / "apt-get").write_text(f'#!/bin/sh\necho "$*" >> {log}\n')
    (bin_dir / "apt-cache").write_text(
        f'#!/bin/sh\nprintf "%s:\\n  Installed: (none)\\n  Candidate: {candidate}\\n" "$2"\n'
    )
    for name in ("apt-get", "apt-cache"):
        (bin_dir / name).chmod(0o755)
    return log


@pytest.mark.parametrize("source", ["apt", "auto"])
def test_apt_with_another_version_installs_nothing(
    source: str, layouts: Path, key: GpgKey, httpserver: HTTPServer, user: dict[str, str], tmp_path: Path
) -> None:
    apt_has = real_version("bookworm", "qemu-user-static")
    log = fake_apt(Path(user["PATH"]), apt_has)
    mirror = serve(httpserver, layouts)
    pinned = ["--qemu-source", source, "--qemu-version", "11.1"]
    got = run_xcompile("qemu", *pinned, *from_mirror(mirror, key), cwd=tmp_path, env=user)
    differs = f"apt would install qemu-user-static {apt_has}, not the pinned 11.1"
    if source == "apt":
        assert got.returncode == 3, got.stderr
        assert errors(got.stderr) == [f"xcompile: error: {differs}"]
        assert list(httpserver.log) == []
    else:
        assert got.returncode == 0, got.stderr
        assert f"xcompile: warning: apt could not provide qemu-arm-static ({differs}); downloading it instead" in (
            got.stderr.splitlines()
        )
        assert f"(trixie-backports, qemu-user {TRIXIE_BACKPORT}, signed by " in qemu_line(got.stderr)
    assert "install" not in log.read_text()


@pytest.mark.parametrize("source", ["path", "apt", "download"])
def test_a_pin_with_a_plus_takes_the_same_qemu_from_path_apt_and_the_download(
    source: str,
    host_qemu: str,
    layouts: Path,
    key: GpgKey,
    httpserver: HTTPServer,
    user: dict[str, str],
    tmp_path: Path,
) -> None:
    """PATH and apt read `+` as an exact pin, the download as a prefix: `7.2+dfsg` refused this host's
    qemu on PATH and apt's candidate, then the download took that same version (issue 27)."""
    bookworm = real_version("bookworm", "qemu-user-static")
    log = fake_apt(Path(user["PATH"]), bookworm)
    if source != "path":
        (Path(user["PATH"]) / "qemu-arm-static").unlink()  # apt's qemu lands in /usr/bin, this host's
    mirror = serve(httpserver, layouts)
    pinned = ["--qemu-source", source, "--qemu-version", "7.2+dfsg"]
    got = run_xcompile("qemu", *pinned, *from_mirror(mirror, key), cwd=tmp_path, env=user)
    assert got.returncode == 0, got.stderr
    assert errors(got.stderr) == [qemu_line(got.stderr)]
    how = {
        "path": f"found on PATH, {host_qemu}",
        "apt": "installed with apt",
        "download": f"downloaded from {mirror} (bookworm, qemu-user-static {bookworm}, signed by Pin Archive ",
    }[source]
    assert how in qemu_line(got.stderr)
    assert f"(Debian {bookworm})" in says(Path(got.stdout.strip()))
    installed = log.exists() and "install -y qemu-user-static" in log.read_text()
    assert installed is (source == "apt")


def doctor_pin(user: dict[str, str], tmp_path: Path, *args: str) -> tuple[int, list[dict[str, str]]]:
    """`xcompile doctor --json ARGS` as this user with docker on PATH: its exit code, and its pin checks."""
    docker = shutil.which("docker")
    assert docker, "docker is not installed; run ci/provision.sh"
    (Path(user["PATH"]) / "docker").symlink_to(docker)
    got = run_xcompile("doctor", "--no-push", "--json", *args, cwd=tmp_path, env=user)
    assert got.returncode in (0, 3), got.stderr
    checks = json.loads(got.stdout)["checks"]
    return got.returncode, [check for check in checks if check["name"].startswith("qemu pin")]


@pytest.mark.parametrize("host_binfmt", ["debian"], indirect=True)
@pytest.mark.parametrize(
    ("source", "pin", "says"),
    [
        ("download", "7.2+dfsg", "7.2+dfsg: {bookworm} in bookworm of {mirror}, to be downloaded"),
        ("auto", "10.0", "10.0: {trixie} in trixie of {mirror}, to be downloaded ({on_path}: not used)"),
        ("auto", "7.2", "7.2: {on_path}"),
        ("path", "10.0", "{on_path}, not the pinned 10.0"),
        ("apt", "7.2", "7.2: apt would install qemu-user-static {bookworm}"),
        ("apt", "11.1", "apt would install qemu-user-static {bookworm}, not the pinned 11.1"),
        ("download", "9.2", "no suite of {mirror} holds qemu 9.2; it has {bookworm}, {trixie}, {backport}"),
    ],
)
def test_doctor_says_where_a_pin_resolves_without_fix(
    source: str,
    pin: str,
    says: str,
    host_binfmt: str,
    host_qemu: str,
    layouts: Path,
    key: GpgKey,
    httpserver: HTTPServer,
    user: dict[str, str],
    tmp_path: Path,
) -> None:
    """doctor --qemu-version checked the pin only with --fix; a pin no suite held was found by the
    first build (issue 27). Installing and downloading nothing: no .deb is asked for."""
    if source == "apt":
        log = fake_apt(Path(user["PATH"]), real_version("bookworm", "qemu-user-static"))
    mirror = serve(httpserver, layouts)
    pinned = ["--qemu-source", source, "--qemu-version", pin]
    code, (check,) = doctor_pin(user, tmp_path, *pinned, *from_mirror(mirror, key))
    on_path = f"{Path(user['PATH']) / 'qemu-arm-static'} on PATH is {host_qemu}"
    versions = {"bookworm": real_version("bookworm", "qemu-user-static"), "trixie": real_version("trixie", "qemu-user")}
    expected = says.format(mirror=mirror, on_path=on_path, backport=TRIXIE_BACKPORT, **versions)
    passes = not expected.startswith(("no suite", f"{on_path},")) and "not the pinned" not in expected
    assert check["name"] == "qemu pin qemu-arm-static"
    assert (check["status"], check["detail"]) == ("pass" if passes else "fail", expected)
    assert code == (0 if passes else 3)
    assert requested(httpserver, ".deb") == []
    if source == "apt":
        assert not log.exists()  # apt-cache asked, apt-get never run


# --- 3. a snapshot archive ---------------------------------------------------------------------


def test_a_snapshot_archive_is_judged_as_of_its_timestamp(
    may_2025: Path, key: GpgKey, httpserver: HTTPServer, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    snapshot = serve(httpserver, may_2025, SNAPSHOT)
    # trixie-backports expired on 2025-05-24 by the clock, not as of the snapshot.
    (backport,) = fetch(snapshot, key, cache, "11.1")
    assert (backport.codename, backport.version, backport.downloaded) == ("trixie-backports", TRIXIE_BACKPORT, True)
    (stable,) = fetch(snapshot, key, cache, None)
    assert (stable.codename, stable.package) == ("trixie", "qemu-user")

    # A later snapshot (its Releases newer), then this one again: its old Date is no rollback.
    later = "/archive/debian/20250522T000000Z"
    httpserver.expect_request(re.compile(f"^{later}/")).respond_with_handler(file_handler(may_2025, later))
    fetch(httpserver.url_for(later), key, cache, "11.1")
    httpserver.clear_log()
    (again,) = fetch(snapshot, key, cache, "11.1")
    assert (again.path, again.downloaded) == (backport.path, False)
    assert requested(httpserver, ".deb") == [] and requested(httpserver, "Packages.xz") == []


def test_a_live_mirror_with_that_valid_until_has_expired(
    may_2025: Path, key: GpgKey, httpserver: HTTPServer, user: dict[str, str], tmp_path: Path
) -> None:
    mirror = serve(httpserver, may_2025)
    argv = ("qemu", "--source", "download", "--mirror", mirror, "--keyring", str(key.keyring))
    expired = f"{mirror}/dists/trixie-backports/Release expired on 2025-05-24 00:00 UTC (Valid-Until)"
    # The suite asked for, with a pin or without: refused.
    for pin in ([], ["--qemu-version", "11.1"]):
        got = run_xcompile(*argv, "--suite", "trixie-backports", *pin, cwd=tmp_path, env=user)
        assert got.returncode == 1, got.stderr
        assert errors(got.stderr) == [
            f"xcompile: error: {expired} — the mirror is stale or replaying an old Release; use an up-to-date mirror"
        ]
    # Another suite, in the search for a pin: passed over, as one the mirror lacks would be, and said.
    missing = run_xcompile(*argv, "--qemu-version", "11.1", cwd=tmp_path, env=user)
    assert missing.returncode == 3, missing.stderr
    have = f"{real_version('bookworm', 'qemu-user-static')}, {real_version('trixie', 'qemu-user')}"
    assert errors(missing.stderr) == [
        f"xcompile: error: no suite of {mirror} holds qemu 11.1; it has {have} (trixie-backports passed over: expired)"
        " — pin one of those (an exact version, or a prefix such as 7.2), or use another mirror"
    ]
    assert requested(httpserver, ".deb") == [] and files_under(tmp_path / "cache" / "xcompile" / "bin") == []
    found = run_xcompile(*argv, "--qemu-version", "10.0", cwd=tmp_path, env=user)
    assert found.returncode == 0, found.stderr
    assert f"xcompile: warning: {expired}; passed over in the search for the pinned qemu" in found.stderr.splitlines()
    assert f"(trixie, qemu-user {real_version('trixie', 'qemu-user')}, " in qemu_line(found.stderr)


def test_a_stale_testing_does_not_stop_a_pin_that_another_suite_holds(
    key: GpgKey, httpserver: HTTPServer, user: dict[str, str], tmp_path: Path
) -> None:
    """The real archive this project's hosts use, as of Dec 2026: its testing and unstable expired a
    month ago, while stable and the backports are fresh."""
    root = tmp_path / "mirror"
    real_mirror(root, key)
    forky = Archive(root, suite="forky")
    forky.add_real(real_package("trixie", "qemu-user").relisted("1:11.1.5+ds-1"))  # newer than the backport
    until = time.time() - 30 * 24 * 3600
    forky.write(key, suite_field="testing", date=until - WEEK, valid_until=until)
    (root / "dists" / "testing").symlink_to("forky")
    mirror = serve(httpserver, root)
    download = ["qemu", "--source", "download", *from_mirror(mirror, key)]
    got = run_xcompile(*download, "--qemu-version", "11.1", cwd=tmp_path, env=user)
    assert got.returncode == 0, got.stderr
    when = datetime.fromtimestamp(until, timezone.utc)
    assert errors(got.stderr)[0] == (
        f"xcompile: warning: {mirror}/dists/testing/Release expired on {when:%Y-%m-%d %H:%M} UTC (Valid-Until);"
        " passed over in the search for the pinned qemu"
    )
    assert f"(trixie-backports, qemu-user {TRIXIE_BACKPORT}, " in qemu_line(got.stderr)
    assert [Path(p).name for p in requested(httpserver, ".deb")] == [f"qemu-user_11.1.3+ds-2~bpo13+1_{ARCH}.deb"]
    assert requested(httpserver, f"testing/main/binary-{ARCH}/Packages.xz") == []


def test_a_snapshot_older_than_its_releases_is_refused(
    may_2025: Path, key: GpgKey, httpserver: HTTPServer, tmp_path: Path
) -> None:
    early = "/archive/debian/20250101T000000Z"
    mirror = serve(httpserver, may_2025, early)
    with pytest.raises(VerificationError) as refused:
        fetch(mirror, key, tmp_path / "cache", None)
    assert refused.value.message == (
        f"{mirror}/dists/stable/Release is dated 2025-05-17 00:00 UTC, in the future"
        " (as of the snapshot's 2025-01-01 00:00 UTC)"
    )


# --- 4. each index at most once per run; none while the InRelease is unchanged ----------------------


def test_a_pin_reads_each_index_once_and_an_unchanged_mirror_none(
    layouts: Path, key: GpgKey, httpserver: HTTPServer, user: dict[str, str], tmp_path: Path
) -> None:
    mirror = serve(httpserver, layouts)
    argv = ("qemu", "--source", "download", "--mirror", mirror, "--keyring", str(key.keyring), "--qemu-version")
    first = run_xcompile(*argv, "7.2", cwd=tmp_path, env=user)
    assert first.returncode == 0, first.stderr
    # dists/oldstable and dists/stable are bookworm's and trixie's folders: one index each.
    indexes = [
        re.sub("/oldstable/", "/bookworm/", re.sub("/stable/", "/trixie/", p))
        for p in requested(httpserver, "Packages.xz")
    ]
    assert sorted(Counter(indexes).values()) == [1, 1, 1], indexes
    assert {p.split("/")[3] for p in indexes} == {"bookworm", "trixie", "trixie-backports"}

    httpserver.clear_log()
    for pin in ("7.2", "10.0", "11.1"):  # the same InReleases: what each index holds is known
        again = run_xcompile(*argv, pin, cwd=tmp_path, env=user)
        assert again.returncode == 0, again.stderr
    assert requested(httpserver, "Packages.xz") == []
    assert requested(httpserver, "InRelease")  # each run still checks that nothing changed


# --- 5. one pass over qemu-user for every emulator -----------------------------------------------


def test_all_eight_emulators_come_from_one_read_of_qemu_user(
    layouts: Path, key: GpgKey, httpserver: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: Counter[str] = Counter()
    read_members = debfile.read_members

    def counted(deb: Path, wanted: list[str], write: debfile.PathWriter, **kw: int) -> dict[str, debfile.Found]:
        reads[Path(deb).name] += 1
        return read_members(deb, wanted, write, **kw)

    monkeypatch.setattr(debfile, "read_members", counted)
    binaries = [arch.qemu_binary for arch in platforms.one_per_emulator(tuple(map(platforms.get, EIGHT)))]
    assert len(binaries) == 8 and "qemu-x86_64-static" in binaries
    mirror = serve(httpserver, layouts)
    results = fetch(mirror, key, tmp_path / "cache", "10.0", *binaries)
    assert [r.package for r in results] == ["qemu-user"] * 8
    for binary, result in zip(binaries, results, strict=True):
        assert says(result.path).startswith(f"{binary.removesuffix('-static')} version 10.0.13 ")
    # The cache keeps each .deb under its SHA256.
    assert reads[f"{real_package('trixie', 'qemu-user').field('SHA256')}.deb"] == 1  # its 465 MB data member
    assert Counter(Path(p).name.split("_")[0] for p in requested(httpserver, ".deb")) == {
        "qemu-user-static": 1,
        "qemu-user": 1,
    }


def test_the_command_fetches_eight_emulators_with_one_download(
    layouts: Path, key: GpgKey, httpserver: HTTPServer, user: dict[str, str], tmp_path: Path
) -> None:
    mirror = serve(httpserver, layouts)
    arches = [arg for name in EIGHT for arg in ("--arch", name)]
    trixie = ["--mirror", mirror, "--suite", "trixie", "--keyring", str(key.keyring)]
    got = run_xcompile("qemu", "--source", "download", *trixie, *arches, cwd=tmp_path, env=user)
    assert got.returncode == 0, got.stderr
    paths = [Path(line) for line in got.stdout.splitlines()]
    assert [p.name for p in paths] == [platforms.get(name).qemu_binary for name in EIGHT]
    assert all(p.is_file() for p in paths)
    assert sorted(Path(p).name.split("_")[0] for p in requested(httpserver, ".deb")) == [
        "qemu-user",
        "qemu-user-static",
    ]
