"""Text from files (names, reasons, log lines) made safe to print on a terminal.

Values in a campaign come from users and from jobs: a space file's value, a reason copied
from an exception, a line of job.log. Printed raw, an escape sequence in one of them can
recolour, clear or retitle the user's terminal, or hide a line. ``safe`` shows every control
character as a visible escape instead (``\\x1b``, ``\\r``...), keeping ordinary text,
including non-ASCII letters, as it is.
"""

from __future__ import annotations

import re

# C0 controls but tab/newline, DEL, C1 controls, and the bidirectional overrides (which
# reorder what is shown).
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\r": "\\r", "\x0b": "\\v", "\x0c": "\\f"}


def _escape(match: re.Match[str]) -> str:
    ch = match.group(0)
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe(text: object) -> str:
    """``str(text)`` with control characters shown as escapes (tab and newline kept)."""
    return _UNSAFE.sub(_escape, str(text))


def safe_line(text: object) -> str:
    """:func:`safe`, and newlines and tabs as spaces: one line for a table cell."""
    return safe(text).replace("\n", " ").replace("\t", " ")
