"""Every emulator of the arch table out of qemu-user in one pass, against curl + dpkg-deb -x of the same .deb.

The limit: a cold download of several emulators from ``qemu-user`` (trixie
and later) must read its 465 MB data member once, and all eight emulators at
once must take no longer than ``curl`` + ``dpkg-deb -x`` of that .deb, with a
peak RSS of at most 64 MiB. This times, in interleaved rounds, for the real
trixie .deb (xz, as the archive serves it) and a zstd repack of it:

- floor: ``curl -sf -o FILE URL && dpkg-deb -x FILE DIR`` (either failing
  ends the run: a failed floor would make every ratio a lie);
- download, then extract: the .deb streamed into a part file, hashed,
  fsynced and checked against the SHA256 that stands for the signed index,
  then published; then every emulator out of it by ``debfile.read_members``,
  each into a part file, hashed, fsynced, renamed (what the fetch does);
- overlapped: the same, but the emulators are extracted while the body
  arrives: ``read_members`` reads the part file as the download writes it
  (:class:`Arriving`), and the emulators stay part files until the whole
  .deb's SHA256 matches. Two damaged copies are served first, to show that
  nothing from them is kept.

Each contender is a child process (this file, ``fetch`` subcommand), started
through a bare ``python -S`` that waits for it with ``os.wait4``, so its wall
time and peak RSS are its own (Linux carries a parent's RSS high-water mark
into a forked child). The .debs are served by the stdlib's threaded HTTP
server on 127.0.0.1 with a kernel-assigned port, from this process. Every
extracted emulator is checked against ``dpkg-deb -x``'s.

The download here is a minimal copy of what xcompile.archive.download does (one GET,
256 KiB pieces, SHA256 and size checked, fsync, rename), so the measurement
does not depend on that module's current shape; retries and resumes are not
exercised (loopback does not cut bodies off).

Run: ``python benchmarks/bench_extract.py [ROUNDS] [--rate MB/s]`` (default 5
rounds, loopback at full speed; ``--rate`` paces the server like a mirror's
link, where overlapping the extraction with the download pays off).
"""
# ruff: noqa: E402  (xcompile and the helpers are imported once sys.path names them)

from __future__ import annotations

import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import IO, BinaryIO, cast

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]
from serving import PIECE, measure, serve

from xcompile.host import platforms

TRIXIE = Path("/var/cache/xcompile-test/debian/trixie")
DEBS = {"xz": "qemu-user_amd64.deb", "zstd": "qemu-user_amd64.zst.deb"}
EMULATORS = [f"usr/bin/{a.qemu_binary.removesuffix('-static')}" for a in platforms.one_per_emulator(platforms.ARCHES)]
FLOOR = "curl + dpkg-deb -x"
VARIANTS = {"then": "download, then extract", "overlap": "overlapped"}
IMPORTS = "python + imports only"


# --- the child: one cold fetch of every emulator -------------------------------------------------


class Arriving:
    """The .deb as the download writes it: a read waits until its bytes are on disk, or the download failed.

    Only bytes already written and never rewritten are handed out (the
    download appends), so what is extracted is exactly what gets hashed.
    """

    def __init__(self, path: Path, size: int) -> None:
        self.f = open(path, "rb", buffering=0)  # noqa: SIM115  # closed by close()
        self.size = size
        self.pos = 0
        self.have = 0
        self.error: BaseException | None = None
        self.abandoned = False  # the extraction failed: stop downloading
        self.cond = threading.Condition()
        self.name = path.name

    def arrived(self, have: int) -> None:
        with self.cond:
            self.have = have
            self.cond.notify_all()

    def failed(self, error: BaseException) -> None:
        with self.cond:
            self.error = error
            self.cond.notify_all()

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = 0) -> int:
        assert whence == 0
        self.pos = pos
        return pos

    def read(self, n: int = -1) -> bytes:
        end = self.size if n < 0 else min(self.size, self.pos + n)
        with self.cond:
            self.cond.wait_for(lambda: self.have >= end or self.error is not None)
            if self.error is not None:
                raise OSError(f"the download failed: {self.error}")
        data = os.pread(self.f.fileno(), end - self.pos, self.pos) if end > self.pos else b""
        self.pos += len(data)
        return data

    def close(self) -> None:
        self.f.close()


def download(url: str, part: Path, arriving: Arriving | None = None) -> tuple[str, int]:
    import requests

    digest, have = hashlib.sha256(), 0
    try:
        with requests.get(url, stream=True, timeout=60) as resp, open(part, "wb") as out:
            resp.raise_for_status()
            for piece in resp.iter_content(PIECE):
                if arriving is not None and arriving.abandoned:
                    raise RuntimeError("the extraction failed")
                out.write(piece)
                if arriving is not None:
                    out.flush()  # readers take it from the file
                digest.update(piece)
                have += len(piece)
                if arriving is not None:
                    arriving.arrived(have)
            out.flush()
            os.fsync(out.fileno())
    except BaseException as err:
        if arriving is not None:
            arriving.failed(err)
        raise
    return digest.hexdigest(), have


class Emulators:
    """Every emulator into ``<dest>/<name>.part``, hashed and fsynced; published by ``keep``."""

    def __init__(self, dest: Path) -> None:
        self.dest = dest
        self.parts: dict[str, Path] = {}

    def write(self, path: str, stream: IO[bytes], size: int) -> None:
        part = self.dest / (path.rsplit("/", 1)[-1] + ".part")
        self.parts[path] = part
        written = 0
        with open(part, "wb") as out:
            while block := stream.read(PIECE):
                out.write(block)
                written += len(block)
            out.flush()
            os.fsync(out.fileno())
        if written != size:
            raise SystemExit(f"{path}: {written} of {size} bytes")

    def keep(self) -> None:
        for part in self.parts.values():
            part.chmod(0o755)
            os.replace(part, part.with_suffix(""))

    def drop(self) -> None:
        for part in self.parts.values():
            part.unlink(missing_ok=True)


def fetch(variant: str, url: str, sha256: str, size: int, dest: Path) -> None:
    """Every emulator from the .deb at ``url``, whose SHA256 and size the signed index gives."""
    from xcompile.archive import debfile

    deb, part = dest / "qemu-user.deb", dest / "qemu-user.deb.part"
    emulators = Emulators(dest)

    def check(got: tuple[str, int] | None) -> None:
        if got != (sha256, size):
            raise SystemExit(f"{url}: not the .deb the index names ({got}, not {(sha256, size)}); nothing kept")

    try:
        if variant == "then":
            check(download(url, part))
            os.replace(part, deb)
            found = debfile.read_members(deb, EMULATORS, emulators.write)
        else:
            part.touch()
            arriving = Arriving(part, size)
            result: list[tuple[str, int]] = []
            thread = threading.Thread(target=lambda: result.append(download(url, part, arriving)))
            thread.start()
            try:
                found = debfile.read_members(cast(BinaryIO, arriving), EMULATORS, emulators.write)
            except BaseException:
                arriving.abandoned = True
                raise
            finally:
                thread.join()  # the rest of the body is still hashed when every emulator came early
                arriving.close()
            check(result[0] if result else None)
            os.replace(part, deb)
        missing = [path for path, f in found.items() if f.kind != "file"]
        if missing:
            raise SystemExit(f"not files: {missing}")
        emulators.keep()
    except BaseException:
        emulators.drop()
        part.unlink(missing_ok=True)
        raise


# --- the parent: serve, run, check, report -------------------------------------------------------


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def reference(deb: Path, work: Path) -> dict[str, str]:
    """Each emulator's SHA256 as dpkg-deb -x unpacks it."""
    out = work / "reference"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(out)], check=True)
    sums = {path: sha256_of(out / path) for path in EMULATORS}
    shutil.rmtree(out)
    return sums


def child(variant: str, url: str, sha256: str, size: int, dest: Path) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "fetch", variant, url, sha256, str(size), str(dest)]


def tampered_runs(work: Path, deb: Path, sha256: str) -> None:
    """Overlapped fetches of copies with one byte changed keep nothing: one inside an emulator, one near the end."""
    bad = work / "served-bad"
    bad.mkdir()
    for at in (deb.stat().st_size // 3, deb.stat().st_size - 1000):
        data = bytearray(deb.read_bytes())
        data[at] ^= 0xFF
        (bad / deb.name).write_bytes(bytes(data))
        dest = work / "tampered"
        dest.mkdir()
        with serve(bad) as url:
            _, code, _, _ = measure(child("overlap", f"{url}/{deb.name}", sha256, deb.stat().st_size, dest))
        left = sorted(p.name for p in dest.iterdir())
        if code == 0 or left:
            raise SystemExit(f"a tampered .deb was accepted (exit {code}) or left {left}")
        print(f"{deb.name} with byte {at} changed: refused (exit {code}), nothing left behind", file=sys.stderr)
        shutil.rmtree(dest)
    shutil.rmtree(bad)


def main() -> None:
    args = sys.argv[1:]
    rate = float(args.pop(args.index("--rate") + 1)) * 1e6 if "--rate" in args else 0.0
    args = [a for a in args if a != "--rate"]
    rounds = int(args[0]) if args else 5
    work = Path(tempfile.mkdtemp(prefix="xcompile-bench-extract-", dir="/var/tmp"))
    results: dict[tuple[str, str], list[tuple[float, int, float]]] = {}
    try:
        debs = {label: TRIXIE / name for label, name in DEBS.items()}
        sums = {label: sha256_of(deb) for label, deb in debs.items()}
        wanted = {label: reference(deb, work) for label, deb in debs.items()}
        tampered_runs(work, debs["xz"], sums["xz"])
        contenders = [FLOOR, *VARIANTS]
        if rate:
            print(f"served at {rate / 1e6:g} MB/s", file=sys.stderr)
        with serve(TRIXIE, rate) as base:
            for i in range(rounds):
                for label, deb in debs.items():
                    url, size = f"{base}/{deb.name}", deb.stat().st_size
                    order = contenders[i % len(contenders) :] + contenders[: i % len(contenders)]
                    for name in order:  # rotated each round, so no contender always follows the floor
                        dest = work / f"{label}-{name}-{i}".replace(" ", "_")
                        dest.mkdir()
                        if name == FLOOR:
                            script = 'curl -sf -o "$1" "$2" && dpkg-deb -x "$1" "$3"'
                            argv = ["sh", "-c", script, "-", str(dest / deb.name), url, str(dest / "x")]
                            elapsed, code, rss, cpu = measure(argv)
                            got = {p: sha256_of(dest / "x" / p) for p in EMULATORS} if code == 0 else {}
                        else:
                            elapsed, code, rss, cpu = measure(child(name, url, sums[label], size, dest))
                            got = {p: sha256_of(dest / p.rsplit("/", 1)[-1]) for p in EMULATORS} if code == 0 else {}
                        if code != 0 or got != wanted[label]:
                            raise SystemExit(f"round {i}, {label}, {name}: exit {code}, wrong emulators: run void")
                        results.setdefault((label, name), []).append((elapsed, rss, cpu))
                        shutil.rmtree(dest)
                # What every xcompile contender pays before its first byte (a running xcompile has paid it).
                imports = [sys.executable, "-c", "import requests, xcompile.archive.debfile"]
                elapsed, code, rss, cpu = measure(imports)
                results.setdefault(("", IMPORTS), []).append((elapsed, rss, cpu))
                print(f"round {i + 1}/{rounds} done", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(results, rounds, debs, rate)


def report(
    results: dict[tuple[str, str], list[tuple[float, int, float]]], rounds: int, debs: dict[str, Path], rate: float
) -> None:
    served = f"served at {rate / 1e6:g} MB/s" if rate else "served over loopback"
    print(f"{rounds} rounds, interleaved, {served}; {len(EMULATORS)} emulators; medians, and the highest peak RSS")
    print(f"{'':30} {'wall':>7} {'min':>6} {'max':>6} {'/ floor':>8} {'CPU':>6} {'/ floor':>8} {'peak RSS':>9}")
    for label, deb in debs.items():
        print(f"{label}: {deb.name}, {deb.stat().st_size / 1e6:.1f} MB")
        floor = statistics.median(t for t, _, _ in results[(label, FLOOR)])
        floor_cpu = statistics.median(c for _, _, c in results[(label, FLOOR)])
        for name in (FLOOR, *VARIANTS):
            runs = results[(label, name)]
            times = [t for t, _, _ in runs]
            wall, cpu = statistics.median(times), statistics.median(c for _, _, c in runs)
            rss = max(r for _, r, _ in runs) / 1024
            print(f"  {VARIANTS.get(name, name):28} {wall:6.2f}s {min(times):5.2f}s {max(times):5.2f}s"
                  f" {wall / floor:7.2f}x {cpu:5.2f}s {cpu / floor_cpu:7.2f}x {rss:6.1f}MiB")  # fmt: skip
    runs = results[("", IMPORTS)]
    wall, cpu = statistics.median(t for t, _, _ in runs), statistics.median(c for _, _, c in runs)
    print(
        f"{IMPORTS} (in each xcompile row) {wall:.2f}s wall, {cpu:.2f}s CPU, {max(r for _, r, _ in runs) / 1024:.1f}MiB"
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["fetch"]:
        variant, url, sha256, size, dest = sys.argv[2:7]
        fetch(variant, url, sha256, int(size), Path(dest))
    else:
        main()
