"""Cold and warm fetch of the real qemu from a local archive, in both layouts, against curl + dpkg-deb.

Every measured run is a child process, so its wall time and peak RSS
(``ru_maxrss`` from ``os.wait4``, which covers the child's own waited-for
children too) are its own. The archive is served by the stdlib's threaded
HTTP server on 127.0.0.1, the same for every contender.

- xcompile cold: InRelease + gpgv, Packages.xz, the .deb streamed and hashed,
  then only usr/bin/qemu-arm-static extracted. For bookworm's layout that is
  one .deb (qemu-user-static, 62.6 MB); for trixie's, the 77 kB
  qemu-user-static whose qemu-arm-static is a link, then qemu-user (71 MB)
  through its Depends.
- xcompile warm: the same call again (InRelease + gpgv, no download).
- curl + dpkg-deb -x: the download of the .deb that holds the binary, then
  the whole package unpacked (no verification at all): the baseline.
- curl + one file: the download, then ``dpkg-deb --fsys-tarfile | tar -x`` of
  the one binary, which is the fairer comparison.
- small .deb: a 1 MiB synthetic package (xz preset 6, like dpkg-deb's), to
  show that peak memory does not grow with the size of the file.

Run: ``python benchmarks/bench_download.py [ROUNDS]`` (needs the real .debs in
the test cache; ci/provision.sh fetches them once with ci/fetch-deb.sh).
"""

from __future__ import annotations

import contextlib
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(Path(__file__).resolve().parent)]
import serving  # noqa: E402
from debian_archive import QEMU, Archive, GpgKey, build_deb, real_package, tiny_elf  # noqa: E402
from serving import serve  # noqa: E402

BINARY = "qemu-arm-static"
FETCH = """
import sys
from pathlib import Path
from xcompile.archive.fetcher import Archive, fetch_all
fetch_all([sys.argv[1]], Archive(sys.argv[2], sys.argv[5], keyrings=(Path(sys.argv[4]),)), Path(sys.argv[3]))
"""
# Every emulator of the arch table from one fetch: one pass over the package's data member.
FETCH_ALL = """
import sys
from pathlib import Path
from xcompile.host import platforms
from xcompile.archive.fetcher import Archive, fetch_all
binaries = [arch.qemu_binary for arch in platforms.one_per_emulator(platforms.ARCHES)]
fetch_all(binaries, Archive(sys.argv[1], sys.argv[4], keyrings=(Path(sys.argv[3]),)), Path(sys.argv[2]))
"""
IMPORTS = "import requests, debian.deb822, xcompile.archive.fetcher"
BASELINE = "curl -o + dpkg-deb -x"
FAIR = "curl -o + dpkg-deb | tar -x one file"


def measure(argv: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one child process; a failed one ends the benchmark."""
    found = serving.measure(argv)
    if found.code != 0:
        sys.exit(f"failed: {argv}")
    return found.seconds, found.rss_kib


def archive_with(root: Path, deb: Path, key: GpgKey, **fields: str) -> Archive:
    archive = Archive(root)
    archive.add(deb, **fields)
    archive.write(key)
    return archive


def real_archive(root: Path, key: GpgKey, codename: str, packages: tuple[str, ...]) -> Archive:
    archive = Archive(root, suite=codename)
    for package in packages:
        archive.add_real(real_package(codename, package))
    archive.write(key)
    return archive


LAYOUTS = {"bookworm": ("qemu-user-static",), "trixie": ("qemu-user-static", "qemu-user")}


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    key = GpgKey.create("Bench Archive")
    work = Path(tempfile.mkdtemp(prefix="xcompile-bench-"))
    holder: dict[str, Path] = {}
    try:
        archives = {c: real_archive(work / c, key, c, pkgs) for c, pkgs in LAYOUTS.items()}
        holder = {c: a.entries[-1].deb for c, a in archives.items()}  # the .deb that holds the binary
        fields = {"package": QEMU, "version": "1:7.2+dfsg-7", "arch": "amd64"}
        for label, size in (("1 MiB", 1 << 20), ("16 MiB", 16 << 20)):
            deb = build_deb(work / f"{size}.deb", files={f"usr/bin/{BINARY}": tiny_elf(size=size)})
            archives[label] = archive_with(work / label.replace(" ", ""), deb, key, **fields)
        results: dict[str, list[tuple[float, int]]] = {}

        def record(name: str, argv: list[str]) -> None:
            results.setdefault(name, []).append(measure(argv))

        with contextlib.ExitStack() as stack:
            urls = {label: stack.enter_context(serve(a.root)) for label, a in archives.items()}
            for i in range(rounds):
                out = work / f"out{i}"
                out.mkdir()
                record("true (the measuring floor)", ["true"])
                record("python + imports only", [sys.executable, "-c", IMPORTS])
                for label in ("1 MiB", "16 MiB"):
                    cache = work / f"cache-{label}-{i}"
                    fetch = [sys.executable, "-c", FETCH, BINARY, urls[label], str(cache), str(key.keyring), "bookworm"]
                    record(f"xcompile cold ({label} synthetic .deb)", fetch)
                for codename, archive in archives.items():
                    if codename not in LAYOUTS:
                        continue
                    cache = work / f"cache-{codename}-{i}"
                    fetch = [
                        sys.executable,
                        "-c",
                        FETCH,
                        BINARY,
                        urls[codename],
                        str(cache),
                        str(key.keyring),
                        codename,
                    ]
                    record(f"{codename}: xcompile cold", fetch)
                    record(f"{codename}: xcompile warm", fetch)
                    every = [
                        sys.executable,
                        "-c",
                        FETCH_ALL,
                        urls[codename],
                        str(work / f"all-{codename}-{i}"),
                        str(key.keyring),
                        codename,
                    ]
                    record(f"{codename}: xcompile cold, all 8 emulators", every)
                    deb_url = f"{urls[codename]}/{archive.entries[-1].filename}"
                    copy = str(out / f"{codename}.deb")
                    all_files = 'curl -sSf -o "$1" "$2" && dpkg-deb -x "$1" "$3"'
                    record(f"{codename}: {BASELINE}", ["sh", "-c", all_files, "-", copy, deb_url, str(out / codename)])
                    (out / f"{codename}-one").mkdir()
                    member = "./usr/bin/" + ("qemu-arm" if codename == "trixie" else BINARY)
                    one_file = 'curl -sSf -o "$1" "$2" && dpkg-deb --fsys-tarfile "$1" | tar -x -C "$3" "$4"'
                    record(
                        f"{codename}: {FAIR}",
                        ["sh", "-c", one_file, "-", copy, deb_url, str(out / f"{codename}-one"), member],
                    )
                shutil.rmtree(out)
    finally:
        key.close()
        shutil.rmtree(work, ignore_errors=True)

    print(f"{rounds} rounds: median wall time, highest peak RSS")
    for codename, deb in holder.items():
        print(f"  {codename}: the binary's .deb is {deb.name}, {deb.stat().st_size / 1e6:.1f} MB")
    print(f"{'':48} {'time':>8} {'peak RSS':>10} {'/ dpkg -x':>10} {'/ tar one':>10}")
    # The limit: all 8 emulators cold at most 1.0x curl + dpkg-deb -x of that .deb, peak RSS at most 64 MiB.
    for name, runs in results.items():
        codename = name.split(":")[0] if ":" in name else "bookworm"
        base = statistics.median(t for t, _ in results[f"{codename}: {BASELINE}"])
        fair = statistics.median(t for t, _ in results[f"{codename}: {FAIR}"])
        wall = statistics.median(t for t, _ in runs)
        rss = max(r for _, r in runs)
        print(f"{name:48} {wall:7.2f}s {rss / 1024:8.1f}MB {wall / base:9.2f}x {wall / fair:9.2f}x")


if __name__ == "__main__":
    main()
