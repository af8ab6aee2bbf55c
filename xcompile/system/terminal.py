"""What reaches the terminal: log lines on stderr, results on stdout, and text from outside (a
registry's labels and digests, an archive's fields, a program's output) with its control characters
escaped. Only cli.py prints, through its console (console.py); the library modules say things
through a callback, and escape text from outside with ``printable`` where they show it.

A label of ``\\x1b[2J\\x1b]0;PWNED\\x07`` printed as it came clears the screen and retitles the
window (issue 27); a lone surrogate (JSON's ``"\\ud800"``) cannot even be encoded, and ended the
run in a traceback. Escaped, each reads as the bytes it is: ``\\x1b[2J``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Literal, TextIO

Say = Callable[[str, "str | None"], None]
"""How every module says a line: the line, and the label of the image it is about (None for the run).
The CLI's console prints it; the modules never print."""

Status = Literal["pass", "warn", "fail"]
"""A check's verdict, as doctor and the build's registry check show it."""

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
"""C0, DEL, C1 (the terminal acts on each), and the surrogates no encoding can write."""


def printable(text: str, keep: str = "") -> str:
    """``text`` with every control character but those in ``keep`` written as ``\\xNN`` (``\\uNNNN``)."""
    return _CONTROL.sub(lambda found: found[0] if found[0] in keep else _escaped(found[0]), text)


def _escaped(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


class Escaping(logging.Formatter):
    """A library's log line (python-debian warns of a Depends it cannot parse, quoting it) as printable text."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record), keep="\n\t")


def show(text: str, file: TextIO, *, start: str = "", end: str = "\n") -> None:
    """Every line xcompile prints: text from outside (a label, an archive's field, a program's output)
    with its control characters escaped, so that it cannot clear the screen or retitle the window."""
    print(start + printable(text, keep="\n\t"), end=end, file=file, flush=True)
