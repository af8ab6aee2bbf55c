"""doctor's `keys` line: the keys a qemu download is checked with. An install that lost the bundled
keys (a wheel without its data files) is a failure with the fix, not a surprise at the first download."""

from __future__ import annotations

from pathlib import Path

from xcompile.archive import trust
from xcompile.commands import doctor


def test_the_bundled_keys_pass_where_they_are() -> None:
    found = doctor._keys(None)
    assert (found.name, found.status) == ("keys", "pass")
    assert f"the bundled Debian archive keys at {trust.BUNDLED_KEYRING}, and " in found.detail


def test_an_install_without_the_bundled_keys_fails_with_the_fix(tmp_path: Path) -> None:
    empty = tmp_path / "empty.gpg"
    empty.write_bytes(b"")
    for lost in (tmp_path / "missing.gpg", empty):
        found = doctor._keys(None, bundled=lost)
        assert found.status == "fail"
        assert found.detail == (
            f"the bundled Debian archive keys are missing at {lost}: this install of xcompile is incomplete"
        )
        assert "reinstall xcompile" in found.fix and "--keyring" in found.fix


def test_a_keyring_given_replaces_them(tmp_path: Path) -> None:
    ring = tmp_path / "mine.gpg"
    found = doctor._keys(ring, bundled=tmp_path / "missing.gpg")
    assert found.status == "pass" and found.detail.startswith(f"--keyring {ring} ")
