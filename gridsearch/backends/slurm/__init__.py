"""The Slurm backend: one job array per submission (``sbatch --parsable``), status from
squeue, then ``scontrol show job``, then sacct.

- :mod:`.backend`: :class:`SlurmBackend`, the submission (array scripts, chunks at
  MaxArraySize, ``--dependency``) and the queries;
- :mod:`.states`: Slurm's state words and exit codes as the contract's task states;
- :mod:`.request`: Slurm's request rules (the array size).
"""

from __future__ import annotations

from gridsearch.backends.base import SchedulerUnavailable, format_command
from gridsearch.backends.slurm.backend import SlurmBackend
from gridsearch.backends.slurm.request import cluster_max_array_size, max_array_size
from gridsearch.backends.slurm.states import classify, parse_exit_code

__all__ = [
    "SchedulerUnavailable",
    "SlurmBackend",
    "classify",
    "cluster_max_array_size",
    "format_command",
    "max_array_size",
    "parse_exit_code",
]
