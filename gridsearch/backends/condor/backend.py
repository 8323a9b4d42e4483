"""HTCondor backend: one submit description per submission, ``queue ... from jobs.txt``.

The submission flow is :class:`gridsearch.backends.base.Backend`'s. A submission is
``jobs.txt`` (``INDEX DIR`` per line), the job script ``job.sh`` (the base script;
HTCondor passes it the index and ``ClusterId.ProcId``) and ``job.sub``. Before anything
is written, ``job.sub`` is parsed with HTCondor's own parser (the ``htcondor`` wheel, when
installed) beside a copy of the list file, and must yield exactly the planned jobs; then
``condor_submit job.sub`` runs in the submission directory and returns at once. Task ids
are ``<ClusterId>.<ProcId>``.

**Bundles** (``--bundle K``, :mod:`gridsearch.bundles`): one proc per bundle. ``job.sub``
says ``queue index from bundles.txt``, a file of bare task indices (0, 1, ...), and the job
script runs the dirs listed under its index in ``jobs.txt`` with ``python -m
hepae_core.bundle``, exactly as the Slurm script does. Only digits reach the submit
description: a job dir is never an item, so commas, spaces, quotes or ``$(...)`` in its
path cannot change how HTCondor splits or expands the line (a per-proc list of dirs in
the items would need HTCondor's quoting rules, and a separate list file per proc would be
K files more to write and keep). The procs run in the submission directory, with their
HTCondor output and user log in ``logs/`` and the bundle's output in
``logs/bundle-INDEX.log``. ``+MaxRuntime`` is K x the per-job time and ``+JobFlavour``
(lxplus) the smallest flavour holding it; a bundle too long for the longest flavour or the
site's ``max_time`` is refused naming the largest K that fits. The ledger maps
``ClusterId.ProcId`` to the list of the bundle's job ids, as for Slurm.

``query`` asks ``condor_q`` about jobs in the queue, then ``condor_history`` about those
that left it, and classifies them like the Slurm backend does.
"""

from __future__ import annotations

import contextlib
import json
import re
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

from gridsearch import bundles, render
from gridsearch.backends.base import (
    Chunk,
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
from gridsearch.backends.condor.request import check_request
from gridsearch.backends.condor.states import classify
from gridsearch.errors import GridsearchError
from hepae_core.contract import TaskState

SUBMIT_FILE = "job.sub"
SCRIPT_FILE = "job.sh"
#: With bundles: one task index per line, one proc each (the dirs stay in jobs.txt).
BUNDLE_LIST = "bundles.txt"
_ATTRS = (
    "ClusterId,ProcId,JobStatus,ExitCode,ExitBySignal,ExitSignal,HoldReason,HoldReasonCode,"
    "RemoveReason,NumJobStarts,LastHoldReason"
)
_run = run_command  # the one subprocess helper (base.run_command)


def parse_submit(text: str, directory: Path) -> list[dict[str, str]] | None:
    """The items HTCondor's own parser reads from a submit description in ``directory``
    (where ``condor_submit`` runs), or None when the ``htcondor`` wheel is not installed.
    Raises GridsearchError when it refuses the text.
    """
    try:
        import htcondor2
    except ImportError:
        return None
    try:
        with contextlib.chdir(directory):
            return [dict(item) for item in htcondor2.Submit(text).itemdata()]
    except Exception as exc:  # the bindings raise ValueError, RuntimeError, HTCondorException
        raise GridsearchError(
            message=f"HTCondor cannot parse the submit description: {exc}"
        ) from None


class CondorBackend(SchedulerBackend):
    """Submission with ``condor_submit``; status with condor_q -> condor_history."""

    kind = "condor"
    submit_tool = "condor_submit"
    release_tool = "condor_release"
    remove_tool = "condor_rm"

    @classmethod
    def check_request(cls, profile: dict[str, Any], request: dict[str, Any]) -> None:
        """HTCondor's request keys (:func:`gridsearch.backends.condor.request.check_request`)."""
        check_request(profile, request)

    def _prepare(self, order: Order) -> Prepared:
        """Render ``job.sh``, ``job.sub`` and ``jobs.txt`` and check ``job.sub`` with
        HTCondor's parser; write nothing."""
        jobs, directory, search = order.jobs, order.directory, order.search
        profile = dict(order.profile)
        profile.setdefault("kind", self.kind)
        tasks = bundles.plan_tasks(jobs, profile, order.overrides)
        request, environment = tasks.request, tasks.environment
        if not tasks.bundled:
            for job in jobs:  # each job dir is an item of the submit description
                render.condor_value(Path(job.dir))
        context = render.script_context(profile, request, environment, directory)
        # The list files are named relative to the submission dir, where condor_submit runs:
        # `queue ... from PATH` would read a '|' in PATH as a command to run.
        context.update(
            script=str(directory / SCRIPT_FILE),
            list_file=BUNDLE_LIST if tasks.bundled else render.LIST_FILE,
            n_jobs=len(jobs),
            n_tasks=tasks.n_tasks,
        )
        script_text = render.render(profile.get("script_template", "condor.sh.j2"), context, search)
        submit_text = render.render(profile.get("template", "condor.sub.j2"), context, search)
        chunk = Chunk(SUBMIT_FILE, tasks.pairs, bundled=tasks.bundled)
        lists = {render.LIST_FILE: jobs_list(tasks.pairs)}
        if tasks.bundled:
            # one proc per bundle: its task index, the line the job script looks up in jobs.txt
            lists[BUNDLE_LIST] = "".join(f"{i}\n" for i in chunk.tasks())
            planned = [{"index": str(i)} for i in chunk.tasks()]
        else:
            planned = [{"index": str(i), "jobdir": str(j.dir)} for i, j in tasks.pairs]
        with tempfile.TemporaryDirectory(prefix="gridsearch-check-") as tmp:
            for name, text in lists.items():
                (Path(tmp) / name).write_text(text, encoding="utf-8")
            items = parse_submit(submit_text, Path(tmp))
        if items is not None and items != planned:
            raise GridsearchError(
                message=f"{SUBMIT_FILE} yields {len(items)} procs to HTCondor's parser, not the "
                f"{len(planned)} planned ones; please report this"
            )
        files = {
            SUBMIT_FILE: (submit_text, 0o644),
            SCRIPT_FILE: (script_text, 0o755),
            **{name: (text, 0o644) for name, text in lists.items()},
        }
        notes = [python_note(environment), *tasks.notes]
        # a bundle's HTCondor output and the bundle's own log go to logs/ (must exist at submit)
        subdirs = ["logs"] if tasks.bundled else []
        return Prepared(directory, files, [chunk], subdirs, request, environment, notes=notes)

    def _make_submission_command(
        self, prepared: Prepared, chunk: Chunk, previous: str | None
    ) -> list[str]:
        return ["condor_submit", chunk.script]  # run in the submission directory

    def _get_job_id_from_submission_command(self, stdout: str, chunk: Chunk) -> str:
        m = re.search(r"(\d+) job\(s\) submitted to cluster (\d+)", stdout)
        if not m:
            raise GridsearchError(
                message=f"condor_submit printed no cluster id ({stdout.strip()!r}): check "
                "condor_q before submitting again"
            )
        count, cluster = int(m.group(1)), m.group(2)
        if count != len(chunk.tasks()):
            raise GridsearchError(
                message=f"condor_submit queued {count} jobs in cluster {cluster}, not "
                f"{len(chunk.tasks())}: check it with condor_q {cluster}"
            )
        return cluster

    def _task_ids(self, job_id: str, chunk: Chunk) -> dict[str, str | list[str]]:
        """``ClusterId.ProcId`` -> job id (a bundle: its job ids); procs are queued in the
        order of the chunk's task indices (jobs.txt, or bundles.txt for bundles)."""
        return {
            f"{job_id}.{proc}": task_value(refs, chunk.bundled)
            for proc, refs in enumerate(chunk.tasks().values())
        }

    def query(self, task_ids: list[str]) -> dict[str, SchedulerState]:
        """The pool's word on each ``ClusterId.ProcId``: condor_q, then condor_history.

        Raise :class:`SchedulerUnavailable` when condor_q cannot answer (not on PATH, no
        schedd): a task is ``unknown`` only when the pool answered and does not know it.
        """
        sources = [(tool, partial(_ads, tool)) for tool in ("condor_q", "condor_history")]
        return self._query_in_turn(task_ids, sources, "not known to HTCondor")


def _ads(tool: str, tasks: list[str]) -> dict[str, SchedulerState]:
    """What ``tool`` (condor_q or condor_history) says of ``tasks``, from the job ads of
    their clusters; raise :class:`SchedulerUnavailable` when condor_q answers with an error
    (a failing condor_history knows nothing)."""
    clusters = sorted({t.split(".")[0] for t in tasks if t.split(".")[0].isdigit()})
    if not clusters:
        return {}
    constraint = " || ".join(f"ClusterId == {c}" for c in clusters)
    proc = _run([tool, "-json", "-attributes", _ATTRS, "-constraint", constraint])
    if proc.returncode != 0:
        if tool == "condor_q":
            said = (proc.stderr or proc.stdout).strip() or f"exit {proc.returncode}"
            raise SchedulerUnavailable(f"condor_q failed: {said}")
        return {}
    try:
        ads = json.loads(proc.stdout) if proc.stdout.strip() else []
    except ValueError:
        return {}
    found: dict[str, SchedulerState] = {}
    for ad in ads if isinstance(ads, list) else []:
        task = f"{ad.get('ClusterId')}.{ad.get('ProcId')}"
        if task in tasks and task not in found:
            state, reason, code = classify(ad)
            # idle after earlier starts: evicted (or requeued), it runs again by itself
            restarts = int(ad.get("NumJobStarts") or 0) if state == TaskState.QUEUED else 0
            found[task] = SchedulerState(task, state, reason, code, restarts)
    return found
