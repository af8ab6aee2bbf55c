"""`xcompile trial` against the same builds and proofs issued by hand, in interleaved rounds.

Both sides build every image (4 tags) with each of two qemu versions (7.2 and
10.0, the real bookworm and trixie packages, served signed on 127.0.0.1), run
each image's proof (its own qemu running python3, or uname on a base without
python3) and remove the image; at most ``--jobs`` (4) at once. The hand side
(trial_floor.sh) gets the two qemu binaries for free, extracted beforehand;
xcompile's cache is warmed by an untimed first run, so both time the builds and
proofs, not the download. Every run's exit code is checked: a failed run ends
the benchmark. The limit: trial at most 1.2x the hand floor.

Run: ``python benchmarks/bench_trial.py [ROUNDS]``; ``BENCH_BASE=python`` uses
the realistic armhf Python base (make-python-base.sh), else the tiny busybox one.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(HERE)]
from debian_archive import GpgKey, real_package  # noqa: E402
from serving import serve  # noqa: E402
from test_trial import two_releases  # noqa: E402  (the trial test's archive: bookworm's 7.2, trixie's 10.0)

TAGS = ["3.6", "3.6-slim", "3.7", "3.7-slim"]
VERSIONS = ["7.2", "10.0"]
LIMIT = 1.2


def qemu_of(deb: Path, member: str, dest: Path) -> Path:
    """One emulator out of a real .deb, for the hand side."""
    subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], check=True)
    return dest / member


def timed(argv: list[str], **kwargs: object) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    return time.perf_counter() - start


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    python = os.environ.get("BENCH_BASE") == "python"
    base = f"xcompile-bench-{uuid.uuid4().hex[:6]}/python"
    refs = [f"{base}:{tag}" for tag in TAGS]
    maker = [str(HERE / "make-python-base.sh")] if python else [str(ROOT / "ci/make-base-image.sh"), "armhf",
                                                                  "linux/arm/v7"]  # fmt: skip
    subprocess.run(["bash", *maker, *refs], check=True, stdout=subprocess.DEVNULL)
    key = GpgKey.create("Bench Trial")
    work = Path(tempfile.mkdtemp(prefix="xcompile-bench-trial-"))
    times: dict[str, list[float]] = {"hand": [], "xcompile trial": []}
    try:
        two_releases(work / "archive", key)
        qemus = [
            qemu_of(real_package("bookworm", "qemu-user-static").deb, "usr/bin/qemu-arm-static", work / "q72"),
            qemu_of(real_package("trixie", "qemu-user").deb, "usr/bin/qemu-arm", work / "q10"),
        ]
        env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_CACHE_HOME": str(work / "cache"),
               "DOCKER_CONFIG": str(work / "docker-config")}  # fmt: skip
        with serve(work / "archive") as url:
            trial = [sys.executable, "-m", "xcompile", "trial", *VERSIONS, "--qemu-source", "download",
                     "--mirror", url, "--keyring", str(key.keyring), "--base", base, "--jobs", "4",
                     *[arg for tag in TAGS for arg in ("--tag", tag)]]  # fmt: skip
            timed(trial, env=env, cwd=work)  # untimed: warms the download cache
            hand = ["bash", str(HERE / "trial_floor.sh"), str(work / "hand"), base, "1" if python else "0",
                    *map(str, qemus), "--", *TAGS]  # fmt: skip
            for _ in range(rounds):
                times["hand"].append(timed(hand))
                times["xcompile trial"].append(timed(trial, env=env, cwd=work))
    finally:
        key.close()
        shutil.rmtree(work, ignore_errors=True)
        subprocess.run(["docker", "rmi", *refs], capture_output=True)
        leftovers = subprocess.run(["docker", "images", "-q", "--filter", "reference=xcompile-trial-*/*"],
                                   capture_output=True, text=True).stdout.split()  # fmt: skip
        assert not leftovers, f"trial left images: {leftovers}"
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"\n{len(TAGS)} tags x {len(VERSIONS)} qemu versions, median of {rounds} interleaved rounds, base {base}")
    for name, median in medians.items():
        print(f"  {name:16} {median:6.2f} s  (range {min(times[name]):.2f}-{max(times[name]):.2f} s)")
    ratio = medians["xcompile trial"] / medians["hand"]
    print(f"  trial / hand: {ratio:.2f}x (limit {LIMIT:.1f}x)  {'holds' if ratio <= LIMIT else 'MISSED'}")


if __name__ == "__main__":
    main()
