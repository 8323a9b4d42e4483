"""Slurm backend: one job array per submission, chunked at the site's MaxArraySize.

``submit`` writes into the submission directory ``jobs.txt`` (``INDEX DIR`` per line),
one batch script per chunk of array indices (``job.sh``, or ``job-0.sh``, ``job-1.sh``...
when the indices span more than the site's ``max_array_size``) and ``logs/`` for the
batch shells' own output; each job's output goes to ``job.log`` in its job dir. It runs
``sbatch --parsable`` and returns at once. Task ids are ``<array job id>_<array index>``.

``query`` asks ``squeue`` about tasks in the queue, then ``scontrol show job`` (which
keeps finished jobs for MinJobAge seconds), then ``sacct`` (which fails where there is no
accounting database; that is handled), and classifies each task as one of ``queued``,
``running``, ``done``, ``failed``, ``cancelled``, ``timeout``, ``oom``, ``node_fail``,
``preempted`` or ``unknown``.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

from gridsearch import render, sites
from gridsearch.backends.base import JobRef, SchedulerState, Submission
from gridsearch.errors import GridsearchError
from hepae_core import states

#: Exit code of ``python -m hepae_core.job`` when it checkpointed on a signal.
EXIT_INTERRUPTED = 75

# REQUEUED/REQUEUE_FED are the moment of a requeue (preemption, node failure, scontrol
# requeue): the task is pending again under the same id and will run by itself.
_QUEUED = {
    "PENDING",
    "CONFIGURING",
    "REQUEUED",
    "REQUEUE_FED",
    "REQUEUE_HOLD",
    "RESV_DEL_HOLD",
    "SPECIAL_EXIT",
}
_RUNNING = {"RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING", "RESIZING", "SUSPENDED", "STOPPED"}
_SIMPLE = {
    "COMPLETED": "done",
    "CANCELLED": "cancelled",
    "TIMEOUT": "timeout",
    "DEADLINE": "timeout",
    "OUT_OF_MEMORY": "oom",
    "NODE_FAIL": "node_fail",
    "BOOT_FAIL": "node_fail",
    "PREEMPTED": "preempted",
    "REVOKED": "cancelled",
}

_TIMEOUT_S = 60


def _run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    exe = shutil.which(cmd[0])
    if exe is None:
        raise FileNotFoundError(cmd[0])
    return subprocess.run(
        [exe, *cmd[1:]], cwd=cwd, capture_output=True, text=True, timeout=_TIMEOUT_S, check=False
    )


def parse_exit_code(text: str | None) -> tuple[int | None, int | None]:
    """``(exit code, signal)`` of Slurm's ``ExitCode=75:0`` / ``0:9`` form."""
    if not text:
        return None, None
    m = re.match(r"^(\d+)(?::(\d+))?", text.strip())
    if not m:
        return None, None
    return int(m.group(1)), int(m.group(2) or 0)


def classify(
    slurm_state: str, exit_code: str | None = None, reason: str = "", restarts: int = 0
) -> tuple[str, str, int | None]:
    """Map a Slurm job state to ``(state, reason, exit code)`` of :class:`SchedulerState`.

    ``slurm_state`` is squeue's/scontrol's/sacct's state word (``CANCELLED by 0`` is fine).
    """
    word = (slurm_state or "").split()[0].rstrip("+").upper() if slurm_state else ""
    code, signal = parse_exit_code(exit_code)
    reason = "" if reason in ("None", "(null)") else reason
    if word in _QUEUED:
        why = f"pending ({reason})" if reason else "pending"
        if restarts:
            why += f", requeued {restarts} time{'s' if restarts > 1 else ''}"
        return "queued", why, None
    if word in _RUNNING:
        return "running", word.lower() if word != "RUNNING" else "", None
    if word == "FAILED":
        if signal:
            return "failed", f"killed by signal {signal}", code
        if code == EXIT_INTERRUPTED:
            return (
                "failed",
                f"exit {code}: interrupted, checkpoint written; resubmit to resume",
                code,
            )
        if code == states.EXIT_BAD_INPUT:
            return "failed", "exit 2: bad config or data (see state.json / job.log)", code
        if code == states.EXIT_BUSY:
            return "failed", "exit 73: another process runs this job dir; it touched nothing", code
        if code == states.EXIT_BAD_ENVIRONMENT:
            return "failed", "exit 78: the node's python cannot import the project", code
        if code is not None and code > 128:
            return "failed", f"exit {code}: killed by signal {code - 128}", code
        if code == 127:
            return "failed", "exit 127: python not found (check the profile's env)", code
        why = f"exit {code}" if code is not None else "failed"
        return (
            "failed",
            f"{why} ({reason})" if reason and reason != "NonZeroExitCode" else why,
            code,
        )
    if word in _SIMPLE:
        state = _SIMPLE[word]
        labels = {
            "done": "",
            "cancelled": "cancelled",
            "timeout": "walltime exceeded",
            "oom": "out of memory",
            "node_fail": "node failure",
            "preempted": "preempted",
        }
        why = labels[state]
        if state == "done" and code not in (None, 0):
            return "failed", f"exit {code}", code
        if reason and state != "done" and reason not in why:
            why = f"{why} ({reason})"
        return state, why, code
    return "unknown", f"Slurm state {slurm_state!r}" if slurm_state else "", code


class SlurmBackend:
    """Submission to Slurm with ``sbatch``; status with squeue -> scontrol -> sacct."""

    kind = "slurm"
    script_template = "slurm.sh.j2"

    def submit(
        self,
        jobs: list[JobRef],
        profile: dict[str, Any],
        directory: Path,
        dry_run: bool = False,
        overrides: dict[str, Any] | None = None,
    ) -> Submission:
        """Render one array script per chunk into ``directory`` and, unless ``dry_run``,
        submit them with ``sbatch --parsable``.

        Every check (required values, limits, job dirs) runs before anything is written.
        """
        request, environment = sites.check_submission(profile, overrides, len(jobs))
        for job in jobs:
            render.check_job_dir(Path(job.dir))
        max_array = sites.max_array_size(profile)
        indices = render.task_indices(jobs)
        directory = Path(directory).absolute()
        template = profile.get("template", self.script_template)

        chunks: dict[int, list[tuple[int, JobRef]]] = {}
        for index, job in zip(indices, jobs):
            chunks.setdefault(index // max_array, []).append((index, job))
        throttle = request.get("throttle")
        scripts: list[tuple[Path, int, list[tuple[int, JobRef]]]] = []
        texts: list[str] = []
        for k, (chunk, members) in enumerate(sorted(chunks.items())):
            offset = chunk * max_array
            array = render.compact_ranges(i - offset for i, _ in members)
            if throttle:
                array += f"%{throttle}"
            context = render.script_context(profile, request, environment, directory)
            context.update(array=array, offset=offset)
            texts.append(render.render(template, context))
            name = "job.sh" if len(chunks) == 1 else f"job-{k}.sh"
            scripts.append((directory / name, offset, members))

        directory.mkdir(parents=True, exist_ok=True)
        (directory / "logs").mkdir(exist_ok=True)
        list_file = render.write_list(directory, [(i, Path(j.dir)) for i, j in zip(indices, jobs)])
        for (path, _, _), text in zip(scripts, texts):
            path.write_text(text, encoding="utf-8")
            path.chmod(0o755)
        commands = [
            ["sbatch", "--parsable", f"--chdir={directory}", str(path)] for path, _, _ in scripts
        ]
        command = commands[0] if len(commands) == 1 else _chain(commands)
        submission = Submission(
            kind=self.kind,
            directory=directory,
            files=[p for p, _, _ in scripts] + [list_file],
            command=command,
            dry_run=dry_run,
        )
        if dry_run:
            return submission
        for cmd, (_, offset, members) in zip(commands, scripts):
            try:
                proc = _run(cmd, cwd=directory)
            except FileNotFoundError:
                raise GridsearchError(
                    message="sbatch not found on PATH: submit from the cluster's login "
                    "node, or use "
                    "--dry-run to only render the scripts"
                ) from None
            if proc.returncode != 0:
                done = ", ".join(submission.scheduler_ids) or "none"
                raise GridsearchError(
                    message=f"sbatch refused {cmd[-1]}: {(proc.stderr or proc.stdout).strip()} "
                    f"(arrays already submitted: {done})"
                )
            array_id = proc.stdout.strip().splitlines()[-1].split(";")[0].strip()
            if not array_id.isdigit():
                raise GridsearchError(message=f"sbatch printed no job id: {proc.stdout.strip()!r}")
            submission.scheduler_ids.append(array_id)
            for index, job in members:
                submission.tasks[f"{array_id}_{index - offset}"] = job.id
        return submission

    # ------------------------------------------------------------------ status

    def query(self, task_ids: list[str]) -> dict[str, SchedulerState]:
        """The scheduler's word on each ``<array id>_<index>`` (or plain job id).

        squeue first (tasks in the queue), then ``scontrol show job`` (which keeps ended
        tasks for MinJobAge seconds), then sacct (which fails where there is no accounting
        database). A task none of them knows is ``unknown``: Slurm ended it longer ago than
        MinJobAge, or it was cancelled while pending (Slurm drops such array tasks at once).
        When squeue itself cannot answer (no controller, a timeout), raise
        :class:`SchedulerUnavailable`: silence is then no evidence of anything.
        """
        wanted = [str(t) for t in task_ids]
        found: dict[str, SchedulerState] = {}
        if not wanted:
            return found
        for fetch in (self._squeue, self._scontrol, self._sacct):
            missing = [t for t in wanted if t not in found]
            if not missing:
                break
            try:
                records = fetch(sorted({t.split("_")[0] for t in missing}))
            except (FileNotFoundError, subprocess.TimeoutExpired) as exc:
                if fetch == self._squeue:
                    raise SchedulerUnavailable(f"squeue could not be run: {exc}") from None
                continue
            for task, rec in records.items():
                if task in missing:
                    restarts = int(rec.get("restarts") or 0)
                    state, reason, code = classify(
                        rec.get("state", ""), rec.get("exit"), rec.get("reason", ""), restarts
                    )
                    found[task] = SchedulerState(task, state, reason, code, restarts)
        for t in wanted:
            found.setdefault(
                t,
                SchedulerState(
                    t,
                    "unknown",
                    f"Slurm no longer knows task {t}",
                ),
            )
        return found

    @staticmethod
    def _squeue(ids: list[str]) -> dict[str, dict[str, str]]:
        proc = _run(
            [
                "squeue",
                "--noheader",
                "--array",
                f"--jobs={','.join(ids)}",
                "--Format=JobArrayID:|,State:|,Reason:|,RestartCnt:|",
            ]
        )
        out: dict[str, dict[str, str]] = {}
        if proc.returncode != 0:
            text = (proc.stderr or proc.stdout).strip()
            if "Invalid job id" not in text:  # the controller did not answer
                raise SchedulerUnavailable(f"squeue failed: {text or proc.returncode}")
            # One id the controller has forgotten makes squeue refuse them all: ask singly.
            if len(ids) > 1:
                for one in ids:
                    out.update(SlurmBackend._squeue([one]))
            return out
        for line in proc.stdout.splitlines():
            parts = [p.strip() for p in line.strip().split("|")]
            if len(parts) >= 2 and parts[0]:
                out[parts[0]] = {
                    "state": parts[1],
                    "reason": parts[2] if len(parts) > 2 else "",
                    "restarts": parts[3] if len(parts) > 3 and parts[3].isdigit() else "0",
                }
        return out

    @staticmethod
    def _scontrol(ids: list[str]) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for one in ids:
            proc = _run(["scontrol", "show", "job", "--oneliner", one])
            if proc.returncode != 0:
                continue
            for line in proc.stdout.splitlines():
                fields = dict(re.findall(r"(\w+)=(\S*)", line))
                if "JobState" not in fields:
                    continue
                record = {
                    "state": fields["JobState"],
                    "reason": fields.get("Reason", ""),
                    "exit": fields.get("ExitCode", ""),
                    "restarts": fields.get("Restarts", "0"),
                }
                if fields.get("ArrayTaskId") and fields.get("ArrayJobId"):
                    # Tasks not yet split off share one record: ArrayTaskId=3-7%2 or 1,4.
                    for index in _expand_indices(fields["ArrayTaskId"]):
                        out[f"{fields['ArrayJobId']}_{index}"] = record
                else:
                    out[fields.get("JobId", "")] = record
        return out

    @staticmethod
    def _sacct(ids: list[str]) -> dict[str, dict[str, str]]:
        proc = _run(
            [
                "sacct",
                "--noheader",
                "--parsable2",
                "--allocations",
                f"--jobs={','.join(ids)}",
                "--format=JobID,State,ExitCode,Reason,Restarts",
            ]
        )
        out: dict[str, dict[str, str]] = {}
        if proc.returncode != 0:  # e.g. "Slurm accounting storage is disabled"
            return out
        for line in proc.stdout.splitlines():
            parts = line.split("|")
            if len(parts) >= 3:
                out[parts[0]] = {
                    "state": parts[1],
                    "exit": parts[2],
                    "reason": parts[3] if len(parts) > 3 else "",
                    "restarts": parts[4] if len(parts) > 4 and parts[4].isdigit() else "0",
                }
        return out


class SchedulerUnavailable(OSError):
    """squeue could not answer: the scheduler's silence says nothing about the tasks."""


def _expand_indices(text: str) -> list[str]:
    """``3-5%2`` -> ['3', '4', '5']; ``1,4`` -> ['1', '4']; ``7`` -> ['7']."""
    out: list[str] = []
    for part in text.split("%")[0].split(","):
        lo, _, hi = part.partition("-")
        if lo.isdigit() and hi.isdigit() and int(hi) - int(lo) < 100000:
            out.extend(str(i) for i in range(int(lo), int(hi) + 1))
        elif lo.isdigit() and not hi:
            out.append(lo)
    return out


def _chain(commands: list[list[str]]) -> list[str]:
    """Several sbatch commands as one argv-like list joined by ``&&`` (for display)."""
    out: list[str] = []
    for cmd in commands:
        if out:
            out.append("&&")
        out.extend(cmd)
    return out


def format_command(command: list[str]) -> str:
    """The command as a user would type it."""
    return " ".join(c if c == "&&" else shlex.quote(c) for c in command)
