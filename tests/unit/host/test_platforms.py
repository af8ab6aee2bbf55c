"""The architecture table: aliases, and an unknown architecture named with the known ones."""

from __future__ import annotations

import pytest

from xcompile.errors import ConfigError
from xcompile.host import platforms


@pytest.mark.parametrize(
    ("alias", "name"),
    [
        ("armhf", "arm32v7"),
        ("armel", "arm32v6"),
        ("aarch64", "arm64v8"),
        ("arm64", "arm64v8"),
        ("linux/arm", "arm32v7"),
        ("linux/arm64", "arm64v8"),
        ("ppc64el", "ppc64le"),
        ("mips64el", "mips64le"),
    ],
)
def test_aliases(alias: str, name: str) -> None:
    assert platforms.get(alias).name == name


def test_unknown_arch_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as err:
        platforms.get("sparc")
    assert "known: arm32v6, arm32v7, arm64v8, i386, ppc64le, s390x, riscv64, mips64le, amd64" in str(err.value)
