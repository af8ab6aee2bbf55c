"""The cost of the nested proof: the default job against the same job with ``--qemu-host arm64v8``.

Both build the four tags on the tiny armhf base (--no-push, --rebuild always, --jobs 4), from
the same signed archive on 127.0.0.1 (bookworm's real qemu-user-static for amd64 and arm64,
the cache warmed by an untimed run of each), in one binfmt state for both: qemu-arm without F
(the kernel runs the image's own qemu for a proof command's programs) and qemu-aarch64 with F at
trixie's qemu-aarch64 10.0 (bookworm's 7.2 cannot host a 32-bit guest's qemu). With the default,
the shipped x86_64 qemu-arm-static runs natively; with arm64v8, the shipped aarch64 one runs
under qemu-aarch64: the machine probe, and every program of the proof command (a shell loop).
Interleaved rounds, medians; every run's exit code is checked. Needs root (binfmt).

Run: ``python benchmarks/bench_qemu_host.py [ROUNDS]``.
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
from debian_archive import GpgKey  # noqa: E402
from hostbinfmt import host_state, replaced  # noqa: E402
from serving import serve  # noqa: E402
from test_qemuhost import SUITE, nested_aarch64, two_arches  # noqa: E402

TAGS = ["3.6", "3.6-slim", "3.7", "3.7-slim"]
LOOP = "i=0; while [ $i -lt 3000 ]; do i=$((i+1)); done; uname -m"


def timed(argv: list[str], **kwargs: object) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    return time.perf_counter() - start


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    base = f"xcompile-bench-{uuid.uuid4().hex[:6]}/python"
    refs = [f"{base}:{tag}" for tag in TAGS]
    subprocess.run(["bash", str(ROOT / "ci/make-base-image.sh"), "armhf", "linux/arm/v7", *refs], check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    key = GpgKey.create("Bench Qemu Host")
    work = Path(tempfile.mkdtemp(prefix="xcompile-bench-qhost-"))
    cases = {"default (amd64)": [], "--qemu-host arm64v8": ["--qemu-host", "arm64v8"]}
    times: dict[str, dict[str, list[float]]] = {kind: {case: [] for case in cases} for kind in ("probe", "command")}
    try:
        two_arches(work / "archive", key)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_CACHE_HOME": str(work / "cache"),
               "DOCKER_CONFIG": str(work / "docker-config")}  # fmt: skip
        with serve(work / "archive") as url, host_state("seed/none"), replaced(nested_aarch64(work)):
            job = [sys.executable, "-m", "xcompile", "build", "--no-push", "--rebuild", "always", "--qemu-source",
                   "download", "--mirror", f"{url}", "--suite", SUITE, "--keyring", str(key.keyring), "--base", base,
                   "--repo", f"xcompile-bench-qhost-{uuid.uuid4().hex[:6]}/rpi", "--jobs", "4",
                   *[arg for tag in TAGS for arg in ("--tag", tag)]]  # fmt: skip
            for extra in cases.values():
                timed([*job, *extra], env=env, cwd=work)  # untimed: warms the download cache
            for _ in range(rounds):
                for case, extra in cases.items():
                    times["probe"][case].append(timed([*job, *extra], env=env, cwd=work))
                    times["command"][case].append(timed([*job, *extra, "--proof-command", LOOP], env=env, cwd=work))
            repo = job[job.index("--repo") + 1]
            subprocess.run(["docker", "rmi", *[f"{repo}:{tag}" for tag in TAGS]], capture_output=True)
    finally:
        key.close()
        shutil.rmtree(work, ignore_errors=True)
        subprocess.run(["docker", "rmi", *refs], capture_output=True)
    print(f"\n{len(TAGS)} tags, --jobs 4, median of {rounds} interleaved rounds, base {base}")
    for kind, by_case in times.items():
        medians = {case: statistics.median(values) for case, values in by_case.items()}
        for case, median in medians.items():
            print(f"  {kind:8} {case:22} {median:6.2f} s  (range {min(by_case[case]):.2f}-{max(by_case[case]):.2f} s)")
        ratio = medians["--qemu-host arm64v8"] / medians["default (amd64)"]
        print(f"  {kind:8} arm64v8 / default: {ratio:.2f}x")


if __name__ == "__main__":
    main()
