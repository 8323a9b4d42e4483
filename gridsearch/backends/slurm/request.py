"""Slurm's request rules: how many array indices one submission may hold.

The common request keys (walltime, memory, cores, GPUs, account...) are checked by
:func:`gridsearch.sites.resolve_request`; ``request.extra`` is a list of sbatch options,
checked by the base class's :meth:`~gridsearch.backends.base.Backend.check_request`.
What is Slurm's own is the array size: the smaller of the profile's
``limits.max_array_size`` and the cluster's ``MaxArraySize``.
"""

from __future__ import annotations

import re
import subprocess
from typing import Any

from gridsearch.backends.base import run_command
from gridsearch.sites import _count


def max_array_size(profile: dict[str, Any]) -> int:
    """Slurm's MaxArraySize at the site: array indices must stay below it."""
    value = (profile.get("limits") or {}).get("max_array_size", 1001)
    return _count(value, "limits.max_array_size", 2)


def cluster_max_array_size() -> int | None:
    """MaxArraySize from ``scontrol show config``, or None where scontrol cannot tell."""
    try:
        proc = run_command(["scontrol", "show", "config"], timeout=20)
    except (FileNotFoundError, subprocess.TimeoutExpired, OSError):
        return None
    m = re.search(r"^\s*MaxArraySize\s*=\s*(\d+)", proc.stdout, flags=re.MULTILINE)
    return int(m.group(1)) if proc.returncode == 0 and m else None
