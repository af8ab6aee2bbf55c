"""The qemu download against the real Debian archive: every emulator per suite, pins, and one pass.

Not part of `make test`: the network is not the project's. `make live-check` runs it, with the
host's keyrings hidden where it can (root, unshare), so the bundled keys alone must verify.
The mirror is the one the host's apt uses (or --mirror / XCOMPILE_MIRROR). Three tables:

1. For the default suite and for oldstable, each in a fresh cache: every emulator of the arch
   table from one fetch (the packages are read once for all); each binary must run `--version`.
2. Pins (`--qemu-version`), each in a fresh cache: 7.2 and 11.1 must be found in whichever
   suite of the mirror holds them (bookworm; trixie-backports, forky or sid).
3. The one pass: every emulator out of the real qemu-user .deb that table 1 fetched, in one
   pass over its data member, against one pass per emulator (the old way), each file hashed
   and written as the fetch writes it.
4. Verify: an armhf image built and pushed to a registry on 127.0.0.1 with qemu downloaded
   from the mirror, then `xcompile verify` of it against the same mirror (bundled keys only
   where the host's are hidden): it must say verified.

Usage: python ci/live_check.py [--mirror URL] [SUITE ...]
"""
# ruff: noqa: E402  (xcompile and the helpers are imported once sys.path names them)

from __future__ import annotations

import argparse
import hashlib
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from xcompile.archive import debfile, fetcher, pins, trust
from xcompile.errors import XcompileError
from xcompile.host import aptsources, platforms
from xcompile.settings import config
from xcompile.system.runner import Runner

PINS = ("7.2", "11.1")
QUIET = Runner(lambda _line, _label: None)
EMULATORS = [arch.qemu_binary for arch in platforms.one_per_emulator(platforms.ARCHES)]
Row = tuple[str, ...]


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--mirror", default=os.environ.get("XCOMPILE_MIRROR") or aptsources.debian_mirror())
    parser.add_argument("suites", nargs="*", default=[config.DEFAULT_SUITE, "oldstable"])
    args = parser.parse_args()
    if not args.mirror:
        sys.exit("live-check: no mirror: the host's apt has no Debian source; give --mirror URL")
    hidden = not trust.host_keyrings()
    say(f"mirror {fetcher.Archive(args.mirror).shown}; host keyrings "
        f"{'hidden: only the bundled keys count' if hidden else 'present'}")  # fmt: skip
    failed = 0
    with tempfile.TemporaryDirectory(prefix="xcompile-live-") as work:
        rows, qemu_user = suites(args.mirror, args.suites, Path(work))
        pins = [pinned(args.mirror, pin, Path(work) / f"pin-{pin}") for pin in PINS]
        passes: list[Row] = one_pass(qemu_user, Path(work) / "out") if qemu_user else [("no qemu-user .deb",)]
        checked = [verified(args.mirror, Path(work) / "verify")]
        for title, head, table in (
            ("every emulator, one fetch per suite", ("emulator", "suite", "result", "codename", "package", "s",
                                                     "signed by", "how"), rows),
            ("pins", ("pin", "result", "suite", "package", "s", "signed by", "--version", "passed over"), pins),
            ("one pass over the real qemu-user .deb", ("extraction", "emulators", "passes", "s", "MB written"),
             passes),
            ("verify a freshly pushed image", ("image", "result", "s", "verdict"), checked),
        ):  # fmt: skip
            say(f"\n{title}")
            show(head, table)
            failed += sum(1 for row in table if len(row) == 1 or any(cell.startswith("FAIL") for cell in row))
    say(f"\n{'all ok' if not failed else f'{failed} FAILED'}")
    return 1 if failed else 0


def suites(mirror: str, names: Sequence[str], work: Path) -> tuple[list[Row], Path | None]:
    """Table 1, and the qemu-user .deb it fetched (for table 3)."""
    rows: list[Row] = []
    qemu_user: Path | None = None
    for suite in names:
        cache = work / f"suite-{suite}"
        start = time.perf_counter()
        try:
            got = fetcher.fetch_all(EMULATORS, fetcher.Archive(mirror, suite), cache, runner=QUIET)
        except XcompileError as err:
            rows.append((f"{len(EMULATORS)} emulators", suite, "FAIL", "", "", "", "", str(err)[:100]))
            continue
        seconds = f"{time.perf_counter() - start:.1f}"
        for binary, result in zip(EMULATORS, got, strict=True):
            version, ok = runs(result.path)
            how = "downloaded" if result.downloaded else "from the cache"
            rows.append((binary, suite, "ok" if ok else "FAIL", result.codename, f"{result.package} {result.version}",
                         seconds, signed_by(result.signer), how if ok else version))  # fmt: skip
            seconds = '"'  # the one fetch took it for all of them
            if result.package == "qemu-user" and qemu_user is None:
                # The cache's layout (debcache.py): bin/<the .deb's SHA256>/<binary>, debs/<SHA256>.deb.
                qemu_user = cache / "debs" / f"{result.path.parent.name}.deb"
    return rows, qemu_user


def pinned(mirror: str, pin: str, cache: Path) -> Row:
    """Table 2's row for one pin: where the newest qemu ``pin`` of the mirror's suites was found."""
    start = time.perf_counter()
    try:
        (got,) = fetcher.fetch_all(["qemu-arm-static"], fetcher.Archive(mirror), cache, pin=pin, runner=QUIET)
    except XcompileError as err:
        return (pin, "FAIL", "", "", f"{time.perf_counter() - start:.1f}", "", str(err)[:120])
    seconds = f"{time.perf_counter() - start:.1f}"
    version, ok = runs(got.path)
    ok = ok and pins.satisfies(got.version, pin)
    # Suites whose Release had expired are passed over in the search, and said in the notes.
    expired = [m.group(1) for note in got.notes if (m := re.search(r"/dists/([^/]+)/Release expired on ", note))]
    return (pin, "ok" if ok else "FAIL", got.codename, f"{got.package} {got.version}", seconds,
            signed_by(got.signer), version, ", ".join(expired) or "-")  # fmt: skip


def one_pass(deb: Path, out: Path) -> list[Row]:
    """Table 3: every emulator out of ``deb`` in one pass, then one pass per emulator."""
    members = [f"usr/bin/{binary.removesuffix('-static')}" for binary in EMULATORS]
    rows: list[Row] = []
    for how, groups in (("one pass", [members]), ("a pass per emulator", [[m] for m in members])):
        out.mkdir(parents=True, exist_ok=True)
        written = [0]
        start = time.perf_counter()
        found: dict[str, debfile.Found] = {}
        for group in groups:
            found.update(debfile.read_members(deb, group, writer(out, written)))
        seconds = time.perf_counter() - start
        files = sum(1 for seen in found.values() if seen.kind == "file")
        result = str(files) if files == len(members) else f"FAIL: {files} of {len(members)} found"
        rows.append((how, result, str(len(groups)), f"{seconds:.1f}", f"{written[0] / 1e6:.1f}"))
        for path in out.iterdir():
            path.unlink()
    return rows


def verified(mirror: str, work: Path) -> Row:
    """Table 4: build and push one armhf image with the mirror's qemu, then verify it against the mirror."""
    work.mkdir(parents=True)
    port = _free_port()
    host = f"127.0.0.1:{port}"
    (work / "registry.yml").write_text(
        f"version: 0.1\nlog: {{level: warn}}\nstorage: {{filesystem: {{rootdirectory: {work / 'data'}}}}}\n"
        f"http: {{addr: {host}}}\n"
    )
    registry = subprocess.Popen(["docker-registry", "serve", str(work / "registry.yml")], stderr=subprocess.DEVNULL)
    base, image = f"{host}/live/base:armhf", f"{host}/live/rpi:armhf"
    env = {**os.environ, "DOCKER_CONFIG": str(work / "docker"), "XDG_CACHE_HOME": str(work / "cache")}
    xcompile = [sys.executable, "-m", "xcompile"]
    try:
        _wait_for(f"http://{host}/v2/")
        steps = [
            ["bash", str(ROOT / "ci" / "make-base-image.sh"), "armhf", "linux/arm/v7", base],
            ["docker", "push", "-q", base],
            [*xcompile, "build", "--base", f"{host}/live/base", "--repo", f"{host}/live/rpi", "--tag", "armhf",
             "--qemu-source", "download", "--mirror", mirror],
        ]  # fmt: skip
        for argv in steps:
            done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=work, timeout=900)
            if done.returncode != 0:
                return (image, "FAIL", "", f"{argv[0]} exited {done.returncode}: {done.stderr.strip()[-160:]}")
        start = time.perf_counter()
        done = subprocess.run([*xcompile, "verify", image, "--mirror", mirror], capture_output=True, text=True,
                              env=env, cwd=work, timeout=900)  # fmt: skip
        seconds = f"{time.perf_counter() - start:.1f}"
        verdict = (done.stdout.strip().splitlines() or [done.stderr.strip()[-160:]])[-1]
        ok = done.returncode == 0 and " verified" in verdict
        return (image, "ok" if ok else f"FAIL (exit {done.returncode})", seconds, verdict[:160])
    finally:
        subprocess.run(["docker", "rmi", base, image], capture_output=True, check=False)
        registry.terminate()
        registry.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(url: str) -> None:
    for _ in range(100):
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    msg = f"live-check: the registry at {url} did not start"
    raise SystemExit(msg)


def writer(out: Path, written: list[int]) -> Callable[[str, IO[bytes], int], None]:
    """Write each member as the fetch does: hashed on the way, fsynced."""

    def write(member: str, stream: IO[bytes], size: int) -> None:
        digest = hashlib.sha256()
        with open(out / Path(member).name, "wb") as target:
            while block := stream.read(1 << 20):
                digest.update(block)
                target.write(block)
            target.flush()
            os.fsync(target.fileno())
        written[0] += size

    return write


def runs(path: Path) -> tuple[str, bool]:
    """The first line of ``path --version``, and whether it looks like qemu's."""
    ran = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=30)
    line = ran.stdout.splitlines()[0] if ran.stdout else f"exit {ran.returncode} {ran.stderr.strip()[:60]}"
    return line, ran.returncode == 0 and line.startswith("qemu-")


def signed_by(signer: str) -> str:
    return signer.split(" <")[0] or "NOT VERIFIED"


def show(head: Row, rows: list[Row]) -> None:
    widths = [max(len(row[i]) for row in [head, *rows] if i < len(row)) for i in range(len(head))]
    for row in [head, *rows]:
        say("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)).rstrip())


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
