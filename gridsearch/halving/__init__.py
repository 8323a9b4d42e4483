"""Successive halving in one place.

- :mod:`.section`: the space file's ``halving: {rungs: [10, 30, 90], keep: 1/3}``
  section (``parse_halving``, ``campaign_halving``, ``parse_keep``);
- :mod:`.promote`: rank the done jobs of the top rung and continue the best from their
  final checkpoints (``gridsearch promote``);
- :mod:`.rungs`: the one-core promote job queued behind a rung's arrays (Slurm), and what
  status says of it;
- :mod:`.follow`: the rungs after a submission (``--all-rungs``): in-process locally, one
  promote job per rung on a scheduler that can hold it.

Importing the package loads only the section parser (space files read it while planning).
"""

from __future__ import annotations

from gridsearch.halving.section import campaign_halving, parse_halving, parse_keep

__all__ = ["campaign_halving", "parse_halving", "parse_keep"]
