"""`xcompile doctor` against host states each test sets up (binfmt_misc
unmounted, an entry disabled or pointing nowhere, the daemon down), and
`--fix` repairing them, whichever state the host's registrations start in
(the `host_binfmt` fixture). Registrations are kernel state: every test
restores them byte for byte, and so do the suite's own helpers, tested here
on the kinds of entries a Debian host has besides qemu's."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Registry, run_xcompile
from hostbinfmt import (
    HOST_STATES,
    MIXED_STATES,
    all_restored,
    apply,
    arch_states,
    differing,
    foreign_entries,
    host_state,
    read,
    removed,
    replaced,
    seed_world,
    snapshot,
    state_entry,
    unmounted,
)

from xcompile.host import binfmt, platforms

ARM = platforms.get("arm32v7")


def line(output: str, name: str) -> str:
    """The table line of one check, with its columns' padding folded."""
    for row in output.splitlines():
        if row.split("  ")[1:2] and row[6:].startswith(name):
            return " ".join(row.split())
    raise AssertionError(f"no line for {name!r} in:\n{output}")


def doctor(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_xcompile("doctor", "--no-push", *args, cwd=cwd, env=env)


# What doctor says of each host state; the rest of a healthy host passes in all three.
VERDICTS = {
    "debian": (0, "pass binfmt {arch} {name} -> /usr/libexec/qemu-binfmt/{cpu}-binfmt-P (flags PF): F, "),
    "seed": (0, "warn binfmt {arch} {name} -> /usr/bin/{name}-static without F: images need qemu at that path"),
    "none": (3, "fail binfmt {arch} {name} is not registered: "),
}


def verdict(state: str, arch: platforms.Arch) -> str:
    name = arch.binfmt_name
    return VERDICTS[state][1].format(arch=arch.name, name=name, cpu=name.removeprefix("qemu-"))


@pytest.mark.parametrize("host_binfmt", [*HOST_STATES, *MIXED_STATES], indirect=True)
def test_each_host_state(host_binfmt: str, tmp_path: Path, user_env: dict[str, str]) -> None:
    result = doctor("--arch", "arm32v7", "--arch", "arm64v8", env=user_env, cwd=tmp_path)
    states = arch_states(host_binfmt)
    assert result.returncode == max(VERDICTS[state][0] for state in states.values()), result.stdout
    for arch, state in states.items():
        assert line(result.stdout, f"binfmt {arch.name}").startswith(verdict(state, arch)), result.stdout
    assert line(result.stdout, "docker daemon").startswith("pass docker daemon ")
    assert line(result.stdout, "binfmt_misc") == f"pass binfmt_misc mounted at {binfmt.ROOT}"
    assert line(result.stdout, "qemu-arm-static") == "pass qemu-arm-static /usr/bin/qemu-arm-static, static"
    assert line(result.stdout, "docker config").startswith("pass docker config ")
    assert line(result.stdout, "keys").startswith("pass keys the bundled Debian archive keys at /")


def test_unmounted_then_fixed(host_binfmt: str, tmp_path: Path, user_env: dict[str, str]) -> None:
    """binfmt_misc unmounted in a mount namespace of doctor's own: the host's
    mount and its entries stay, Debian's other formats (no mask) among them.
    --fix mounts it there again, which shows the host's entries (the same
    instance), and registers qemu-arm only where the state has none."""

    def doctor_unmounted(*args: str) -> subprocess.CompletedProcess[str]:
        argv = unmounted(sys.executable, "-m", "xcompile", "doctor", "--no-push", *args)
        return subprocess.run(argv, cwd=tmp_path, env=user_env, capture_output=True, text=True, timeout=300)

    with foreign_entries(), all_restored():
        host = snapshot()
        before = doctor_unmounted()
        fixed = doctor_unmounted("--fix")
        entry = read(ARM.binfmt_name)
        changed = differing(host, snapshot())
    assert binfmt.mounted()
    assert before.returncode == 3, before.stdout + before.stderr
    assert line(before.stdout, "binfmt_misc") == f"fail binfmt_misc not mounted at {binfmt.ROOT}"
    assert f"fix: `mount -t binfmt_misc binfmt_misc {binfmt.ROOT}` (or --fix)" in before.stdout
    assert line(before.stdout, "binfmt arm32v7") == "fail binfmt arm32v7 binfmt_misc is not mounted"

    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert f"+ mount -t binfmt_misc binfmt_misc {binfmt.ROOT}\n" in fixed.stderr
    if host_binfmt == "none":
        assert "+ echo ':qemu-arm:M:0:\\x7f\\x45\\x4c\\x46" in fixed.stderr  # each write shown before it is made
        assert ":/usr/bin/qemu-arm-static:F' > /proc/sys/fs/binfmt_misc/register\n" in fixed.stderr
        assert entry is not None and (entry.interpreter, entry.flags, entry.enabled) == (
            "/usr/bin/qemu-arm-static",
            "F",
            True,
        )
        assert line(fixed.stdout, "binfmt arm32v7").startswith(
            "pass binfmt arm32v7 qemu-arm -> /usr/bin/qemu-arm-static"
        )
    else:
        assert "register" not in fixed.stderr, fixed.stderr  # the host's entry, seen again, is kept
        assert entry == state_entry(host_binfmt, ARM)
        assert line(fixed.stdout, "binfmt arm32v7").startswith(verdict(host_binfmt, ARM))
    # Only what --fix registered changed on the host; all_restored had no unmount to repair.
    assert changed == (["qemu-arm"] if host_binfmt == "none" else [])


def test_the_suites_helpers_restore_entries_without_a_mask_byte_for_byte() -> None:
    """removed, replaced and host_state around entries of the kinds binfmt-support
    makes for Debian's other formats (a magic entry shown without a mask, an
    extension entry): afterwards /proc is byte for byte what it was. Before,
    an entry without a mask came back with one (`mask ffffffff`)."""
    with foreign_entries() as (no_mask, extension):
        before = snapshot()
        shown = read(extension)
        assert shown is not None and read(no_mask) is not None
        with host_state("none/debian"), removed(no_mask), replaced(dataclasses.replace(shown, enabled=True)):
            assert read(no_mask) is None and read(ARM.binfmt_name) is None
        assert differing(before, snapshot()) == []


def test_all_restored_registers_again_what_an_unmount_drops() -> None:
    """all_restored, the second line of defence should an unmount ever reach the
    host's mount (which drops every entry): each dropped entry comes back as
    /proc showed it. The drop here is of the test's own entries only."""
    with foreign_entries() as names:
        before = snapshot()
        with all_restored():
            for name in names:
                apply(binfmt.remove_write(name))
        assert differing(before, snapshot()) == []


@pytest.mark.parametrize("host_binfmt", ["debian", "seed"], indirect=True)
def test_disabled_entry(host_binfmt: str, tmp_path: Path, user_env: dict[str, str]) -> None:
    host = state_entry(host_binfmt, ARM)
    assert host is not None
    with replaced(dataclasses.replace(host, enabled=False)):
        before = doctor(env=user_env, cwd=tmp_path)
        fixed = doctor("--fix", env=user_env, cwd=tmp_path)
        after = read(ARM.binfmt_name)
    assert before.returncode == 3
    assert line(before.stdout, "binfmt arm32v7") == "fail binfmt arm32v7 qemu-arm is registered but disabled"
    assert fixed.returncode == 0
    assert f"+ echo '1' > {binfmt.ROOT}/qemu-arm\n" in fixed.stderr
    assert after is not None and after.enabled and after.interpreter == host.interpreter


def test_interpreter_that_does_not_exist(host_binfmt: str, tmp_path: Path, user_env: dict[str, str]) -> None:
    with replaced(seed_world(ARM, interpreter="/nonexistent/qemu-arm-static")):
        before = doctor(env=user_env, cwd=tmp_path)
        fixed = doctor("--fix", "--no-fix-binary", env=user_env, cwd=tmp_path)
        after = read(ARM.binfmt_name)
    assert before.returncode == 3
    assert line(before.stdout, "binfmt arm32v7") == (
        "fail binfmt arm32v7 qemu-arm: its interpreter /nonexistent/qemu-arm-static does not exist"
    )
    # --no-fix-binary: the seed's world, qemu looked up inside each image.
    assert after is not None and (after.interpreter, after.flags) == ("/usr/bin/qemu-arm-static", "")
    assert fixed.returncode == 0
    assert line(fixed.stdout, "binfmt arm32v7").startswith(
        "warn binfmt arm32v7 qemu-arm -> /usr/bin/qemu-arm-static without F: images need qemu at that path inside"
    )


def test_missing_entry_and_json(host_binfmt: str, tmp_path: Path, user_env: dict[str, str]) -> None:
    with removed(ARM.binfmt_name):
        result = doctor("--json", env=user_env, cwd=tmp_path)
    assert result.returncode == 3
    report = json.loads(result.stdout)
    assert report["ok"] is False
    entry = next(check for check in report["checks"] if check["name"] == "binfmt arm32v7")
    assert entry == {
        "name": "binfmt arm32v7",
        "status": "fail",
        "detail": "qemu-arm is not registered: linux/arm/v7 images cannot run here",
        "fix": "`xcompile doctor --fix`",
    }


def test_daemon_down(tmp_path: Path, user_env: dict[str, str]) -> None:
    env = {**user_env, "DOCKER_HOST": f"unix://{tmp_path}/down.sock"}
    result = doctor(env=env, cwd=tmp_path)
    assert result.returncode == 3
    assert line(result.stdout, "docker daemon") == (
        f"fail docker daemon docker daemon not reachable at unix://{tmp_path}/down.sock"
    )
    assert "fix: start it (e.g. `sudo systemctl start docker`, or `sudo dockerd &`)" in result.stdout


def test_registry_checks(registry: Registry, tmp_path: Path, user_env: dict[str, str]) -> None:
    result = run_xcompile("doctor", "--repo", f"{registry.host}/team/app", cwd=tmp_path, env=user_env)
    assert (
        line(result.stdout, f"registry {registry.host}")
        == f"pass registry {registry.host} http://{registry.host} answers"
    )
    assert line(result.stdout, "registry login") == f"pass registry login {registry.host} needs no login"
