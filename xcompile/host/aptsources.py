"""The Debian mirror this host's apt uses, read from its sources as apt reads them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from debian.deb822 import Deb822


@dataclass(frozen=True)
class _Source:
    types: tuple[str, ...]
    uris: tuple[str, ...]
    suites: tuple[str, ...]
    components: tuple[str, ...]
    signed_by: str = ""
    enabled: bool = True


def debian_mirror(root: Path = Path("/")) -> str | None:
    """The first http(s) URI of an enabled ``deb`` source for Debian main.

    apt's order: ``etc/apt/sources.list``, then ``sources.list.d/`` by name,
    one-line ``*.list`` and deb822 ``*.sources`` alike. An entry counts as
    Debian main when it has component ``main``, a release suite (no ``-`` or
    ``/``: not -security, -updates, -backports, whose mirrors lack the
    release's dists), and looks like Debian: a ``debian`` path segment in its
    URI or a ``debian-archive`` keyring in Signed-By. Third-party repositories
    also call their component "main", hence the last test.
    """
    apt = root / "etc" / "apt"
    candidates = [apt / "sources.list"]
    with contextlib.suppress(OSError):  # no sources.list.d is fine
        candidates += sorted(p for p in (apt / "sources.list.d").iterdir() if p.suffix in (".list", ".sources"))
    for path in candidates:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue  # a missing or unreadable file is apt's concern, not ours
        sources = _deb822_sources(text) if path.suffix == ".sources" else _one_line_sources(text)
        for source in sources:
            if not _is_debian_main(source):
                continue
            for uri in source.uris:
                if urlsplit(uri).scheme in ("http", "https"):
                    return uri.rstrip("/")
    return None


def _one_line_sources(text: str) -> Iterator[_Source]:
    for raw in text.splitlines():
        tokens = raw.split("#", 1)[0].split()
        if len(tokens) < 3:
            continue
        kind, rest = tokens[0], tokens[1:]
        options: dict[str, str] = {}
        if rest[0].startswith("["):
            # "[ arch=amd64 signed-by=/k.gpg ]" may be split into several tokens.
            opts: list[str] = []
            while rest:
                token = rest.pop(0)
                opts.append(token)
                if token.endswith("]"):
                    break
            for item in " ".join(opts).strip("[] ").split():
                key, _, value = item.partition("=")
                options[key.lower()] = value
        if len(rest) < 2:
            continue
        yield _Source(
            types=(kind,),
            uris=(rest[0],),
            suites=(rest[1],),
            components=tuple(rest[2:]),
            signed_by=options.get("signed-by", ""),
        )


def _deb822_sources(text: str) -> Iterator[_Source]:
    for para in Deb822.iter_paragraphs(text.splitlines(), use_apt_pkg=False):
        yield _Source(
            types=tuple(para.get("Types", "").split()),
            uris=tuple(para.get("URIs", "").split()),
            suites=tuple(para.get("Suites", "").split()),
            components=tuple(para.get("Components", "").split()),
            signed_by=para.get("Signed-By", ""),
            enabled=para.get("Enabled", "yes").strip().lower() != "no",
        )


def _is_debian_main(source: _Source) -> bool:
    if not source.enabled or "deb" not in source.types or "main" not in source.components:
        return False
    if not any("-" not in s and "/" not in s for s in source.suites):
        return False
    debian_path = any("debian" in urlsplit(u).path.split("/") for u in source.uris)
    return debian_path or "debian-archive" in source.signed_by
