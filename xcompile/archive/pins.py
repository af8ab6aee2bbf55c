"""A qemu pin, and which qemu satisfies it: one rule for PATH, apt and the download.

A pin (``qemu_version``) is an exact Debian version when it has an epoch or a
revision (``1:7.2+dfsg-7+deb12u18+b3``), else an upstream prefix that ends
where a number ends (``7.2`` and ``7.2+dfsg`` take ``1:7.2+dfsg-7+deb12u18+b3``;
``7.2`` does not take ``7.20``). PATH, apt and the download each had a rule
of their own, so ``7.2+dfsg`` refused a qemu that the download then took
(issue 27). The table in docs/qemu.md is checked against this module.
"""

from __future__ import annotations

import re

# What `qemu-arm --version` says first: "qemu-arm version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)";
# a build that is not Debian's says its own version only.
_SAID = re.compile(r"\bversion (?P<upstream>\d[\w.~+-]*)(?: \(Debian (?P<debian>[^)\s]+)\))?")


def exact(pin: str) -> bool:
    """Does ``pin`` name one Debian version (an epoch or a revision), rather than a prefix?"""
    return ":" in pin or "-" in pin


def satisfies(version: str, pin: str) -> bool:
    """Does a qemu satisfy ``pin``? ``version`` is a Debian version (an index's, apt's candidate)
    or the first line of its ``--version``; "" (unknown: a dry run asked nothing) satisfies any pin."""
    if not version:
        return True
    said = _SAID.search(version)
    if said is None:
        debian, upstreams = version, [version]
    else:
        debian = said["debian"] or ""
        upstreams = [said["upstream"], debian]
    if exact(pin):
        return debian == pin
    return any(_starts(upstream.split(":", 1)[-1], pin) for upstream in upstreams if upstream)


def _starts(upstream: str, prefix: str) -> bool:
    """``prefix`` begins ``upstream`` and does not end inside one of its numbers."""
    return upstream.startswith(prefix) and not upstream[len(prefix) : len(prefix) + 1].isdigit()
