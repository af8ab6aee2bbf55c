"""Cold and warm fetch of the real qemu-user-static from a local archive, against curl + dpkg-deb.

Every measured run is a child process, so its wall time and peak RSS
(``ru_maxrss`` from ``os.wait4``, which covers the child's own waited-for
children too) are its own. The archive is served by the stdlib's threaded
HTTP server on 127.0.0.1, the same for every contender.

- xcompile cold: InRelease + gpgv, Packages.xz, the .deb streamed and hashed,
  then only usr/bin/qemu-arm-static extracted.
- xcompile warm: the same call again (InRelease + gpgv, no download).
- curl + dpkg-deb -x: the download, then the whole package unpacked (no
  verification at all).
- curl + one file: the download, then ``dpkg-deb --fsys-tarfile | tar -x`` of
  the one binary, which is the fairer comparison.
- small .deb: a 1 MiB synthetic package (xz preset 6, like dpkg-deb's), to
  show that peak memory does not grow with the size of the file.

Run: ``python benchmarks/bench_download.py [ROUNDS]`` (needs the real .deb in
the test cache; tests/debian_archive.py fetches it once with apt-get).
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
from debian_archive import QEMU, Archive, GpgKey, build_deb, real_deb, tiny_elf  # noqa: E402

BINARY = "qemu-arm-static"
FETCH = """
import sys
from pathlib import Path
from xcompile.debian import Archive, fetch_qemu
fetch_qemu(sys.argv[1], Archive(sys.argv[2], "bookworm", keyrings=(Path(sys.argv[4]),)), Path(sys.argv[3]))
"""
IMPORTS = "import requests, debian.deb822, xcompile.debian"
BASELINE = "curl -o + dpkg-deb -x"
FAIR = "curl -o + dpkg-deb | tar -x one file"
MEASURER = """
import json, os, subprocess, sys, time
argv = json.loads(sys.argv[1])
start = time.perf_counter()
proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
elapsed = time.perf_counter() - start
if os.waitstatus_to_exitcode(status) != 0:
    sys.exit(f"failed: {argv}")
print(json.dumps([elapsed, usage.ru_maxrss]))
"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serve(root: Path) -> Iterator[str]:
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def measure(argv: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one child process and what it waited for.

    Linux carries the forking process's RSS high-water mark into the child's
    ru_maxrss across exec, so the child is started by a bare ``python -S``
    (about 10 MB) instead of this process, which holds requests, werkzeug and
    python-debian. That floor shows in the "true" row.
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-S", "-c", MEASURER, json.dumps(argv)], env=env, check=True, capture_output=True, text=True
    ).stdout
    elapsed, maxrss = json.loads(out)
    return float(elapsed), int(maxrss)


def archive_with(root: Path, deb: Path, key: GpgKey, **fields: str) -> Archive:
    archive = Archive(root)
    archive.add(deb, **fields)
    archive.write(key)
    return archive


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    key = GpgKey.create("Bench Archive")
    work = Path(tempfile.mkdtemp(prefix="xcompile-bench-"))
    try:
        real = real_deb(QEMU)
        fields = {"package": QEMU, "version": "1:7.2+dfsg-7", "arch": "amd64"}
        archives = {"real": archive_with(work / "real", real, key)}
        for label, size in (("1 MiB", 1 << 20), ("16 MiB", 16 << 20)):
            deb = build_deb(work / f"{size}.deb", files={f"usr/bin/{BINARY}": tiny_elf(size=size)})
            archives[label] = archive_with(work / label.replace(" ", ""), deb, key, **fields)
        results: dict[str, list[tuple[float, int]]] = {}

        def record(name: str, argv: list[str]) -> None:
            results.setdefault(name, []).append(measure(argv))

        with contextlib.ExitStack() as stack:
            urls = {label: stack.enter_context(serve(a.root)) for label, a in archives.items()}
            deb_url = f"{urls['real']}/{archives['real'].entries[0].filename}"
            for i in range(rounds):
                out = work / f"out{i}"
                out.mkdir()
                record("true (the measuring floor)", ["true"])
                record("python + imports only", [sys.executable, "-c", IMPORTS])
                for label in ("1 MiB", "16 MiB", "real"):
                    cache = work / f"cache-{label}-{i}"
                    fetch = [sys.executable, "-c", FETCH, BINARY, urls[label], str(cache), str(key.keyring)]
                    name = f"real {real.stat().st_size / 1e6:.1f} MB" if label == "real" else f"{label} synthetic"
                    record(f"xcompile cold ({name} .deb)", fetch)
                    if label == "real":
                        record("xcompile warm (real .deb)", fetch)
                record("curl -o only", ["curl", "-sSf", "-o", str(out / "only.deb"), deb_url])
                copy = str(out / "q.deb")
                all_files = 'curl -sSf -o "$1" "$2" && dpkg-deb -x "$1" "$3"'
                record(BASELINE, ["sh", "-c", all_files, "-", copy, deb_url, str(out / "all")])
                (out / "one").mkdir()
                one_file = 'curl -sSf -o "$1" "$2" && dpkg-deb --fsys-tarfile "$1" | tar -x -C "$3" "./usr/bin/$4"'
                record(FAIR, ["sh", "-c", one_file, "-", copy, deb_url, str(out / "one"), BINARY])
                shutil.rmtree(out)
    finally:
        key.close()
        shutil.rmtree(work, ignore_errors=True)

    base = statistics.median(t for t, _ in results[BASELINE])
    fair = statistics.median(t for t, _ in results[FAIR])
    print(f"{rounds} rounds: median wall time, highest peak RSS; real .deb {real.stat().st_size / 1e6:.1f} MB")
    print(f"{'':40} {'time':>8} {'peak RSS':>10} {'/ dpkg -x':>10} {'/ tar one':>10}")
    for name, runs in results.items():
        wall = statistics.median(t for t, _ in runs)
        rss = max(r for _, r in runs)
        print(f"{name:40} {wall:7.2f}s {rss / 1024:8.1f}MB {wall / base:9.2f}x {wall / fair:9.2f}x")


if __name__ == "__main__":
    main()
