"""`xcompile verify` of a 4-tag job against `docker pull` of the same four images, in interleaved rounds.

A real registry on 127.0.0.1 (Debian's docker-registry, storage of its own)
holds four armhf bases and the four images xcompile built from them with qemu
downloaded from the real trixie packages, served signed on 127.0.0.1. Each
round times `xcompile verify` of the four tags, its download cache warm (an
untimed first run fills it: the Release, the index and the qemu binary), and
`docker pull` of the four tags into a store that holds none of them (each pull
of a round removed afterwards, bases included). Every run's exit code is
checked: a failed run ends the benchmark.

Run: ``python benchmarks/bench_verify.py [ROUNDS]``; ``BENCH_BASE=python`` uses
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
from conftest import RunningRegistry  # noqa: E402
from debian_archive import GpgKey, real_mirror  # noqa: E402
from serving import serve  # noqa: E402

TAGS = ["3.6", "3.6-slim", "3.7", "3.7-slim"]


def run(*argv: str, **kwargs: object) -> float:
    start = time.perf_counter()
    done = subprocess.run(list(argv), capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])} ... failed ({done.returncode}): {(done.stdout + done.stderr)[-2000:]}")
    return time.perf_counter() - start


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    python = os.environ.get("BENCH_BASE") == "python"
    work = Path(tempfile.mkdtemp(prefix="xcompile-bench-verify-"))
    local = f"xcompile-bench-{uuid.uuid4().hex[:6]}/python"
    maker = [str(HERE / "make-python-base.sh")] if python else [str(ROOT / "ci/make-base-image.sh"), "armhf",
                                                                  "linux/arm/v7"]  # fmt: skip
    run("bash", *maker, *(f"{local}:{tag}" for tag in TAGS))
    registry = RunningRegistry(work / "registry")
    key = GpgKey.create("Bench Verify")
    host = registry.start().host
    base, repo = f"{host}/bench/python", f"{host}/bench/rpi-python"
    pulled = [f"{repo}:{tag}" for tag in TAGS] + [f"{base}:{tag}" for tag in TAGS]
    times: dict[str, list[float]] = {"docker pull": [], "xcompile verify": []}
    try:
        for tag in TAGS:
            run("docker", "tag", f"{local}:{tag}", f"{base}:{tag}")
            run("docker", "push", f"{base}:{tag}")
        run("docker", "rmi", *(f"{local}:{tag}" for tag in TAGS))  # the build pulls them back from the registry
        real_mirror(work / "archive", key)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_CACHE_HOME": str(work / "cache"),
               "DOCKER_CONFIG": str(work / "docker-config")}  # fmt: skip
        with serve(work / "archive") as url:
            archive = ["--mirror", url, "--keyring", str(key.keyring)]
            tags = [arg for tag in TAGS for arg in ("--tag", tag)]
            run(sys.executable, "-m", "xcompile", "build", "--base", base, "--repo", repo, "--arch", "arm32v7",
                *tags, "--qemu-source", "download", *archive, env=env, cwd=work)  # fmt: skip
            verify = [sys.executable, "-m", "xcompile", "verify", *(f"{repo}:{tag}" for tag in TAGS), *archive]
            subprocess.run(["docker", "rmi", *pulled], capture_output=True)
            run(*verify, env=env, cwd=work)  # untimed: warms the download cache
            for _ in range(rounds):
                times["xcompile verify"].append(run(*verify, env=env, cwd=work))
                start = time.perf_counter()
                for tag in TAGS:
                    run("docker", "pull", f"{repo}:{tag}")
                times["docker pull"].append(time.perf_counter() - start)
                run("docker", "rmi", *(f"{repo}:{tag}" for tag in TAGS))
    finally:
        subprocess.run(["docker", "rmi", *pulled, *(f"{local}:{tag}" for tag in TAGS)], capture_output=True)
        left = subprocess.run(["docker", "images", "-q", "--filter", f"reference={host}/bench/*"],
                              capture_output=True, text=True).stdout.split()  # fmt: skip
        assert not left, f"the benchmark left images: {left}"
        registry.stop()
        key.close()
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{len(TAGS)} tags, arm32v7, median of {rounds} interleaved rounds, base {'python' if python else 'tiny'}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:16} {median:6.2f} s  (range {min(values):.2f}-{max(values):.2f} s)")


if __name__ == "__main__":
    main()
