"""The one error the summarizer raises: bad input the user can act on (exit code 2)."""

from __future__ import annotations

from gridsearch.errors import GridsearchError


class SummaryError(GridsearchError):
    """Not a campaign, or an unreadable summary: one message naming the file and what to do."""

    exit_code = 2
