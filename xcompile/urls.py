"""URLs as messages and cache records may show them: never a password, a token or a query."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit


def redact(url: str) -> str:
    """``url`` without credentials, query or fragment."""
    try:
        parts = urlsplit(url)
        if "@" not in parts.netloc and not parts.query and not parts.fragment and "?" not in url and "#" not in url:
            return url  # nothing to cut: shown as given
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unreadable URL>"
    if ":" in host:
        host = f"[{host}]"
    return urlunsplit((parts.scheme, host + port, parts.path, "", ""))


def scrub(text: str) -> str:
    """Free text (a library's error message) with any credentials and query strings cut out."""
    text = re.sub(r"(//)[^/@\s'\"]+@", r"\1", text)
    return re.sub(r"\?[^\s'\")]*", "", text)
