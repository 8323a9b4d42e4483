"""Text from users' files made safe to print on a terminal.

Values in a space file, a job's reason or a path may hold terminal control sequences
(``ESC [ 2 J`` clears the screen, others retitle the window or hide text). Everything
printed from such a source goes through :func:`safe`, which shows control characters as
Python-style escapes (``\\x1b``), so the output is what the file holds, visibly.
"""

from __future__ import annotations

import re
from typing import Any

# C0 controls (tab and newline included: a cell or a one-line message must stay one
# line), DEL and the C1 controls (U+0080-U+009F: 8-bit CSI and friends).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _escape(m: re.Match[str]) -> str:
    ch = m.group()
    return {"\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(ch, f"\\x{ord(ch):02x}")


def safe(value: Any) -> str:
    """``str(value)`` with every control character shown as an escape."""
    return _CONTROL.sub(_escape, str(value))
