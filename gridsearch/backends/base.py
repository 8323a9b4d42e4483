"""The scheduler-backend base class: it owns the submission flow; backends fill in hooks.

Modelled on submitit's ``Executor`` (``core/core.py``): :meth:`Backend.submit` runs the
same steps for every scheduler, in this order, and a backend only says what differs.

1. **Validate everything** (:meth:`Backend._prepare`): the request against the site's
   limits, the account, hostile values, the job directories, and the rendering of every
   file. Nothing is written before this step has passed, so a refused submission leaves
   no ``submit/<id>/`` behind.
2. **Write ahead** (:class:`Journal`): the intended submission (its task indices and job
   ids) is appended to the campaign's ledger and fsync-ed before the scheduler is called.
3. **Write the files** of the submission directory (atomically, one by one).
4. **Run the command(s)** through :func:`run_command`, the one subprocess helper, and
   parse the scheduler's ids (:meth:`Backend._get_job_id_from_submission_command`).
5. **Complete the record** with the ids and task ids (``submitted``), or ``refused`` when
   the scheduler queued nothing (the submission directory is then removed). When the
   completion cannot be written (a full disk after the scheduler accepted), the error
   names the scheduler ids and the one ``gridsearch adopt`` command that records them.

``blocking`` is a class attribute: a blocking backend (local) runs the jobs in
:meth:`Backend._execute` and returns when they ended; status never asks it about jobs.
"""

from __future__ import annotations

import abc
import contextlib
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gridsearch.errors import GridsearchError
from hepae_core.contract import TaskState

#: Seconds a scheduler command may take before it counts as failed.
COMMAND_TIMEOUT_S = 60


@dataclass
class JobRef:
    """One job to submit: its id, its directory (absolute) and its campaign index."""

    id: str
    dir: Path
    index: int | None = None


@dataclass
class Submission:
    """What a backend did: the files it rendered, the command, the scheduler's ids."""

    kind: str
    directory: Path
    files: list[Path]
    command: list[str]
    scheduler_ids: list[str] = field(default_factory=list)
    # scheduler task id -> job id, or the list of job ids of a bundle task
    tasks: dict[str, str | list[str]] = field(default_factory=dict)
    dry_run: bool = False
    notes: list[str] = field(default_factory=list)  # what the user should know (dry run too)


@dataclass
class SchedulerState:
    """What the scheduler says of one task still in flight (or recently finished)."""

    task_id: str
    #: A :class:`hepae_core.contract.TaskState` (a ``str``: queued, held, running, done,
    #: failed, cancelled, timeout, oom, node_fail, preempted, unknown).
    state: TaskState | str
    reason: str = ""
    exit_code: int | None = None
    restarts: int = 0  # times the scheduler requeued the task (preemption, node failure)


@dataclass
class Order:
    """One submission as asked, what :meth:`Backend._prepare` checks and renders: the jobs,
    the site profile, the submission directory, the user's request overrides (``--time``,
    ``--bundle``...) and the user's template directories."""

    jobs: list[JobRef]
    profile: dict[str, Any]
    directory: Path
    overrides: dict[str, Any] = field(default_factory=dict)
    search: list[Path] = field(default_factory=list)


@dataclass
class Chunk:
    """One scheduler command and the jobs it submits.

    ``members`` are ``(task index, job)`` pairs; ``offset`` is subtracted from a task index
    to get the scheduler's own index (a Slurm array chunk starts at 0).
    """

    script: str
    members: list[tuple[int, JobRef]]
    offset: int = 0
    bundled: bool = False  # each task runs a bundle (``members`` repeat task indices)

    def tasks(self) -> dict[int, list[JobRef]]:
        """Task index -> its jobs."""
        return group_members(self.members)


@dataclass
class Prepared:
    """Everything a submission will write and run, checked, before anything is written."""

    directory: Path
    files: dict[str, tuple[str, int]]  # file name in the directory -> (text, mode)
    chunks: list[Chunk]
    subdirs: list[str] = field(default_factory=list)
    request: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: Scheduler ids this submission waits for (an earlier stage); see ``supports_dependency``.
    after: list[str] = field(default_factory=list)

    def indices(self) -> dict[str, str | list[str]]:
        """Task index -> job id (a bundle task: the list of its job ids), for the ledger
        (JSON keys are strings)."""
        return {
            str(i): task_value(refs, c.bundled)
            for c in self.chunks
            for i, refs in c.tasks().items()
        }


def jobs_list(pairs: Iterable[tuple[int, JobRef]]) -> str:
    """The text of ``jobs.txt`` (:data:`gridsearch.render.LIST_FILE`), the task index -> job
    dir map every backend writes: ``INDEX DIR`` a line."""
    from gridsearch import render  # jinja2: loaded by the backends that render, not by plan

    return render.list_text((index, Path(ref.dir)) for index, ref in pairs)


def python_note(environment: dict[str, Any]) -> str:
    """The first note of a cluster submission: the python its job scripts run on the nodes
    (``environment`` as :func:`gridsearch.sites.check_submission` returns it)."""
    return f"python on the nodes: {environment['python']} ({environment['origin']})"


def group_members(members: list[tuple[int, JobRef]]) -> dict[int, list[JobRef]]:
    """Task index -> its jobs, in order (several: a bundle)."""
    out: dict[int, list[JobRef]] = {}
    for index, ref in members:
        out.setdefault(int(index), []).append(ref)
    return out


def task_value(refs: list[JobRef], bundled: bool) -> str | list[str]:
    """What the ledger says a task runs: one job id, or a bundle's list of job ids."""
    if bundled or len(refs) > 1:
        return [r.id for r in refs]
    return refs[0].id


def job_ids(value: Any) -> list[str]:
    """The job ids of a ledger ``tasks``/``indices`` value (one id or a bundle's list)."""
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return [str(value)]


class SchedulerRefused(GridsearchError):
    """The scheduler refused a command; ``accepted`` says what was queued before it."""


class OutcomeNotRecorded(GridsearchError):
    """The scheduler accepted the jobs but the ledger could not record it."""


@dataclass
class Journal:
    """The write-ahead ledger of one submission (see docs/campaign.md).

    ``campaign`` is a :class:`gridsearch.campaign.Campaign`; ``fields`` go into every
    record (kind, site, dir, time...).
    """

    campaign: Any
    submission: str
    fields: dict[str, Any] = field(default_factory=dict)

    def intent(self, **more: Any) -> None:
        self.campaign.record_intent(self.submission, **self.fields, **more)

    def outcome(self, event: str, **more: Any) -> None:
        self.campaign.record_outcome(self.submission, event, **self.fields, **more)

    def adopt_command(self, ids: list[str]) -> str:
        return (
            f"gridsearch adopt {shlex.quote(str(self.campaign.root))} {self.submission} "
            f"--ids {','.join(ids)}"
        )


def run_command(
    cmd: list[str], cwd: Path | None = None, timeout: float = COMMAND_TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    """Run a scheduler command (never through a shell); raise FileNotFoundError when the
    tool is not on PATH. Its exit status is the caller's to judge."""
    exe = shutil.which(cmd[0])
    if exe is None:
        raise FileNotFoundError(cmd[0])
    return subprocess.run(
        [exe, *cmd[1:]], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def format_command(command: list[str]) -> str:
    """The command as a user would type it (``&&`` joins chained commands)."""
    return " ".join(c if c == "&&" else shlex.quote(c) for c in command)


class SchedulerUnavailable(OSError):
    """The scheduler could not answer a query (no controller, tool missing, a timeout):
    its silence says nothing about the tasks, so status keeps the job dirs' word and
    resubmit does not take jobs it may hold."""


#: One tool a scheduler backend asks about tasks: task ids -> the states of those it knows.
Source = Callable[[list[str]], dict[str, SchedulerState]]

#: A Slurm-style extra option of a profile's ``request.extra`` list (``--exclusive``).
_OPTION = re.compile(r"^--?[A-Za-z][A-Za-z0-9\-]*(=[A-Za-z0-9_.:,+=@%/\-&|\[\]*!]+)?$")


class Backend(abc.ABC):
    """One scheduler kind. The base owns the submission flow (:meth:`submit`); a subclass
    fills in the abstract hooks, so that one missing fails when the class is instantiated
    (``TypeError: Can't instantiate abstract class``), not halfway through a submission.

    Hooks every backend has: :meth:`_prepare` (check and render, write nothing),
    :meth:`_display_command`, :meth:`_execute`, :meth:`_task_ids` and :meth:`query`; the
    request rules of its scheduler are :meth:`check_request` (a default for sbatch-like
    ``extra`` options). A scheduler with a queue derives from :class:`SchedulerBackend`,
    which runs its submit command per chunk.
    """

    kind: str = ""
    #: True when ``submit`` runs the jobs and returns once they ended (local).
    blocking: bool = False
    #: The tool that submits, for the "not found on PATH" message.
    submit_tool: str = ""
    #: True when the scheduler can hold a submission until given jobs ended (``after``).
    supports_dependency: bool = False
    #: The commands that release a task the scheduler holds (state ``held``) and that
    #: remove it, for status's advice ("" where the scheduler never holds one).
    release_tool: str = ""
    remove_tool: str = ""
    #: The template of a single follow-up job queued behind others (``submit --all-rungs``:
    #: gridsearch/halving/rungs.py); "" where the scheduler cannot hold a job behind others.
    rung_template: str = ""

    # ------------------------------------------------------------------ follow-up jobs

    def follow_up_command(self, script: Path, after: list[str]) -> list[str]:
        """The command that queues ``script`` as one job held until ``after`` ended."""
        raise GridsearchError(message=f"{self.kind} cannot queue a job behind others")

    def submit_after(self, script: Path, after: list[str]) -> tuple[str, list[str]]:
        """Queue ``script`` behind ``after``; its scheduler id and the command run."""
        command = self.follow_up_command(script, after)
        proc = self._submit_tool(command, script.parent)
        if proc.returncode != 0:
            said = (proc.stderr or proc.stdout).strip() or f"exit {proc.returncode}"
            raise GridsearchError(message=f"{self.submit_tool} refused {script.name}: {said}")
        return self._follow_up_id(proc.stdout), command

    def _follow_up_id(self, stdout: str) -> str:
        """The scheduler id in the output of :meth:`follow_up_command`."""
        raise GridsearchError(message=f"{self.kind} cannot queue a job behind others")

    # ------------------------------------------------------------------ requests

    @classmethod
    def check_request(cls, profile: dict[str, Any], request: dict[str, Any]) -> None:
        """Check and complete the scheduler's own request keys in place (called by
        :func:`gridsearch.sites.resolve_request` once the common keys are checked).

        The default takes ``extra`` as a list of sbatch-like options (``--exclusive``).
        """
        extra = request.get("extra") or []
        if not isinstance(extra, list) or not all(isinstance(v, str) and v for v in extra):
            raise GridsearchError(
                message="expects a list of non-empty strings", key="request.extra"
            )
        for opt in extra:
            if not _OPTION.match(opt):
                raise GridsearchError(
                    message=f"{opt!r} is not a plain sbatch option like --exclusive or "
                    "--mail-type=END",
                    key="request.extra",
                )
        request["extra"] = extra

    # ------------------------------------------------------------------ the flow

    def submit(
        self,
        jobs: list[JobRef],
        profile: dict[str, Any],
        directory: Path,
        dry_run: bool = False,
        overrides: dict[str, Any] | None = None,
        journal: Journal | None = None,
        search: list[Path] | None = None,
        before_submit: Callable[[], None] | None = None,
        after: list[str] | None = None,
    ) -> Submission:
        """Validate, record the intent, write the files, submit, record the outcome.

        ``journal`` is the ledger of the submission (None: nothing is recorded, e.g. a
        test calling a backend directly); ``search`` the user's template directories;
        ``before_submit`` runs once everything was validated and the intent recorded (the
        caller moves a forced done job's outputs aside there); ``after`` the scheduler ids
        (array jobs or tasks) that must end before any of these jobs starts.
        """
        directory = Path(directory).absolute()
        if directory.exists() and any(directory.iterdir()):
            raise GridsearchError(message="already holds a submission", source=str(directory))
        if after and not (self.supports_dependency or self.blocking):
            raise GridsearchError(
                message=f"{self.kind} cannot hold jobs until others ended; submit them once "
                "the jobs they wait for are done"
            )
        prepared = self._prepare(Order(jobs, profile, directory, overrides or {}, search or []))
        if after and not self.blocking:
            prepared.after = list(after)
            prepared.notes.append(
                "held by the scheduler until " + ", ".join(after) + " ended (an earlier stage)"
            )
        sub = Submission(
            kind=self.kind,
            directory=directory,
            files=[directory / name for name in prepared.files],
            command=self._display_command(prepared),
            dry_run=dry_run,
            notes=list(prepared.notes),
        )
        if dry_run:
            self._write(prepared)
            return sub
        if journal is not None:
            self._intend(journal, prepared, sub, len(jobs))
        try:
            if before_submit is not None:
                before_submit()
            self._write(prepared)
        except OSError as exc:
            self._refused(journal, directory, f"cannot write the submission files: {exc}")
            raise GridsearchError(
                message=f"cannot write the submission files ({exc.strerror or exc}); nothing was "
                "submitted",
                source=str(directory),
            ) from None
        try:
            self._execute(prepared, sub)
        except SchedulerRefused as exc:
            if not sub.tasks:
                self._refused(journal, directory, exc.message)
                raise
            # Part was queued (an earlier chunk): record that part, then report the rest.
            self._record(journal, sub, partial=True)
            raise SchedulerRefused(
                message=f"{exc.message}; the tasks queued before it "
                f"({', '.join(sub.scheduler_ids)}) are recorded, the other jobs stay planned"
            ) from None
        except BaseException:
            if sub.tasks:  # interrupted after the scheduler accepted: keep what it holds
                with contextlib.suppress(OSError):
                    self._record(journal, sub, interrupted=True)
            raise
        self._record(journal, sub)
        return sub

    @staticmethod
    def _intend(journal: Journal, prepared: Prepared, sub: Submission, n_jobs: int) -> None:
        """Write the intended submission ahead into the ledger (step 2)."""
        bundle = prepared.request.get("bundle")
        journal.intent(
            indices=prepared.indices(),
            chunks=[{"offset": c.offset, "indices": list(c.tasks())} for c in prepared.chunks],
            command=[str(c) for c in sub.command],
            jobs=n_jobs,
            **({"bundle": bundle} if bundle else {}),
        )

    def _refused(self, journal: Journal | None, directory: Path, reason: str) -> None:
        """The scheduler queued nothing: say so in the ledger and leave no files behind."""
        from gridsearch.campaign import REFUSED

        shutil.rmtree(directory, ignore_errors=True)
        if journal is not None:
            # A full disk may refuse this too: the intent alone then keeps the jobs out of
            # `planned` until 'gridsearch adopt ... --ids none' or a forced resubmit.
            with contextlib.suppress(OSError):
                journal.outcome(REFUSED, reason=reason)

    def _record(self, journal: Journal | None, sub: Submission, **extra: Any) -> None:
        from gridsearch.campaign import SUBMITTED

        if journal is None:
            return
        if self.blocking:
            from hepae_core.jobdir import now_iso

            extra.setdefault("ended", now_iso())
        try:
            journal.outcome(
                SUBMITTED,
                scheduler_ids=list(sub.scheduler_ids),
                tasks=dict(sub.tasks),
                command=[str(c) for c in sub.command],
                dry_run=False,
                **extra,
            )
        except OSError as exc:
            ids = list(sub.scheduler_ids)
            raise OutcomeNotRecorded(
                message=f"the scheduler accepted the jobs (ids {', '.join(ids)}) but the ledger "
                f"cannot record it ({exc.strerror or exc}). The jobs are queued: do NOT submit "
                f"them again. Free some space, then record them with: {journal.adopt_command(ids)}",
                source=str(journal.campaign.root),
            ) from None

    def _write(self, prepared: Prepared) -> None:
        from hepae_core.jobdir import atomic_write_text

        prepared.directory.mkdir(parents=True, exist_ok=True)
        for sub in prepared.subdirs:
            (prepared.directory / sub).mkdir(exist_ok=True)
        for name, (text, mode) in prepared.files.items():
            path = prepared.directory / name
            atomic_write_text(path, text)
            path.chmod(mode)

    def _submit_tool(self, cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
        """Run a submit command; its exit status is the caller's to judge."""
        try:
            return run_command(cmd, cwd=cwd)
        except FileNotFoundError:
            raise SchedulerRefused(
                message=f"{self.submit_tool} not found on PATH: submit from a machine of the "
                "cluster (its login node), or use --dry-run to only render the files"
            ) from None
        except subprocess.TimeoutExpired:
            # It may have queued the jobs: treat as accepted-but-unknown, not refused.
            raise GridsearchError(
                message=f"{self.submit_tool} did not answer in {COMMAND_TIMEOUT_S} s; check "
                f"the queue before submitting again (the ledger keeps the jobs out of "
                f"'planned')"
            ) from None

    def adopt_tasks(self, record: dict[str, Any], ids: list[str]) -> dict[str, str | list[str]]:
        """Task id -> job id of an intended submission whose scheduler ids were printed
        but not recorded (``gridsearch adopt``); one id per chunk, in order."""
        chunks = record.get("chunks") or []
        indices = record.get("indices") or {}
        if len(ids) != len(chunks):
            raise GridsearchError(
                message=f"submission {record.get('submission')} was {len(chunks)} scheduler "
                f"command(s): give {len(chunks)} id(s), in the order they were printed",
                key="--ids",
            )
        tasks: dict[str, str | list[str]] = {}
        for job_id, c in zip(ids, chunks):
            refs = [
                (int(i), JobRef(one, Path("."), int(i)))
                for i in c["indices"]
                for one in job_ids(indices[str(i)])
            ]
            bundled = any(isinstance(indices[str(i)], list) for i in c["indices"])
            chunk = Chunk("", refs, int(c.get("offset", 0)), bundled)
            tasks.update(self._task_ids(job_id, chunk))
        return tasks

    # ------------------------------------------------------------------ hooks

    @abc.abstractmethod
    def _prepare(self, order: Order) -> Prepared:
        """Check everything and render every file of ``order``; write nothing."""

    @abc.abstractmethod
    def _display_command(self, prepared: Prepared) -> list[str]:
        """The command(s) as recorded in the ledger and shown to the user."""

    @abc.abstractmethod
    def _execute(self, prepared: Prepared, sub: Submission) -> None:
        """Submit (or run) the prepared jobs; fill ``sub``'s ids and tasks."""

    @abc.abstractmethod
    def _task_ids(self, job_id: str, chunk: Chunk) -> dict[str, str | list[str]]:
        """Task id -> job id (a bundle: job ids) for the jobs of ``chunk`` queued as
        ``job_id``."""

    @abc.abstractmethod
    def query(self, task_ids: list[str]) -> dict[str, SchedulerState]:
        """Ask the scheduler about these task ids; missing ones are unknown to it."""


class SchedulerBackend(Backend):
    """A scheduler with a queue: each chunk is one submit command whose output names the
    scheduler's id. Subclasses fill in :meth:`_make_submission_command` and
    :meth:`_get_job_id_from_submission_command` (besides :class:`Backend`'s hooks)."""

    def _execute(self, prepared: Prepared, sub: Submission) -> None:
        """Run the submission command of each chunk; fill ``sub``'s ids and tasks."""
        previous: str | None = None
        ran: list[str] = []
        for chunk in prepared.chunks:
            cmd = self._make_submission_command(prepared, chunk, previous)
            ran.extend(["&&", *cmd] if ran else cmd)
            sub.command = list(ran)  # what really ran, ids of earlier chunks filled in
            proc = self._submit_tool(cmd, prepared.directory)
            if proc.returncode != 0:
                raise SchedulerRefused(
                    message=self._refusal_message(prepared, chunk, proc),
                )
            job_id = self._get_job_id_from_submission_command(proc.stdout, chunk)
            sub.scheduler_ids.append(job_id)
            sub.tasks.update(self._task_ids(job_id, chunk))
            previous = job_id

    def _display_command(self, prepared: Prepared) -> list[str]:
        """The command(s) as recorded in the ledger and shown to the user."""
        out: list[str] = []
        for k, chunk in enumerate(prepared.chunks):
            if out:
                out.append("&&")
            out.extend(self._make_submission_command(prepared, chunk, "PREVIOUS" if k else None))
        return out

    @abc.abstractmethod
    def _make_submission_command(
        self, prepared: Prepared, chunk: Chunk, previous: str | None
    ) -> list[str]:
        """The argv that submits ``chunk``; ``previous`` is the id of the chunk before."""

    @abc.abstractmethod
    def _get_job_id_from_submission_command(self, stdout: str, chunk: Chunk) -> str:
        """The scheduler's id in the submission command's output."""

    def _refusal_message(
        self, prepared: Prepared, chunk: Chunk, proc: subprocess.CompletedProcess[str]
    ) -> str:
        said = (proc.stderr or proc.stdout).strip()
        return f"{self.submit_tool} refused {chunk.script}: {said}"

    @staticmethod
    def _query_in_turn(
        task_ids: list[str], sources: Sequence[tuple[str, Source]], unknown: str
    ) -> dict[str, SchedulerState]:
        """The scheduler's word on each task: ``sources`` are ``(tool, ask)`` pairs asked in
        turn about the tasks none before knew (the queue first, then what keeps ended tasks).

        ``ask(tasks)`` returns the states of those of ``tasks`` its tool knows. The first
        tool speaks for the scheduler: when it cannot be run (not on PATH, a timeout) this
        raises :class:`SchedulerUnavailable`, since its silence proves nothing (``ask``
        raises it too when the tool answers with an error); a later one that cannot be run
        is passed over. A task no tool knows is ``unknown``, for the reason ``unknown``
        (``{task}`` is the task id).
        """
        wanted = [str(t) for t in task_ids]
        found: dict[str, SchedulerState] = {}
        for n, (tool, ask) in enumerate(sources):
            missing = [t for t in wanted if t not in found]
            if not missing:
                break
            try:
                answers = ask(missing)
            except (FileNotFoundError, subprocess.TimeoutExpired) as exc:
                if n == 0:
                    raise SchedulerUnavailable(f"{tool} could not be run: {exc}") from None
                continue
            asked = set(missing)
            found.update((t, state) for t, state in answers.items() if t in asked)
        for t in wanted:
            found.setdefault(t, SchedulerState(t, TaskState.UNKNOWN, unknown.format(task=t)))
        return found
