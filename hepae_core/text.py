"""Text from users' files made safe to print on a terminal.

Values in a space file, a job's reason, a line of job.log or a path may hold terminal
control sequences (``ESC [ 2 J`` clears the screen, others retitle the window or hide
text). Everything printed from such a source goes through :func:`safe` (one line: a table
cell, a message) or :func:`safe_text` (several lines: a config, a log), which show control
characters as Python-style escapes (``\\x1b``), so the output is what the file holds,
visibly. Ordinary text, non-ASCII letters included, is left as it is.
"""

from __future__ import annotations

import re
from typing import Any

# C0 controls (tab and newline included: a cell or a one-line message must stay one
# line), DEL, the C1 controls (U+0080-U+009F: 8-bit CSI and friends), and the
# bidirectional overrides and isolates (they reorder what is shown).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# The same, but newline and tab: for text shown as several lines.
_CONTROL_TEXT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _escape(m: re.Match[str]) -> str:
    ch = m.group()
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe(value: Any) -> str:
    """``str(value)`` with every control character shown as an escape: one line."""
    return _CONTROL.sub(_escape, str(value))


def safe_text(value: Any) -> str:
    """:func:`safe`, but newlines and tabs kept: for text shown as several lines."""
    return _CONTROL_TEXT.sub(_escape, str(value))
