"""Warm wall time of the default job (4 tags) against three baselines, in one
process, in interleaved rounds, so that a noisy machine slows every variant alike:

- the original bash flow (sequential build + push, no checks);
- the floor (floor.sh): the same builds and pushes issued at once by hand;
- the proof floor (proof_floor.sh): the floor plus one emulated run per image
  between its build and its push, doing what the proof must: on a Python base,
  `python3 -c 'import os; print(os.uname().machine)'`; on a base without
  python3, `uname -m`.

Then xcompile as a user runs it (with the proof) and with --no-verify, both with
--rebuild always so that every round builds and pushes, and a rerun with
nothing changed (the default --rebuild changed), which must push nothing.
Every run's exit code is checked: a failed baseline ends the benchmark, so no
ratio is quoted against it. Figures are medians; ratios are of medians of the same run.

Run with `make bench` (it provisions first). BENCH_BASE=python uses a realistic
armhf Python base (make-python-base.sh: Debian's python3 in four layers, 165 MB;
minutes the first time, then cached); BENCH_BASE=NAME uses your own armhf base
(tags 3.6, 3.6-slim, 3.7, 3.7-slim; BENCH_PYTHON=1 when it has python3); the
default is the tiny busybox one, where the fixed costs weigh most.
BENCH_AGAINST=REV also times xcompile as it was at git revision REV (a worktree
of it), in the same rounds, so that a change is judged against its own past.
BENCH_PROOF_COMMAND=CMD also times the run with `--proof-command CMD`, and says
what the command adds.
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
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "tests"))
from conftest import free_port  # noqa: E402

TAGS = ["3.6", "3.6-slim", "3.7", "3.7-slim"]
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))

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

# (name, what it is measured against, its limit)
TARGETS = [
    ("xcompile --rebuild always", "proof floor", 1.0),
    ("xcompile --rebuild always", "original", 0.5),
    ("xcompile --no-verify --rebuild always", "floor", 1.0),
    ("xcompile rerun, nothing changed", "original", 0.1),
]


def timed(argv: list[str], **kwargs: object) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(argv, check=True, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    return time.perf_counter() - start, str(done.stdout)


def rounds(
    variants: dict[str, tuple[str, Callable[[str], tuple[float, str]]]], rerun_repo: str, port: int
) -> dict[str, list[float]]:
    """Every variant once a round, in turn; round 0 warms the registry and caches and is not counted."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for round_ in range(ROUNDS + 1):
        for name, (slot, run) in variants.items():
            repo = rerun_repo if slot == "xc" else f"127.0.0.1:{port}/bench-{slot}/rpi-python"
            seconds, out = run(repo)
            if name == "xcompile rerun, nothing changed":
                rows = out.splitlines()[1:]
                assert rows and all(row.split()[2] == "unchanged" for row in rows), out  # nothing pushed
            if round_:
                times[name].append(seconds)
            # Untimed: drop what the run built, so that no `<none>` image is left behind.
            subprocess.run(["docker", "rmi", *[f"{repo}:{t}" for t in TAGS]], capture_output=True)
    return times


def report(times: dict[str, list[float]], proof: str, base: str) -> None:
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"\n{len(TAGS)} tags, warm, median of {ROUNDS} interleaved rounds, base {base}, proof floor: {proof}")
    for name, median in medians.items():
        spread = f"{min(times[name]):.2f}-{max(times[name]):.2f}"
        print(f"  {name:44} {median:6.2f} s  (range {spread} s)  {median / medians['original']:5.2f}x original")
    print("\nthe limits:")
    for name, against, limit in TARGETS:
        ratio = medians[name] / medians[against]
        verdict = "holds" if ratio <= limit else "MISSED"
        print(f"  {name:44} {ratio:5.2f}x {against:12} (limit {limit:.2f}x)  {verdict}")
    if "xcompile --rebuild always --proof-command" in medians:
        extra = medians["xcompile --rebuild always --proof-command"] - medians["xcompile --rebuild always"]
        ratio = medians["xcompile --rebuild always --proof-command"] / medians["xcompile --rebuild always"]
        print(f"  the proof command adds {extra:.2f} s to the run ({ratio:.2f}x xcompile --rebuild always)")
    for name in [name for name in medians if name.startswith("xcompile@")]:
        now = name.split(" ", 1)[1]
        print(f"  {name:44} {medians['xcompile ' + now] / medians[name]:5.2f}x of it now (xcompile {now})")


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="xcompile-bench-"))
    revision = os.environ.get("BENCH_AGAINST", "")
    against = work / "against" if revision else None
    if against is not None:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(against), revision],
            check=True,
            capture_output=True,
        )
    port = free_port()
    (work / "registry.yml").write_text(
        f"version: 0.1\nlog: {{level: warn}}\nstorage: {{filesystem: {{rootdirectory: {work}/data}}}}\n"
        f"http: {{addr: 127.0.0.1:{port}}}\n"
    )
    registry = subprocess.Popen(
        ["docker-registry", "serve", str(work / "registry.yml")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    choice = os.environ.get("BENCH_BASE", "")
    own_base = choice if choice not in ("", "python") else None
    base = own_base or f"xcompile-bench-{uuid.uuid4().hex[:6]}/python"
    made: list[str] = []
    try:
        time.sleep(1)
        if not own_base:
            made = [f"{base}:{t}" for t in TAGS]
            maker = (
                [str(HERE / "make-python-base.sh")]
                if choice == "python"
                else [str(ROOT / "ci/make-base-image.sh"), "armhf", "linux/arm/v7"]
            )
            subprocess.run(["bash", *maker, *made], check=True, stdout=subprocess.DEVNULL)
        for name in ("ctx", "floor-ctx"):
            (work / name).mkdir()
        qemu = shutil.which("qemu-arm-static")
        assert qemu, "qemu-arm-static is not on PATH; run ci/provision.sh"
        shutil.copy(qemu, work / "floor-ctx" / "qemu-arm-static")
        env = {
            "DOCKER_CONFIG": str(work / "docker-config"),
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": str(ROOT),
        }

        def xcompile(*args: str) -> Callable[[str], tuple[float, str]]:
            argv = [sys.executable, "-m", "xcompile", "--base", base, "--jobs", "4", *args]
            return lambda repo: timed([*argv, "--repo", repo], cwd=work, env=env)

        def script(path: Path, **same: str) -> Callable[[str], tuple[float, str]]:
            argv = ["bash", str(path), str(work / "floor-ctx"), base]
            return lambda repo: timed([*argv, repo, *TAGS], env={**os.environ, **same})

        python = choice == "python" or os.environ.get("BENCH_PYTHON") == "1"
        prove = {"PROVE": "python" if python else "uname"}

        rerun_repo = f"127.0.0.1:{port}/bench-xc/rpi-python"
        variants: dict[str, tuple[str, Callable[[str], tuple[float, str]]]] = {
            "original": (
                "orig",
                lambda repo: timed(["bash", "-c", ORIGINAL, "original", str(work / "ctx"), base, repo, *TAGS]),
            ),
            "floor": ("floor", script(HERE / "floor.sh")),
            "floor + LABEL": ("flabel", script(HERE / "floor.sh", LABEL="1")),
            "proof floor": ("proof", script(HERE / "proof_floor.sh", **prove)),
            "xcompile --rebuild always": ("xc", xcompile("--rebuild", "always")),
            "xcompile --no-verify --rebuild always": ("xcnv", xcompile("--no-verify", "--rebuild", "always")),
            # Right after the run above pushed the same images: nothing has changed.
            "xcompile rerun, nothing changed": ("xc", xcompile()),
        }
        command = os.environ.get("BENCH_PROOF_COMMAND")
        if command:
            variants["xcompile --rebuild always --proof-command"] = (
                "xcpc",
                xcompile("--rebuild", "always", "--proof-command", command),
            )
        if against:
            old = dict(env, PYTHONPATH=str(against))
            for name, args in (
                ("--rebuild always", ["--rebuild", "always"]),
                ("--no-verify --rebuild always", ["--no-verify", "--rebuild", "always"]),
            ):
                argv = [sys.executable, "-m", "xcompile", "--base", base, "--jobs", "4", *args]
                variants[f"xcompile@{revision} {name}"] = (
                    f"old{len(variants)}",
                    lambda repo, argv=argv: timed([*argv, "--repo", repo], cwd=work, env=old),
                )
        times = rounds(variants, rerun_repo, port)
        report(times, "python3" if python else "uname -m", base)
    finally:
        if against is not None:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(against)], capture_output=True)
        registry.terminate()
        subprocess.run(["docker", "rmi", *made], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
