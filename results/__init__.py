"""results: summarize a campaign into a table, reports and comparison plots.

Public API::

    results.load(campaign_dir) -> pandas.DataFrame      # read summary/summary.h5
    results.summarize(campaign_dir, **options) -> SummaryReport

The command line is ``gridsearch summarize`` (:mod:`results.cmd_summarize`) or
``python -m results``. Nothing here imports torch.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SummaryError", "SummaryReport", "load", "summarize"]


def load(campaign_dir: Any) -> Any:
    """The summary table of a campaign as a pandas DataFrame (see :func:`results.table.load`)."""
    from results.table import load as _load

    return _load(campaign_dir)


def summarize(campaign_dir: Any, **options: Any) -> Any:
    """Summarize a campaign (see :func:`results.summary.summarize`)."""
    from results.summary import summarize as _summarize

    return _summarize(campaign_dir, **options)


def __getattr__(name: str) -> Any:
    if name == "SummaryReport":
        from results.summary import SummaryReport

        return SummaryReport
    if name == "SummaryError":
        from results.errors import SummaryError

        return SummaryError
    raise AttributeError(name)
