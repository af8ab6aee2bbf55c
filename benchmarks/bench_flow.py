"""Warm wall time of the default job (4 tags): xcompile (which also proves each
image by running it under emulation, unless --no-verify) next to the original,
sequential bash flow, on the same daemon, registry and base images, in
alternating rounds. Numbers are ratios against the original in the same run,
since these machines are noisy.

Run with `make bench` (it provisions first).
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from conftest import free_port  # noqa: E402

TAGS = ["3.6", "3.6-slim", "3.7", "3.7-slim"]
ROUNDS = 3

# The original job, as the design note had it (only names and platform filled in).
ORIGINAL = r"""
set -e
cd "$1"; base=$2; repo=$3; shift 3
cp "$(which qemu-arm-static)" .
for tag in "$@"; do
    printf 'FROM %s:%s\nCOPY ./qemu-arm-static /usr/bin/qemu-arm-static\n' "$base" "$tag" > ./Dockerfile
    docker build --platform=linux/arm/v7 --no-cache -t "$repo:$tag" . >/dev/null 2>&1
    docker push "$repo:$tag" >/dev/null
done
"""


def timed(argv: list[str], **kwargs: object) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)  # type: ignore[call-overload]
    return time.perf_counter() - start


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="xcompile-bench-"))
    port = free_port()
    (work / "registry.yml").write_text(
        f"version: 0.1\nlog: {{level: warn}}\nstorage: {{filesystem: {{rootdirectory: {work}/data}}}}\n"
        f"http: {{addr: 127.0.0.1:{port}}}\n"
    )
    registry = subprocess.Popen(
        ["docker-registry", "serve", str(work / "registry.yml")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"xcompile-bench-{uuid.uuid4().hex[:6]}/python"
    try:
        time.sleep(1)
        subprocess.run(
            ["bash", str(ROOT / "ci/make-base-image.sh"), "armhf", "linux/arm/v7", *[f"{base}:{t}" for t in TAGS]],
            check=True,
            capture_output=True,
        )
        env_dir = work / "docker-config"
        variants = {
            "original (bash, sequential)": lambda repo: timed(
                ["bash", "-c", ORIGINAL, "original", str(work / "ctx"), base, repo, *TAGS]
            ),
            "xcompile --jobs 1": lambda repo: timed(
                [sys.executable, "-m", "xcompile", "--base", base, "--repo", repo, "--jobs", "1"],
                cwd=work, env={"DOCKER_CONFIG": str(env_dir), "PATH": "/usr/local/bin:/usr/bin:/bin"},
            ),
            "xcompile --jobs 4 --no-verify": lambda repo: timed(
                [sys.executable, "-m", "xcompile", "--base", base, "--repo", repo, "--jobs", "4", "--no-verify"],
                cwd=work, env={"DOCKER_CONFIG": str(env_dir), "PATH": "/usr/local/bin:/usr/bin:/bin"},
            ),
            "xcompile --jobs 4": lambda repo: timed(
                [sys.executable, "-m", "xcompile", "--base", base, "--repo", repo, "--jobs", "4"],
                cwd=work, env={"DOCKER_CONFIG": str(env_dir), "PATH": "/usr/local/bin:/usr/bin:/bin"},
            ),
        }  # fmt: skip
        (work / "ctx").mkdir()
        times: dict[str, list[float]] = {name: [] for name in variants}
        for round_ in range(ROUNDS + 1):  # round 0 warms the registry and is not counted
            for index, (name, run) in enumerate(variants.items()):
                seconds = run(f"127.0.0.1:{port}/bench{index}/rpi-python")
                if round_:
                    times[name].append(seconds)
        baseline = statistics.median(times["original (bash, sequential)"])
        print(f"\n{len(TAGS)} tags, warm, median of {ROUNDS} alternating rounds on {shutil.which('docker')}")
        for name, values in times.items():
            median = statistics.median(values)
            print(f"{name:32} {median:6.2f} s   {median / baseline:5.2f}x of the original")
    finally:
        registry.terminate()
        subprocess.run(["docker", "rmi", *[f"{base}:{t}" for t in TAGS]], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
