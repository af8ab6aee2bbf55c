"""A WWW-Authenticate header, read as docker reads it (distribution's authchallenge).

Each challenge is a scheme token, then ``key=value`` parameters whose value is
a token or a quoted string (backslash escapes one character); the keys are
lowercase, a repeated one is the last given, and the reading stops at the first
parameter that is not one. Several challenges (RFC 7235's list, and requests
joins repeated headers with ", ") are told apart where a token is not followed
by "=". Of several, the first Bearer one is answered, else the first Basic one,
as docker's authorizer tries them.
"""

from __future__ import annotations

_SPACE = " \t\r\n"
_SEPARATORS = frozenset(' \t"(),/:;<=>?@[]\\{}')


def challenge(header: str) -> tuple[str, dict[str, str]]:
    """The challenge to answer in a WWW-Authenticate header: its scheme (lowercase) and
    parameters. The first Bearer challenge, else the first Basic one, as docker's
    authorizer tries them; else the first of any."""
    found = challenges(header)
    for scheme in ("bearer", "basic"):
        for one in found:
            if one[0] == scheme:
                return one
    return found[0] if found else ("", {})


def challenges(header: str) -> list[tuple[str, dict[str, str]]]:
    """Every challenge in a WWW-Authenticate value (see the module's notes)."""
    found: list[tuple[str, dict[str, str]]] = []
    rest = header
    while True:
        scheme, rest = _token(rest.lstrip(_SPACE + ","))
        if not scheme:
            return found
        params: dict[str, str] = {}
        found.append((scheme.lower(), params))
        rest = _params(rest, params)


def _params(text: str, params: dict[str, str]) -> str:
    """Read ``text``'s parameters into ``params``; what is left: the next challenge, or ""."""
    rest = "," + text.lstrip(_SPACE)
    while rest.startswith(","):
        key, after = _token(rest[1:].lstrip(_SPACE))
        if not key or not after.startswith("="):
            return rest[1:]  # the next challenge's scheme, or nothing readable
        value, rest = _value(after[1:])
        if not value:
            return ""
        params[key.lower()] = value
        rest = rest.lstrip(_SPACE)
    return ""


def _token(text: str) -> tuple[str, str]:
    end = 0
    while end < len(text) and 32 < ord(text[end]) < 127 and text[end] not in _SEPARATORS:
        end += 1
    return text[:end], text[end:]


def _value(text: str) -> tuple[str, str]:
    """A token or a quoted string (backslash escapes one character); "" where it is not closed."""
    if not text.startswith('"'):
        return _token(text)
    out: list[str] = []
    escaped = False
    for index, char in enumerate(text[1:], 1):
        if escaped or char not in '\\"':
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        else:
            return "".join(out), text[index + 1 :]
    return "", ""
