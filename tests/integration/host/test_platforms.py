"""The architecture table against the host's real qemu-user-static registrations."""

from __future__ import annotations

from pathlib import Path

from xcompile.host import binfmt, platforms

ARM = platforms.get("arm32v7")


# reads the host's qemu-user-static
def test_binfmt_magic_matches_debians_registration() -> None:
    # The table's magic and mask are what Debian's qemu-user-static registers.
    conf = Path("/usr/lib/binfmt.d/qemu-arm.conf").read_text().strip()
    fields = conf.split(":")
    registered = binfmt.entry_for(ARM, "x", fix_binary=False)
    assert fields[4].encode().decode("unicode_escape").encode("latin-1").hex() == registered.magic
    assert fields[5].encode().decode("unicode_escape").encode("latin-1").hex() == registered.mask
