"""The pipeline's order and its stops, driven by a recording fake runner: no docker, no network.

The fake answers each program as a small docker would (versions, inspect,
build, push) and records every argv; what a test wants to go wrong, it says
with ``fail`` (argv prefix -> the error to raise). The registry is a dict of
what it already holds. Each test runs in milliseconds.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from debian_archive import tiny_elf

from xcompile import engine
from xcompile.errors import CommandFailed
from xcompile.pipeline import prove, push, report
from xcompile.pipeline.plan import Outcome, Result
from xcompile.pipeline.run import Pipeline
from xcompile.registry import Remote, recipe
from xcompile.settings.config import Config, load
from xcompile.system.runner import Runner

QEMU_VERSION = "qemu-arm version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)"


class FakeRunner(Runner):
    """A Runner whose programs are answered here, through its public seam (``start``): each
    answer is printed by a real child, which the runner reads, times and reaps as any other;
    file verbs act for real in tmp."""

    def __init__(self, qemu: Path, *, dry_run: bool = False) -> None:
        self.lines: list[tuple[str, str | None]] = []
        super().__init__(lambda line, label: self.lines.append((line, label)), dry_run=dry_run, start=self.start)
        self.qemu = qemu
        self.fail: dict[tuple[str, ...], BaseException] = {}
        self.calls: list[tuple[str, ...]] = []
        self.platforms: dict[str, str] = {}
        """What inspect says a name's image is made for, where not linux/arm/v7."""

    def which(self, program: str) -> Path | None:
        return self.qemu if program == "qemu-arm-static" else Path(f"/usr/bin/{program}")

    def start(self, argv: list[str], without: tuple[str, ...], popen: dict[str, Any]) -> subprocess.Popen[bytes]:
        text = self.answer(tuple(argv))
        drain = "cat >/dev/null; " if popen.get("stdin") == subprocess.PIPE else ""  # what the runner feeds it
        return subprocess.Popen(["sh", "-c", drain + 'printf %s "$1"', "sh", text], **popen)

    def answer(self, args: tuple[str, ...]) -> str:
        self.calls.append(args)
        for prefix, error in self.fail.items():
            if args[: len(prefix)] == prefix:
                raise error
        program, verb = args[0], args[1] if len(args) > 1 else ""
        if program == "cp":  # the qemu layer needs its file
            shutil.copy(args[1], args[2])
            return ""
        if (program, verb) == ("docker", "cp"):  # the proof copies qemu out of the image: what was put in
            shutil.copy(self.qemu, args[3])
            return ""
        if program == str(self.qemu):
            return QEMU_VERSION + "\n"
        if (program, verb) == ("docker", "version"):
            return json.dumps({"Client": {"Version": "28.2.2"}, "Server": {"Version": "20.10.24"}})
        if (program, verb) == ("docker", "image"):
            return self._inspect(args)
        if (program, verb) == ("docker", "build"):
            return "Successfully built 0123456789ab\n"
        if (program, verb) == ("docker", "run"):
            return "armv7l\n"
        if (program, verb) == ("docker", "push"):
            return f"a: digest: sha256:{'d' * 64} size: 528\n"
        return ""

    def _inspect(self, args: tuple[str, ...]) -> str:
        if "--format" not in args:  # the proof's look at the built image
            return json.dumps([{"Os": "linux", "Architecture": "arm", "Variant": "v7", "Config": {"Labels": {}}}])
        names = args[args.index("--format") + 2 :]
        platform = self.platforms.get
        return "\n".join(f'["{n}"] null sha256:{"b" * 64} {platform(n, "linux/arm/v7/")}' for n in names) + "\n"

    def built(self) -> list[str]:
        return [args[args.index("-t") + 1] for args in self.calls if args[:2] == ("docker", "build")]

    def pushed(self) -> list[str]:
        return [args[-1] for args in self.calls if args[:2] == ("docker", "push")]


@pytest.fixture
def qemu(tmp_path: Path) -> Path:
    path = tmp_path / "bin" / "qemu-arm-static"
    path.parent.mkdir()
    path.write_bytes(tiny_elf(size=256))
    return path


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Remote]]:
    """What the registry holds, by name; it always answers and needs no login."""
    held: dict[str, Remote] = {}
    monkeypatch.setattr("xcompile.registry.check.ensure", lambda found, files: "registry check: ready")
    monkeypatch.setattr("xcompile.registry.check.for_repo", lambda repo, insecure, runner, shapes: [])
    monkeypatch.setattr(push.Published, "read", lambda self, name, label: self.runner.look(lambda: held.get(name)))
    yield held


def settings(tmp_path: Path, **switches: object) -> Config:
    found, _ = load(
        {"tags": ["a", "b", "c"], "jobs": "1", **switches},
        {"XDG_CACHE_HOME": str(tmp_path)},
        tmp_path,
        tmp_path / "home",
    )
    return found


def run(config: Config, runner: FakeRunner) -> tuple[Pipeline, dict[str, tuple[str, str | None]]]:
    pipeline = Pipeline(config, runner, lambda line, label: runner.lines.append((line, label)))
    started = time.monotonic()
    try:
        pipeline.run()
    finally:
        assert time.monotonic() - started < 1.0
    return pipeline, outcomes(pipeline)


def outcomes(pipeline: Pipeline) -> dict[str, tuple[str, str | None]]:
    assert pipeline.result is not None
    return {o.name.rsplit(":", 1)[1]: (o.status, o.error) for o in pipeline.result.outcomes}


def build_fails(runner: FakeRunner, tag: str) -> None:
    runner.fail[("docker", "build")] = CommandFailed(["docker", "build"], 1, "", f"step failed for {tag}")


def test_a_failure_stops_the_images_not_yet_started(tmp_path: Path, qemu: Path, registry: dict[str, Remote]) -> None:
    runner = FakeRunner(qemu)
    build_fails(runner, "a")
    _, seen = run(settings(tmp_path), runner)
    assert seen["a"] == ("failed", "docker build failed (exit 1): step failed for a")
    assert seen["b"] == seen["c"] == ("skipped", "not started: an earlier image failed")
    assert runner.built() == ["brewblox/rpi-python:a"] and runner.pushed() == []


def test_keep_going_goes_on_with_the_others(tmp_path: Path, qemu: Path, registry: dict[str, Remote]) -> None:
    runner = FakeRunner(qemu)
    runner.fail[("docker", "push", "brewblox/rpi-python:b")] = CommandFailed(["docker", "push"], 1, "", "denied")
    _, seen = run(settings(tmp_path, keep_going=True), runner)
    assert seen == {
        "a": ("pushed", None),
        "b": ("failed", "docker push failed (exit 1): denied"),
        "c": ("pushed", None),
    }
    assert runner.built() == [f"brewblox/rpi-python:{tag}" for tag in "abc"]


def test_a_base_made_for_another_platform_fails_its_image_before_its_build(
    tmp_path: Path, qemu: Path, registry: dict[str, Remote]
) -> None:
    runner = FakeRunner(qemu)
    runner.platforms["arm32v7/python:b"] = "linux/amd64/"
    _, seen = run(settings(tmp_path, keep_going=True), runner)
    assert seen["b"] == (
        "failed",
        "base arm32v7/python:b on this host is linux/amd64, not linux/arm/v7"
        " — give a base made for that platform, or pull the base for it",
    )
    assert seen["a"] == seen["c"] == ("pushed", None)
    assert runner.built() == ["brewblox/rpi-python:a", "brewblox/rpi-python:c"]


def test_a_podman_build_that_finds_no_base_for_the_platform_says_so(
    tmp_path: Path, qemu: Path, registry: dict[str, Remote]
) -> None:
    """Podman 4 does not tell a local image's variant, so an arm/v6 base gets to the build,
    which does not pull: what it says is read as the base refused."""
    runner = FakeRunner(qemu)
    said = "STEP 1/3: FROM arm32v7/python:a\nError: creating build container: arm32v7/python:a: image not known"
    runner.fail[("docker", "build")] = CommandFailed(["podman", "build"], 125, "", said)
    _, seen = run(settings(tmp_path, tags=["a"]), runner)
    assert seen["a"] == (
        "failed",
        "base arm32v7/python:a on this host is not made for linux/arm/v7: podman finds"
        " none for it — give a base made for that platform, or pull the base for it",
    )


class Interrupted(FakeRunner):
    """Ctrl-C reaches the main thread as the build of ``tag`` starts; the stop that follows
    ends that build's client (-15), as it would a `docker build` cut by the stop."""

    def __init__(self, qemu: Path, tag: str) -> None:
        super().__init__(qemu)
        self.tag = tag
        self.building: subprocess.Popen[bytes] | None = None

    def start(self, argv: list[str], without: tuple[str, ...], popen: dict[str, Any]) -> subprocess.Popen[bytes]:
        if argv[:2] != ["docker", "build"] or not argv[argv.index("-t") + 1].endswith(f":{self.tag}"):
            return super().start(argv, without, popen)
        self.calls.append(tuple(argv))
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
        self.building = subprocess.Popen(["sleep", "10"], **popen)
        return self.building

    def terminate_all(self) -> None:
        super().terminate_all()
        if self.building is not None:
            self.building.terminate()


def test_an_interrupt_marks_what_never_finished(tmp_path: Path, qemu: Path, registry: dict[str, Remote]) -> None:
    """Ctrl-C reaches the main thread while the second image builds: that build is stopped, the third never starts."""
    runner = Interrupted(qemu, "b")
    pipeline = Pipeline(settings(tmp_path), runner, lambda line, label: None)
    with pytest.raises(KeyboardInterrupt):
        pipeline.run()
    seen = outcomes(pipeline)
    assert seen["a"] == ("pushed", None)
    assert seen["b"] == ("interrupted", "interrupted")
    assert seen["c"] == ("interrupted", "interrupted before it started")
    assert not [args for args in runner.calls if args[:2] == ("docker", "push") and args[-1].endswith(":b")]


def test_a_dry_run_plans_every_step_in_order_and_runs_nothing(
    tmp_path: Path, qemu: Path, registry: dict[str, Remote]
) -> None:
    runner = FakeRunner(qemu, dry_run=True)
    _, seen = run(settings(tmp_path), runner)
    assert set(seen.values()) == {("planned", None)}
    assert runner.calls == []  # nothing answered: nothing ran
    said = [line for line, _ in runner.lines]
    order = [
        next(i for i, line in enumerate(said) if line.startswith(prefix))
        for prefix in ("+ docker version", "+ cp ", "stamp ", "+ docker build", "+ docker push")
    ]
    assert order == sorted(order), said
    assert not any(line.startswith("proof command passed") for line in said)
    assert list((tmp_path / "home").glob("**/*")) == []  # no config edit, no file


def test_an_unchanged_image_is_neither_built_nor_pushed(
    tmp_path: Path, qemu: Path, registry: dict[str, Remote]
) -> None:
    runner = FakeRunner(qemu)
    run(settings(tmp_path, tags=["a"]), runner)
    assert runner.built() == ["brewblox/rpi-python:a"]
    # The registry now holds what that build made: the same labels.
    labels = _labels_of(runner)
    assert set(labels) >= {recipe.BASE_DIGEST, recipe.QEMU_SHA256, recipe.RECIPE, recipe.QEMU_VERSION}
    registry["brewblox/rpi-python:a"] = Remote("brewblox/rpi-python:a", "sha256:" + "e" * 64, labels=labels)
    again = FakeRunner(qemu)
    _, seen = run(settings(tmp_path, tags=["a"]), again)
    assert seen == {"a": ("unchanged", None)}
    assert again.built() == [] and again.pushed() == []
    assert any(line.startswith("unchanged: brewblox/rpi-python:a is sha256:eee") for line, _ in again.lines)


def _labels_of(runner: FakeRunner) -> dict[str, str]:
    """The labels the build wrote, read back from the Dockerfile line it echoed."""
    line = next(line for line, _ in runner.lines if line.startswith("write ") and "LABEL " in line)
    pairs = (pair.split("=", 1) for pair in _label_pairs(line.split("LABEL ", 1)[1]))
    return {key: json.loads(value) for key, value in pairs}


def _label_pairs(text: str) -> list[str]:
    pairs, current, quoted = [], "", False
    for char in text:
        if char == '"' and not current.endswith("\\"):
            quoted = not quoted
        if char == " " and not quoted:
            pairs.append(current)
            current = ""
        else:
            current += char
    return [pair for pair in [*pairs, current] if pair]


def test_a_builds_context_holds_only_the_qemu_layer(tmp_path: Path, qemu: Path, registry: dict[str, Remote]) -> None:
    """Each build sends its whole context while other images' Dockerfiles are written: any file
    written there during a send fails it ("archive/tar: missed writing 646 bytes", seen once
    in a run of four). So the Dockerfiles are written outside it, and the context is qemu alone."""

    class Looking(FakeRunner):
        def __init__(self, qemu: Path) -> None:
            super().__init__(qemu)
            self.contexts: list[tuple[str, list[str]]] = []

        def answer(self, args: tuple[str, ...]) -> str:
            if args[:2] == ("docker", "build"):
                dockerfile, context = Path(args[args.index("-f") + 1]), Path(args[-1])
                self.contexts.append((dockerfile.name, sorted(p.name for p in context.iterdir())))
                assert dockerfile.is_file() and not dockerfile.is_relative_to(context)
            return super().answer(args)

    runner = Looking(qemu)
    _, seen = run(settings(tmp_path, jobs="3"), runner)
    assert {status for status, _ in seen.values()} == {"pushed"}
    assert sorted(runner.contexts) == [(f"Dockerfile.{tag}", ["qemu-layer"]) for tag in "abc"]


def test_a_dry_run_says_under_which_qemu_a_proof_command_would_run_not_that_it_ran() -> None:
    under = prove.Under("the host's qemu (qemu-arm version 7.2.0, binfmt qemu-arm with F)", "qemu-arm version 7.2.0")
    outcomes = [
        Outcome("r/p:a", "linux/arm/v7", "b:a", status="planned", proof=under.ran("true", None, 0.0)),
        Outcome("r/p:b", "linux/arm/v7", "b:b", status="pushed", proof=under.ran("true", 0, 1.0)),
    ]
    said = report.table(Result(outcomes, engine.Versions("docker", "28.2.2", "20.10.24"))).splitlines()
    assert f"r/p:a: its proof command would run under {under.said}" in said
    assert f"r/p:b: its proof command ran under {under.said}" in said
