"""The Debian mirror the host's apt uses, read from its sources (one-line and deb822 formats)."""

from __future__ import annotations

from pathlib import Path

from xcompile.host.aptsources import debian_mirror as mirror_from_apt_sources

# --- mirror_from_apt_sources --------------------------------------------------------------------


def write_sources(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "etc" / "apt" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_apt_sources_one_line_format(tmp_path: Path) -> None:
    root = write_sources(
        tmp_path,
        {
            "sources.list": """\
# deb http://commented.example/debian bookworm main
deb-src http://src.example/debian bookworm main
deb http://security.example/debian-security bookworm-security main
deb [arch=amd64] http://thirdparty.example/repo stable main
deb [ arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg ] cdrom:/media/ bookworm main
deb [ signed-by=/usr/share/keyrings/debian-archive-keyring.gpg ] https://mirror.example/debian/ bookworm main contrib
deb http://later.example/debian bookworm main
"""
        },
    )
    assert mirror_from_apt_sources(root) == "https://mirror.example/debian"


def test_apt_sources_deb822_format(tmp_path: Path) -> None:
    root = write_sources(
        tmp_path,
        {
            "sources.list": "# moved to sources.list.d\n",
            "sources.list.d/a-thirdparty.sources": """\
Types: deb
URIs: https://thirdparty.example/node_20.x
Suites: nodistro
Components: main
""",
            "sources.list.d/b-disabled.sources": """\
Types: deb
URIs: http://disabled.example/debian
Suites: bookworm
Components: main
Enabled: no
""",
            "sources.list.d/fetcher.sources": """\
Types: deb deb-src
# a comment inside the paragraph, as Debian's own file has
URIs: file:/srv/local http://mirror.example/debian/
Suites: bookworm bookworm-updates
Components: main non-free-firmware
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
""",
            "sources.list.d/ignored.list.disabled": "deb http://nope.example/debian bookworm main\n",
        },
    )
    assert mirror_from_apt_sources(root) == "http://mirror.example/debian"


def test_apt_sources_signed_by_debian_keyring_counts_without_debian_path(tmp_path: Path) -> None:
    root = write_sources(
        tmp_path,
        {
            "sources.list.d/local.sources": """\
Types: deb
URIs: http://10.0.0.5/mirror
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""
        },
    )
    assert mirror_from_apt_sources(root) == "http://10.0.0.5/mirror"


def test_apt_sources_sources_list_comes_first(tmp_path: Path) -> None:
    root = write_sources(
        tmp_path,
        {
            "sources.list": "deb http://first.example/debian bookworm main\n",
            "sources.list.d/fetcher.sources": (
                "Types: deb\nURIs: http://second.example/debian\nSuites: bookworm\nComponents: main\n"
            ),
        },
    )
    assert mirror_from_apt_sources(root) == "http://first.example/debian"


def test_apt_sources_none(tmp_path: Path) -> None:
    assert mirror_from_apt_sources(tmp_path) is None
    root = write_sources(tmp_path, {"sources.list": "deb http://x.example/ubuntu jammy universe\n"})
    assert mirror_from_apt_sources(root) is None
