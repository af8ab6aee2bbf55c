"""`doctor --fix` never leaves the host worse: the new line is
proved by the kernel (under a probe name) before the old entry goes, the old
line comes back on any failure, the host's flags are kept, and an OSError is
an environment problem (exit 3).

Against a stand-in for the binfmt folder, and against the real one: the real
tests change kernel state shared by the machine, so each holds the binfmt lock
(/tmp/xcompile-binfmt.lock) and restores what it found, byte for byte."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import run_xcompile
from debian_archive import Archive, build_deb, file_handler, tiny_elf
from hostbinfmt import apply, foreign_entries, read, removed, replaced

from xcompile.commands import doctor_fix
from xcompile.errors import EnvironmentProblem
from xcompile.host import binfmt, platforms
from xcompile.settings.config import Config
from xcompile.system.runner import Runner

ARM = platforms.get("arm32v7")
PROBE = ARM.binfmt_name + binfmt.PROBE_SUFFIX
# A registration whose interpreter is gone, with the O and C flags a host may use.
BROKEN = binfmt.entry_for(ARM, "/nonexistent/qemu-arm-static", fix_binary=False)
BROKEN = dataclasses.replace(BROKEN, flags="OC")


def proc_text(entry: binfmt.Entry) -> str:
    """What /proc/sys/fs/binfmt_misc/<name> shows for ``entry``."""
    state = "enabled" if entry.enabled else "disabled"
    if entry.extension:
        match = f"extension .{entry.extension}\n"
    else:
        match = f"offset {entry.offset}\nmagic {entry.magic}\n" + (f"mask {entry.mask}\n" if entry.mask else "")
    return f"{state}\ninterpreter {entry.interpreter}\nflags: {entry.flags}\n{match}"


def fix(root: Path = binfmt.ROOT) -> list[str]:
    shown: list[str] = []
    # The writes are echoed by the runner, the qemu step's warnings said through ``show``: one list, in order.
    runner = Runner(lambda line, label: shown.append(line))
    doctor_fix.fixes(
        Config(arches=("arm32v7",)), runner, fix_binary=True, show=lambda line, label: shown.append(line), root=root
    )
    return shown


# --- the stand-in -------------------------------------------------------------


@pytest.fixture
def stand_in(tmp_path: Path) -> Path:
    root = tmp_path / "binfmt_misc"
    root.mkdir()
    (root / ARM.binfmt_name).write_text(proc_text(BROKEN))
    return root


def test_stand_in_register_refused_leaves_the_old_entry(stand_in: Path) -> None:
    """The simulation that found the bug: `register` cannot be written (here a
    folder). Before, --fix removed the old entry first and died with
    `internal error: IsADirectoryError`."""
    (stand_in / "register").mkdir()
    before = (stand_in / ARM.binfmt_name).read_bytes()
    with pytest.raises(EnvironmentProblem) as err:
        fix(stand_in)
    assert err.value.exit_code == 3
    assert str(err.value) == f"cannot register {PROBE} at {stand_in}/register: Is a directory"
    assert (stand_in / ARM.binfmt_name).read_bytes() == before  # never removed
    assert sorted(p.name for p in stand_in.iterdir()) == [ARM.binfmt_name, "register"]


def test_stand_in_order_of_writes_and_flags_kept(stand_in: Path) -> None:
    (stand_in / "register").write_text("")
    shown = [said for said in fix(stand_in) if said.startswith("+ echo ")]  # the writes, not qemu's --version
    line = f"M:0:{binfmt._escape(BROKEN.magic)}:{binfmt._escape(BROKEN.mask)}:/usr/bin/qemu-arm-static:OCF"
    assert shown == [
        f"+ echo ':{PROBE}:{line}' > {stand_in}/register",  # proved first
        f"+ echo '-1' > {stand_in}/{ARM.binfmt_name}",  # only then the old one goes
        f"+ echo ':{ARM.binfmt_name}:{line}' > {stand_in}/register",
        f"+ echo '-1' > {stand_in}/{PROBE}",
    ]


def test_flags_kept_and_F_added() -> None:
    host = dataclasses.replace(BROKEN, flags="POC")
    assert binfmt.entry_for(ARM, "/usr/bin/qemu-arm-static", fix_binary=True, like=host).flags == "OCF"
    deb = "/usr/libexec/qemu-binfmt/arm-binfmt-P"
    assert binfmt.entry_for(ARM, deb, fix_binary=True, like=host).flags == "POCF"
    assert binfmt.entry_for(ARM, deb, fix_binary=False, like=dataclasses.replace(host, flags="PF")).flags == "P"
    assert binfmt.entry_for(ARM, "/x", fix_binary=True).flags == "F"


def test_cli_doctor_fix_os_error_is_exit_3(tmp_path: Path, user_env: dict[str, str]) -> None:
    """Exit 3 and one line, not `internal error`, when a write to /proc fails:
    here binfmt_misc refuses a second registration under the probe's name."""
    squatter = dataclasses.replace(BROKEN, name=PROBE, interpreter="/usr/bin/qemu-arm-static", flags="")
    with replaced(BROKEN), replaced(squatter):
        result = run_xcompile("doctor", "--no-push", "--fix", cwd=tmp_path, env=user_env)
        after = read(ARM.binfmt_name)
    assert result.returncode == 3, result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"xcompile: error: cannot register {PROBE} at {binfmt.ROOT}/register: File exists"
    )
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert after == BROKEN  # the host's entry was never touched


# --- the real binfmt_misc -------------------------------------------------------


def test_real_entries_register_again_byte_for_byte() -> None:
    """read() and the writes from its Entry give the kernel's own text back, for
    the kinds of entries binfmt-support makes for Debian's other formats: one
    shown without a mask gets none, an extension entry stays one, and a
    disabled one stays disabled. What install restores on a failure is this."""
    with foreign_entries() as names:
        for name in names:
            shown = (binfmt.ROOT / name).read_text()
            entry = read(name)
            assert entry is not None and proc_text(entry) == shown
            apply(binfmt.remove_write(name))
            for write in binfmt.register_writes(entry):
                apply(write)
            assert (binfmt.ROOT / name).read_text() == shown


@pytest.fixture
def broken_on_host() -> Iterator[None]:
    with removed(PROBE), replaced(BROKEN):
        yield


def test_real_fix_replaces_keeping_flags(broken_on_host: None, tmp_path: Path, user_env: dict[str, str]) -> None:
    result = run_xcompile("doctor", "--no-push", "--fix", cwd=tmp_path, env=user_env)
    entry = read(ARM.binfmt_name)
    assert entry is not None
    assert (entry.interpreter, entry.flags, entry.enabled) == ("/usr/bin/qemu-arm-static", "OCF", True)
    assert read(PROBE) is None
    assert result.stderr.index(f"> {binfmt.ROOT}/register") < result.stderr.index(f"'-1' > {binfmt.ROOT}/qemu-arm\n")
    assert " ".join(result.stdout.split()).count("pass binfmt arm32v7 qemu-arm -> /usr/bin/qemu-arm-static") == 1


def test_real_failure_after_removal_restores_the_old_line(
    broken_on_host: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernel refuses the final registration (injected: every other write
    is real). The old line must be back, and the probe gone."""
    real_write = Runner.write_proc

    def refuse_final(runner: Runner, path: Path, text: str, *, what: str) -> None:
        if text.startswith(f":{ARM.binfmt_name}:") and "/usr/bin/qemu-arm-static" in text:
            raise EnvironmentProblem(f"cannot {what}: Invalid argument")
        real_write(runner, path, text, what=what)

    monkeypatch.setattr(Runner, "write_proc", refuse_final)
    with pytest.raises(EnvironmentProblem) as err:
        fix()
    monkeypatch.undo()
    assert err.value.exit_code == 3
    assert str(err.value).endswith(f"Invalid argument; {ARM.binfmt_name} was restored as it was")
    assert read(ARM.binfmt_name) == BROKEN
    assert read(PROBE) is None


def test_stand_in_fix_shows_every_note_of_the_qemu_step(stand_in: Path, tmp_path: Path, httpserver: Any) -> None:
    """The qemu --fix registers runs every foreign binary on the host: an unverified download says so."""
    (stand_in / "register").write_text("")
    archive = Archive(tmp_path / "archive")
    archive.add(build_deb(tmp_path / "q.deb", files={"usr/bin/qemu-arm-static": tiny_elf()}))
    archive.write(None)  # unsigned
    httpserver.expect_request(re.compile("^/debian/")).respond_with_handler(file_handler(archive.root))
    config = Config(
        arches=("arm32v7",),
        qemu_source="download",
        mirror=httpserver.url_for("/debian"),
        suite="bookworm",
        allow_unsigned=True,
        cache_dir=tmp_path / "cache",
    )
    shown: list[str] = []

    def say(line: str, label: str | None) -> None:
        shown.append(line)

    doctor_fix.fixes(config, Runner(say), fix_binary=True, show=say, root=stand_in)
    warnings = [line for line in shown if line.startswith("warning: ")]
    assert len(warnings) == 1 and "NOT verified (--allow-unsigned)" in warnings[0]
    assert shown.index(warnings[0]) < next(i for i, line in enumerate(shown) if line.startswith("+ echo"))
