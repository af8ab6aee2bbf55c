"""A Packages index's versions, compared as dpkg compares them (unit: no archive, no network).

The refusals of versions dpkg refuses are shown through a real run in tests/integration/archive/test_hostile_mirror.py.
"""

from __future__ import annotations

import pytest

from xcompile.archive import pkgindex
from xcompile.errors import VerificationError

HUGE = "9" * 5000  # int() refuses more than 4300 digits: python-debian's comparison raised ValueError


@pytest.mark.parametrize(
    ("older", "newer"),
    [
        ("1:7.2+dfsg-7+deb12u18+b3", "1:10.0.2+ds-2+deb13u1~bpo12+1"),
        ("1:10.0.2+ds-2+deb13u1~bpo12+1", "1:10.0.2+ds-2+deb13u1"),
        ("1:7.2+dfsg-7", f"1:7.{HUGE}"),
        (f"1:7.{HUGE}", f"1:7.1{HUGE}"),
        (f"1:7.0{HUGE}-1", f"1:7.{HUGE}-2"),  # leading zeros do not count, as in dpkg
        (f"1:7.2-{HUGE}", f"1:7.2-1{HUGE}"),
        ("99:1", "2147483647:1"),
    ],
)
def test_numbers_of_any_length_compare_as_dpkg_compares_them(older: str, newer: str) -> None:
    paras = [{"Version": newer}, {"Version": older}]
    assert pkgindex.newest(paras, "index") == {"Version": newer}
    assert pkgindex.newest(reversed(paras), "index") == {"Version": newer}
    assert pkgindex.version_of(older, "index") < pkgindex.version_of(newer, "index")


@pytest.mark.parametrize("version", [f"{HUGE}:7.2", "2147483648:7.2", "0" * 20 + "1" + "0" * 10 + ":7.2", "\u0661:7.2"])
def test_an_epoch_dpkg_refuses_is_not_a_version(version: str) -> None:
    with pytest.raises(VerificationError) as raised:
        pkgindex.newest([{"Version": "1:7.2+dfsg-7"}, {"Version": version}], "index")
    assert raised.value.message == f"index: {version[:60]!r} is not a Debian version"
