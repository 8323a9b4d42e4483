"""Slurm backend: one job array per submission, chunked at the cluster's MaxArraySize.

The submission flow is :class:`gridsearch.backends.base.Backend`'s; this module holds what
is Slurm's own. ``jobs.txt`` (``INDEX DIR`` per line) maps task indices to job dirs; one
batch script per chunk of array indices (``job.sh``, or ``job-0.sh``, ``job-1.sh``...
when the indices reach the MaxArraySize: the smaller of the profile's
``limits.max_array_size`` and, where ``scontrol`` is on PATH, the cluster's own); ``logs/``
for the batch shells' output (each job's output goes to ``job.log`` in its job dir).
``sbatch --parsable`` returns at once. Task ids are ``<array job id>_<array index>``.

``--throttle N`` holds for the whole submission: each chunk is ``%N`` and chunk k is
queued with ``--dependency=afterany:<chunk k-1>``, so only one chunk runs at a time.

``query`` asks ``squeue`` about tasks in the queue, then ``scontrol show job`` (which
keeps finished jobs for MinJobAge seconds), then ``sacct`` (which fails where there is no
accounting database; that is handled), and classifies each task as one of ``queued``,
``running``, ``done``, ``failed``, ``cancelled``, ``timeout``, ``oom``, ``node_fail``,
``preempted`` or ``unknown``.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from functools import partial
from pathlib import Path

from gridsearch import bundles, render
from gridsearch.backends.base import (
    Chunk,
    JobRef,
    Order,
    Prepared,
    SchedulerBackend,
    SchedulerState,
    SchedulerUnavailable,
    jobs_list,
    python_note,
    run_command,
    task_value,
)
from gridsearch.backends.slurm.request import cluster_max_array_size, max_array_size
from gridsearch.backends.slurm.states import classify
from gridsearch.errors import GridsearchError

_run = run_command  # the one subprocess helper (base.run_command)


def _parsable_id(stdout: str, what: str) -> str:
    """The job id ``sbatch --parsable`` printed (``id`` or ``id;cluster``)."""
    lines = stdout.strip().splitlines()
    job_id = lines[-1].split(";")[0].strip() if lines else ""
    if not job_id.isdigit():
        raise GridsearchError(
            message=f"sbatch printed no job id for {what} ({stdout.strip()!r}): check "
            "'squeue --me' before submitting again (the ledger keeps these jobs out of "
            "'planned')"
        )
    return job_id


class SlurmBackend(SchedulerBackend):
    """Submission to Slurm with ``sbatch``; status with squeue -> scontrol -> sacct."""

    kind = "slurm"
    submit_tool = "sbatch"
    release_tool = "scontrol release"
    remove_tool = "scancel"
    rung_template = "slurm_rung.sh.j2"
    supports_dependency = True
    script_template = "slurm.sh.j2"

    def _prepare(self, order: Order) -> Prepared:
        """One array script per chunk of indices below MaxArraySize, and ``jobs.txt``."""
        profile, directory = order.profile, order.directory
        tasks = bundles.plan_tasks(order.jobs, profile, order.overrides)
        k, pairs, request, environment = tasks.k, tasks.pairs, tasks.request, tasks.environment
        max_array = max_array_size(profile)
        notes = [python_note(environment)]
        from_cluster = cluster_max_array_size()
        if from_cluster is not None and from_cluster < max_array:
            notes.append(
                f"MaxArraySize {from_cluster} from 'scontrol show config' (the profile says "
                f"{max_array})"
            )
            max_array = from_cluster
        template = profile.get("template", self.script_template)
        groups: dict[int, list[tuple[int, JobRef]]] = {}
        for index, job in pairs:
            groups.setdefault(index // max_array, []).append((index, job))
        throttle = request.get("throttle")
        files: dict[str, tuple[str, int]] = {render.LIST_FILE: (jobs_list(pairs), 0o644)}
        notes.extend(tasks.notes)
        chunks: list[Chunk] = []
        for n, (group, members) in enumerate(sorted(groups.items())):
            offset = group * max_array
            array = render.compact_ranges(i - offset for i, _ in members)
            if throttle:
                array += f"%{throttle}"
            context = render.script_context(profile, request, environment, directory)
            context.update(array=array, offset=offset)
            name = "job.sh" if len(groups) == 1 else f"job-{n}.sh"
            files[name] = (render.render(template, context, order.search), 0o755)
            chunks.append(Chunk(name, members, offset, bundled=k > 1))
        if throttle and len(chunks) > 1:
            notes.append(
                f"--throttle {throttle} holds across the {len(chunks)} arrays: each runs after "
                "the one before has ended (--dependency=afterany)"
            )
        return Prepared(directory, files, chunks, ["logs"], request, environment, notes=notes)

    def _make_submission_command(
        self, prepared: Prepared, chunk: Chunk, previous: str | None
    ) -> list[str]:
        cmd = ["sbatch", "--parsable", f"--chdir={prepared.directory}"]
        # afterany, not afterok: one failed stage-1 task would leave a later stage pending
        # forever (DependencyNeverSatisfied); each stage-2 job picks among the done ones.
        wait_for = list(prepared.after)
        if previous is not None and prepared.request.get("throttle"):
            wait_for.append(previous)
        if wait_for:
            cmd.append("--dependency=afterany:" + ":".join(wait_for))
        return [*cmd, str(prepared.directory / chunk.script)]

    def follow_up_command(self, script: Path, after: list[str]) -> list[str]:
        cmd = ["sbatch", "--parsable", f"--chdir={script.parent}"]
        if after:
            cmd.append("--dependency=afterany:" + ":".join(after))
        return [*cmd, str(script)]

    def _follow_up_id(self, stdout: str) -> str:
        return _parsable_id(stdout, "the promote job")

    def _get_job_id_from_submission_command(self, stdout: str, chunk: Chunk) -> str:
        return _parsable_id(stdout, chunk.script)

    def _task_ids(self, job_id: str, chunk: Chunk) -> dict[str, str | list[str]]:
        return {
            f"{job_id}_{index - chunk.offset}": task_value(refs, chunk.bundled)
            for index, refs in chunk.tasks().items()
        }

    def _refusal_message(
        self, prepared: Prepared, chunk: Chunk, proc: subprocess.CompletedProcess[str]
    ) -> str:
        said = (proc.stderr or proc.stdout).strip()
        msg = f"sbatch refused {chunk.script}: {said}"
        if "invalid job array specification" in said.lower():
            msg += (
                "; the cluster's MaxArraySize is smaller than the profile's: set "
                "limits.max_array_size in your site profile to the value of "
                "'scontrol show config | grep MaxArraySize'"
            )
        return msg

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
        fetchers = (("squeue", self._squeue), ("scontrol", self._scontrol), ("sacct", self._sacct))
        sources = [(tool, partial(_states, fetch)) for tool, fetch in fetchers]
        return self._query_in_turn(task_ids, sources, "Slurm no longer knows task {task}")

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


def _states(
    fetch: Callable[[list[str]], dict[str, dict[str, str]]], tasks: list[str]
) -> dict[str, SchedulerState]:
    """The states of ``tasks`` in ``fetch``'s records of their arrays (squeue, scontrol or
    sacct), classified."""
    found: dict[str, SchedulerState] = {}
    for task, rec in fetch(sorted({t.split("_")[0] for t in tasks})).items():
        if task in tasks:
            restarts = int(rec.get("restarts") or 0)
            state, reason, code = classify(
                rec.get("state", ""), rec.get("exit"), rec.get("reason", ""), restarts
            )
            found[task] = SchedulerState(task, state, reason, code, restarts)
    return found


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
