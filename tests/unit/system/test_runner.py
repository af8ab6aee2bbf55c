"""The runner with real programs: echo, dry-run, errors, streaming, secrets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from xcompile.errors import CommandFailed, OutputTooLarge, ProgramMissing
from xcompile.system.runner import Runner


class Recorder:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str | None]] = []

    def __call__(self, line: str, label: str | None) -> None:
        self.lines.append((line, label))


def test_echo_is_pasteable_and_output_returned() -> None:
    seen = Recorder()
    out = Runner(seen).run("printf", "%s|", "a b", "it's", "$HOME")
    assert out == "a b|it's|$HOME|"
    assert seen.lines == [("+ printf '%s|' 'a b' 'it'\"'\"'s' '$HOME'", None)]


def test_dry_run_echoes_and_runs_nothing(tmp_path: Path) -> None:
    seen = Recorder()
    assert Runner(seen, dry_run=True).run("touch", tmp_path / "x", label="t") == ""
    assert seen.lines == [(f"+ touch {tmp_path}/x", "t")]
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("dry_run", [False, True])
def test_file_verbs_print_the_same_plan_and_act_only_for_real(tmp_path: Path, dry_run: bool) -> None:
    seen = Recorder()
    runner = Runner(seen, dry_run=dry_run)
    with runner.temp_folder("xc-") as folder:
        made = folder
        runner.make_folder(folder / "ctx")
        written = runner.write_file(folder / "ctx" / "Dockerfile", "FROM a\nCOPY b /c\n", label="t")
        assert written is not dry_run
        with runner.replacing(folder / "ctx" / "q", mode=0o755) as part:
            runner.run("cp", "/bin/true", part)
        if not dry_run:
            assert (folder / "ctx" / "Dockerfile").read_text() == "FROM a\nCOPY b /c\n"
            assert (folder / "ctx" / "q").stat().st_mode & 0o777 == 0o755
            assert sorted(p.name for p in (folder / "ctx").iterdir()) == ["Dockerfile", "q"]  # no part file left
    assert seen.lines[0] == (f"write {made}/ctx/Dockerfile: FROM a; COPY b /c", "t")
    assert seen.lines[1][0].startswith(f"+ cp /bin/true {made}/ctx/.q.")
    assert not made.exists()  # removed afterwards, or never made
    assert made.name.endswith("XXXXXX") is dry_run


def test_ask_is_unknown_in_a_dry_run_and_look_asks_nothing() -> None:
    seen = Recorder()
    runner = Runner(seen, dry_run=True)
    assert runner.ask("sh", "-c", "echo yes") is None
    assert seen.lines == [("+ sh -c 'echo yes'", None)]
    assert runner.look(lambda: 1 / 0) is None  # never called
    assert Runner(seen).ask("sh", "-c", "echo yes") == "yes\n"
    assert Runner(seen).look(lambda: 42) == 42


def test_write_file_never_replaces_a_special_file(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="not a regular file"):
        Runner(Recorder()).write_file(fifo, "x", echo=False)
    assert fifo.is_fifo() and sorted(p.name for p in tmp_path.iterdir()) == ["fifo"]


@pytest.mark.parametrize("dry_run", [False, True])
def test_stamp_sets_one_mode_and_time_whatever_the_umask(tmp_path: Path, dry_run: bool) -> None:
    folder, file = tmp_path / "tree", tmp_path / "tree" / "q"
    folder.mkdir(mode=0o700)
    file.write_bytes(b"q")
    file.chmod(0o600)
    seen = Recorder()
    Runner(seen, dry_run=dry_run).stamp([folder, file], mode=0o755, mtime=1)
    assert seen.lines == [(f"stamp 0755, 1970-01-01 00:00:01 UTC: {folder} {file}", None)]
    stamped = [(path.stat().st_mode & 0o7777, path.stat().st_mtime == 1) for path in (folder, file)]
    assert stamped == ([(0o700, False), (0o600, False)] if dry_run else [(0o755, True), (0o755, True)])


def test_on_timeout_runs_before_the_program_is_stopped(tmp_path: Path) -> None:
    log = tmp_path / "log"
    script = f"trap 'echo stopped >> {log}; exit 0' TERM; echo started > {log}; while :; do sleep 0.05; done"
    seen: list[str] = []
    with pytest.raises(CommandFailed) as err:
        Runner(Recorder()).ask("sh", "-c", script, timeout=0.5, on_timeout=lambda: seen.append(log.read_text()))
    assert err.value.retcode is None and err.value.reason == "timed out after 0.5 s"
    assert seen == ["started\n"]  # called once, while the program still ran
    assert log.read_text() == "started\nstopped\n"  # then stopped


def test_failure_carries_argv_status_and_output() -> None:
    with pytest.raises(CommandFailed) as err:
        Runner(Recorder()).run("sh", "-c", "echo out; echo first >&2; echo 'the reason' >&2; exit 7")
    assert str(err.value) == "sh -c failed (exit 7): the reason"
    assert err.value.argv == ("sh", "-c", "echo out; echo first >&2; echo 'the reason' >&2; exit 7")
    assert err.value.retcode == 7
    assert err.value.stdout == "out\n"
    assert "first" in err.value.details() and "exit status: 7" in err.value.details()
    assert err.value.exit_code == 1


def test_missing_program() -> None:
    with pytest.raises(ProgramMissing) as err:
        Runner(Recorder()).run("no-such-program-xcompile", "x")
    assert str(err.value) == "no-such-program-xcompile: not found on PATH"
    assert err.value.exit_code == 3


def test_timeout() -> None:
    with pytest.raises(CommandFailed) as err:
        Runner(Recorder()).run("sleep", "5", timeout=0.2)
    assert str(err.value) == "sleep 5 failed (timed out): timed out after 0.2 s"


@pytest.mark.parametrize("where", ["stdout", "stderr"])
def test_ask_stops_a_program_that_prints_past_its_limit(where: str) -> None:
    """The program is stopped at the limit (head would print 50 MB), not read to its end."""
    flood = "head -c 50000000 /dev/zero" + (" >&2" if where == "stderr" else "")
    with pytest.raises(OutputTooLarge) as err:
        Runner(Recorder()).ask("sh", "-c", flood, limit=1 << 20, timeout=20)
    assert str(err.value) == "sh -c failed (stopped): it printed more than 1024 KiB"


def test_ask_within_its_limit_feeds_stdin_and_returns_stdout() -> None:
    text = "x" * 200_000 + "\n"  # more than a pipe takes at once
    assert Runner(Recorder()).ask("cat", stdin=text, limit=1 << 20, timeout=20) == text
    assert Runner(Recorder()).ask("sh", "-c", "echo out; echo err >&2", limit=10, timeout=20) == "out\n"
    with pytest.raises(CommandFailed) as err:
        Runner(Recorder()).ask("sh", "-c", "echo why >&2; exit 3", limit=100)
    assert str(err.value) == "sh -c failed (exit 3): why"
    with pytest.raises(CommandFailed) as err:
        Runner(Recorder()).ask("sleep", "5", limit=100, timeout=0.2)
    assert str(err.value) == "sleep 5 failed (timed out): timed out after 0.2 s"


def test_stream_labels_each_line_in_order() -> None:
    seen = Recorder()
    out = Runner(seen).stream("sh", "-c", "echo one; echo two >&2; echo three", label="3.7")
    assert out == "one\ntwo\nthree"
    assert [line for line, _ in seen.lines[1:]] == ["one", "two", "three"]
    assert {label for _, label in seen.lines} == {"3.7"}


def test_stream_failure_keeps_output() -> None:
    with pytest.raises(CommandFailed) as err:
        Runner(Recorder()).stream("sh", "-c", "echo step; echo broken >&2; exit 2")
    assert str(err.value) == "sh -c failed (exit 2): broken"


@pytest.mark.parametrize("stream", [False, True])
def test_secret_on_stdin_is_never_echoed(stream: bool) -> None:
    seen = Recorder()
    runner = Runner(seen)
    out = runner.stream("cat", stdin="s3cret-token") if stream else runner.ask("cat", stdin="s3cret-token")
    assert out == "s3cret-token"
    echoed = [line for line, _ in seen.lines if line.startswith("+ ")]
    assert echoed == ["+ cat"]


def test_terminate_all_stops_a_streaming_program_and_its_children() -> None:
    """Ctrl-C path: a grandchild holding the output pipe must not keep the reader waiting."""
    import threading
    import time

    runner = Runner(Recorder())
    errors: list[BaseException] = []

    def work() -> None:
        try:
            runner.stream("sh", "-c", "sleep 30; echo never")
        except BaseException as err:
            errors.append(err)

    thread = threading.Thread(target=work)
    thread.start()
    time.sleep(0.5)
    started = time.monotonic()
    runner.terminate_all()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert time.monotonic() - started < 5
    assert isinstance(errors[0], CommandFailed) and errors[0].retcode == -15
