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
    """Free text (a library's error message, a proof command and its output) with any credentials,
    query strings and Authorization header values cut out."""
    text = re.sub(r"(//)[^/@\s'\"]+@", r"\1", text)
    text = re.sub(r"\?[^\s'\")]*", "", text)
    # `curl -v` prints the header it sends, and a command line may carry one: its value is a credential.
    return re.sub(r"(?i)\b((?:proxy-)?authorization:)[^\n'\"]*", r"\1 <hidden>", text)
