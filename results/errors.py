"""The one error the summarizer raises: bad input the user can act on (exit code 2)."""

from __future__ import annotations

from hepae_core.errors import UserError


class SummaryError(UserError):
    """Not a campaign, or an unreadable summary: one message naming the file and what to do."""
