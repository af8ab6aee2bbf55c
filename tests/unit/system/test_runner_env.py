"""A program that runs without some environment variables (Runner.run_without):
what runs is what the echo shows, `env -u VAR program ...`, for every verb,
and a failure still names the program, not `env`."""

from __future__ import annotations

from pathlib import Path

import pytest
from plumbum import local

from xcompile.errors import CommandFailed, ProgramMissing
from xcompile.system.runner import Runner

SHOW = 'echo "${XC_GONE-unset} ${XC_KEPT-unset}"'


def test_each_verb_runs_without_the_variable_and_echoes_so() -> None:
    lines: list[str] = []
    runner = Runner(lambda line, _: lines.append(line))
    with local.env(XC_GONE="secret-value", XC_KEPT="kept"):
        assert runner.run("sh", "-c", SHOW) == "secret-value kept\n"
        runner.run_without("sh", "XC_GONE")
        runner.run_without("sh", "XC_GONE")  # said twice, taken out once
        assert runner.run("sh", "-c", SHOW) == "unset kept\n"
        assert runner.ask("sh", "-c", SHOW) == "unset kept\n"
        assert runner.stream("sh", "-c", SHOW) == "unset kept"
        assert runner.run("printf", "other") == "other"  # only that program
    shown = f"sh -c '{SHOW}'"
    assert lines == [
        f"+ {shown}",
        f"+ env -u XC_GONE {shown}",
        f"+ env -u XC_GONE {shown}",
        f"+ env -u XC_GONE {shown}",
        "unset kept",
        "+ printf other",
    ]
    assert not any("secret-value" in line for line in lines)


def test_a_failure_names_the_program_and_a_dry_run_echoes_the_same(tmp_path: Path) -> None:
    runner = Runner(lambda *_: None)
    runner.run_without("sh", "XC_GONE")
    with pytest.raises(CommandFailed) as failed:
        runner.run("sh", "-c", "exit 3")
    assert str(failed.value) == "sh -c failed (exit 3): no output"
    runner.run_without("xcompile-no-such-program", "XC_GONE")
    with pytest.raises(ProgramMissing, match="xcompile-no-such-program: not found on PATH"):
        runner.run("xcompile-no-such-program")
    lines: list[str] = []
    dry = Runner(lambda line, _: lines.append(line), dry_run=True)
    dry.run_without("touch", "XC_GONE", "XC_OTHER")
    assert dry.ask("touch", tmp_path / "x") is None
    assert lines == [f"+ env -u XC_GONE -u XC_OTHER touch {tmp_path}/x"]
    assert not (tmp_path / "x").exists()
