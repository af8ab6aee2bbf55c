"""The qemu download of every emulator in the table, against the real Debian archive.

Not part of `make test`: the network is not the project's. `make live-check` runs it, with the
host's keyrings hidden where it can (root, unshare), so the bundled keys alone must verify.

For the default suite and for oldstable, each in a fresh cache: the first emulator downloads
the packages, the others come out of the same cached .debs. Each binary must run
`--version`. The mirror is the one the host's apt uses (or --mirror / XCOMPILE_MIRROR).

Usage: python ci/live_check.py [--mirror URL] [SUITE ...]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from xcompile import aptsources, config, debian, platforms, trust  # noqa: E402
from xcompile.errors import XcompileError  # noqa: E402
from xcompile.runner import Runner  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirror", default=os.environ.get("XCOMPILE_MIRROR") or aptsources.debian_mirror())
    parser.add_argument("suites", nargs="*", default=[config.DEFAULT_SUITE, "oldstable"])
    args = parser.parse_args()
    if not args.mirror:
        sys.exit("live-check: no mirror: the host's apt has no Debian source; give --mirror URL")
    quiet = Runner(lambda line, label: None)
    hidden = not trust.host_keyrings()
    print(f"mirror {debian.Archive(args.mirror).shown}; host keyrings "
          f"{'hidden: only the bundled keys count' if hidden else 'present'}")  # fmt: skip
    rows: list[tuple[str, ...]] = []
    failed = 0
    for suite in args.suites:
        with tempfile.TemporaryDirectory(prefix="xcompile-live-") as cache:
            for arch in platforms.one_per_emulator(platforms.ARCHES):
                start = time.perf_counter()
                try:
                    got = debian.fetch_qemu(arch.qemu_binary, debian.Archive(args.mirror, suite), Path(cache),
                                            runner=quiet)  # fmt: skip
                    ran = subprocess.run([str(got.path), "--version"], capture_output=True, text=True, timeout=30)
                    version = ran.stdout.splitlines()[0] if ran.stdout else f"exit {ran.returncode}"
                    if ran.returncode != 0 or not version.startswith("qemu-"):
                        raise XcompileError(f"{got.path} --version: {version} {ran.stderr.strip()}")
                    signer = got.signer.split(" <")[0] or "NOT VERIFIED"
                    result = ("ok", got.codename, f"{got.package} {got.version}", signer,
                              "downloaded" if got.downloaded else "from the cached .deb")  # fmt: skip
                except XcompileError as err:
                    failed += 1
                    result = ("FAIL", "", "", "", str(err)[:100])
                seconds = f"{time.perf_counter() - start:.1f}"
                rows.append((arch.qemu_binary, suite, *result[:3], seconds, result[3], result[4]))
    head = ("emulator", "suite", "result", "codename", "package", "s", "signed by", "how")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for row in [head, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    print(f"{len(rows) - failed} of {len(rows)} ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
