"""The one host-aware judgement of binfmt, shared by build and doctor; the
ELF facts the architecture table derives from its rows; and a registration
read from /proc and written back. Pure: the host's machine type and
registrations are passed in, /proc's text through a stand-in folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from xcompile.host import binfmt, platforms
from xcompile.host.emulation import assess

AMD64, I386 = platforms.get("amd64"), platforms.get("i386")
ARM, ARM64 = platforms.get("arm32v7"), platforms.get("arm64v8")


def entry(arch: platforms.Arch, interpreter: str, flags: str = "F", enabled: bool = True) -> binfmt.Entry:
    return binfmt.Entry(arch.binfmt_name, enabled, interpreter, flags, 0, arch.magic_bytes.hex(), arch.mask_bytes.hex())


@pytest.mark.parametrize(
    ("name", "elf"),
    [
        ("amd64", (62, 2, 1)),
        ("arm64v8", (183, 2, 1)),
        ("arm32v7", (40, 1, 1)),
        ("i386", (3, 1, 1)),
        ("ppc64le", (21, 2, 1)),
        ("s390x", (22, 2, 2)),
        ("riscv64", (243, 2, 1)),
        ("mips64le", (8, 2, 1)),
    ],
)
def test_elf_facts_come_from_the_rows_magic(name: str, elf: tuple[int, int, int]) -> None:
    arch = platforms.get(name)
    assert (arch.elf_machine, arch.elf_class, arch.elf_data) == elf


@pytest.mark.parametrize(
    ("machine", "name"), [("x86_64", "amd64"), ("aarch64", "arm64v8"), ("armv7l", "arm32v7"), ("i686", "i386")]
)
def test_the_host_is_a_row(machine: str, name: str) -> None:
    assert platforms.host(machine).name == name


def test_amd64_row() -> None:
    row = (AMD64.platform, AMD64.qemu_binary, AMD64.uname_m, AMD64.namespace)
    assert row == ("linux/amd64", "qemu-x86_64-static", "x86_64", "amd64")
    assert platforms.get("x86_64") is AMD64 and platforms.get("linux/amd64") is AMD64
    # The same x86 mask as qemu's i386 entry: EXEC or DYN, any OS ABI.
    assert AMD64.mask_bytes == I386.mask_bytes


@pytest.mark.parametrize("arch", [AMD64, I386], ids=["amd64", "i386"])
def test_native_on_x86_64_gives_no_false_warning(arch: platforms.Arch) -> None:
    seen = assess(arch, None, mounted=True, machine="x86_64")
    assert (seen.status, seen.native) == ("pass", True)
    assert seen.detail == "runs natively on x86_64"
    assert "cannot run" not in seen.note and "doctor --fix" not in seen.note
    # Not even binfmt_misc matters for a native arch.
    assert assess(arch, None, mounted=False, machine="x86_64").status == "pass"


def test_on_aarch64_arm64_is_native_and_amd64_foreign() -> None:
    assert assess(ARM64, None, mounted=True, machine="aarch64").status == "pass"
    foreign = assess(AMD64, None, mounted=True, machine="aarch64")
    assert (foreign.status, foreign.detail) == (
        "fail",
        "qemu-x86_64 is not registered: linux/amd64 images cannot run here",
    )
    assert foreign.note.endswith("— run `xcompile doctor --fix`")
    registered = assess(AMD64, entry(AMD64, "/usr/bin/qemu-x86_64-static", ""), mounted=True, machine="aarch64")
    # Without F the kernel looks inside the image, where xcompile puts qemu.
    assert registered.status == "warn" and registered.extra_qemu_paths == ()
    # ... which is why amd64 images carry their emulator too.
    assert assess(ARM64, None, mounted=True, machine="x86_64").status == "fail"


def test_an_enabled_registration_wins_over_native() -> None:
    # binfmt_misc comes before the kernel's own ELF loader.
    seen = assess(I386, entry(I386, "/usr/bin/qemu-i386-static", "F"), mounted=True, machine="x86_64")
    assert not seen.native and seen.status == "pass" and "F" in seen.detail


def test_foreign_states() -> None:
    assert assess(ARM, None, mounted=False, machine="x86_64").detail == "binfmt_misc is not mounted"
    disabled = assess(ARM, entry(ARM, "/usr/bin/qemu-arm-static", enabled=False), mounted=True, machine="x86_64")
    assert disabled.status == "fail" and "disabled" in disabled.detail
    broken = assess(ARM, entry(ARM, "/x", "F"), mounted=True, machine="x86_64", problem="not static")
    assert (broken.status, broken.detail) == ("fail", "qemu-arm: not static")
    wrapper = assess(ARM, entry(ARM, "/opt/wrapper", "P"), mounted=True, machine="x86_64")
    assert wrapper.status == "fail" and "cannot stand in" in wrapper.note and wrapper.extra_qemu_paths == ()
    # No F and no such file on the host: host programs fail, images still run.
    elsewhere = assess(ARM, entry(ARM, "/usr/local/bin/q", ""), mounted=True, machine="x86_64", problem="gone")
    assert elsewhere.status == "fail" and elsewhere.extra_qemu_paths == ("/usr/local/bin/q",)
    assert elsewhere.note.endswith("qemu is placed there too")


@pytest.mark.parametrize(
    ("labels", "name", "ok"),
    [
        (("linux", "arm64", ""), "arm64v8", True),
        (("linux", "arm64", "v8"), "arm64v8", True),
        (("linux", "arm", ""), "arm32v7", False),
        (("linux", "arm", "v7"), "arm32v7", True),
        (("linux", "amd64", ""), "amd64", True),
        (("linux", "amd64", ""), "arm32v7", False),
    ],
)
def test_platform_match_and_arm64s_optional_variant(labels: tuple[str, str, str], name: str, ok: bool) -> None:
    assert platforms.get(name).matches(*labels) is ok


# What /proc shows for each kind of entry a Debian host has, and the line that registers it
# again: binfmt-support registers Debian's other formats (jar, python3.11) with no mask.
SHOWN = {
    "jar": (
        "enabled\ninterpreter /usr/bin/jexec\nflags: \noffset 0\nmagic 504b0304\n",
        ":jar:M:0:\\x50\\x4b\\x03\\x04::/usr/bin/jexec:",
    ),
    "qemu-sh4": (
        "enabled\ninterpreter /usr/libexec/qemu-binfmt/sh4-binfmt-P\nflags: PF\noffset 0\n"
        "magic 7f454c4601010100000000000000000002002a00\nmask fffffffffffffffcfffffffffffffffffeffffff\n",
        ":qemu-sh4:M:0:\\x7f\\x45\\x4c\\x46\\x01\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00"
        "\\x02\\x00\\x2a\\x00:\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfc\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff"
        "\\xfe\\xff\\xff\\xff:/usr/libexec/qemu-binfmt/sh4-binfmt-P:PF",
    ),
    "xcompile-test-ext": (
        "disabled\ninterpreter /bin/true\nflags: F\nextension .xcompile-test\n",
        ":xcompile-test-ext:E::xcompile-test::/bin/true:F",
    ),
    # ':' may be in a name or path; the kernel takes another separator then.
    "a:b": (
        "enabled\ninterpreter /opt/x:y\nflags: OC\noffset 2\nmagic 78633a\nmask ff0fff\n",
        "|a:b|M|2|\\x78\\x63\\x3a|\\xff\\x0f\\xff|/opt/x:y|OC",
    ),
}


@pytest.mark.parametrize("name", SHOWN)
def test_an_entry_registers_again_as_proc_showed_it(name: str, tmp_path: Path) -> None:
    shown, line = SHOWN[name]
    (tmp_path / name).write_text(shown)
    entry = binfmt.read(name, tmp_path)
    assert entry is not None and entry.register_line() == line
    writes = binfmt.register_writes(entry, tmp_path)
    assert writes[0] == binfmt.Write(tmp_path / "register", line)
    assert writes[0].what() == f"register {name} at {tmp_path / 'register'}"
    assert writes[1:] == ([] if entry.enabled else [binfmt.Write(tmp_path / name, "0")])


def test_read_leaves_out_what_proc_leaves_out(tmp_path: Path) -> None:
    for name in ("jar", "xcompile-test-ext"):
        (tmp_path / name).write_text(SHOWN[name][0])
    assert binfmt.read("jar", tmp_path) == binfmt.Entry("jar", True, "/usr/bin/jexec", "", 0, "504b0304", "")
    extension = binfmt.Entry("xcompile-test-ext", False, "/bin/true", "F", 0, "", "", extension="xcompile-test")
    assert binfmt.read("xcompile-test-ext", tmp_path) == extension
