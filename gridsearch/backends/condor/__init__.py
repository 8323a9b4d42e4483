"""The HTCondor backend: one submit description per submission (``queue ... from
jobs.txt``), status from condor_q, then condor_history.

- :mod:`.backend`: :class:`CondorBackend`, the submission (``job.sub`` checked with
  HTCondor's own parser, bundles as one proc each) and the queries;
- :mod:`.states`: HTCondor's job states and exit codes as the contract's task states;
- :mod:`.request`: HTCondor's request rules (walltime classes, disk, restarts, transfers,
  extra submit commands).
"""

from __future__ import annotations

from gridsearch.backends.condor.backend import (
    BUNDLE_LIST,
    SCRIPT_FILE,
    SUBMIT_FILE,
    CondorBackend,
    parse_submit,
)
from gridsearch.backends.condor.request import check_request, choose_flavour
from gridsearch.backends.condor.states import classify

__all__ = [
    "BUNDLE_LIST",
    "SCRIPT_FILE",
    "SUBMIT_FILE",
    "CondorBackend",
    "check_request",
    "choose_flavour",
    "classify",
    "parse_submit",
]
