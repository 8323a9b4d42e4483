"""HTCondor backend: one submit description per submission, ``queue ... from jobs.txt``.

``submit`` writes ``jobs.txt`` (``INDEX DIR`` per line), the job script ``job.sh`` (the
base script; HTCondor passes it the index and ``ClusterId.ProcId``) and ``job.sub``; it
parses ``job.sub`` with HTCondor's own parser (the ``htcondor`` wheel, when installed)
and checks that it yields exactly the planned jobs, then runs ``condor_submit job.sub``
and returns at once (it runs in the submission directory: ``cd DIR && condor_submit
job.sub``). Task ids are ``<ClusterId>.<ProcId>``.

``query`` asks ``condor_q`` about jobs in the queue, then ``condor_history`` about those
that left it, and classifies them like the Slurm backend does.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from gridsearch import render, sites
from gridsearch.backends.base import JobRef, SchedulerState, Submission
from gridsearch.errors import GridsearchError

EXIT_INTERRUPTED = 75
SUBMIT_FILE = "job.sub"
SCRIPT_FILE = "job.sh"
_ATTRS = (
    "ClusterId,ProcId,JobStatus,ExitCode,ExitBySignal,ExitSignal,HoldReason,HoldReasonCode,"
    "RemoveReason,NumJobStarts,LastHoldReason"
)
_TIMEOUT_S = 60


def _run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    exe = shutil.which(cmd[0])
    if exe is None:
        raise FileNotFoundError(cmd[0])
    return subprocess.run(
        [exe, *cmd[1:]], cwd=cwd, capture_output=True, text=True, timeout=_TIMEOUT_S, check=False
    )


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


def _is(value: Any, expected: Any) -> bool:
    return value is not None and str(value).lower() == str(expected).lower()


def classify(ad: dict[str, Any], max_restarts: int | None = None) -> tuple[str, str, int | None]:
    """Map a job ClassAd (from condor_q or condor_history) to ``(state, reason, exit code)``."""
    status = ad.get("JobStatus")
    code = ad.get("ExitCode")
    code = int(code) if isinstance(code, int | float) and not isinstance(code, bool) else None
    hold = str(ad.get("HoldReason") or ad.get("LastHoldReason") or "")
    removed = str(ad.get("RemoveReason") or "")
    starts = int(ad.get("NumJobStarts") or 0)
    if status == 1:
        return "queued", "idle" + (f", started {starts} time(s) before" if starts else ""), None
    if status in (2, 6):
        return "running", "", None
    if status == 7:
        return "running", "suspended", None
    if status == 5:
        return _reason_state(hold, "held: " + hold if hold else "held", code)
    if status == 3:
        if removed and "periodic" in removed.lower():
            return _reason_state(removed, removed, code)
        return "cancelled", f"removed ({removed})" if removed else "removed", code
    if status == 4:
        if _is(ad.get("ExitBySignal"), True):
            sig = ad.get("ExitSignal")
            if sig == 9 and starts:
                return "failed", f"killed by signal {sig} (out of memory?)", None
            return "failed", f"killed by signal {sig}", None
        if code == 0:
            return "done", "", 0
        if code == EXIT_INTERRUPTED:
            return (
                "failed",
                f"exit 75: interrupted after {starts} start(s), checkpoint written; "
                "resubmit to resume",
                code,
            )
        return "failed", f"exit {code}", code
    return "unknown", f"JobStatus {status!r}", code


def _reason_state(text: str, reason: str, code: int | None) -> tuple[str, str, int | None]:
    low = text.lower()
    if "memory" in low:
        return "oom", reason, code
    if "wall" in low or "runtime" in low or "time limit" in low or "maxruntime" in low:
        return "timeout", reason, code
    if "node" in low or "shadow" in low or "starter" in low:
        return "node_fail", reason, code
    return "failed", reason, code


class CondorBackend:
    """Submission with ``condor_submit``; status with condor_q -> condor_history."""

    kind = "condor"

    def submit(
        self,
        jobs: list[JobRef],
        profile: dict[str, Any],
        directory: Path,
        dry_run: bool = False,
        overrides: dict[str, Any] | None = None,
    ) -> Submission:
        """Render ``job.sh``, ``job.sub`` and ``jobs.txt`` into ``directory``, check the
        submit description with HTCondor's parser, and unless ``dry_run`` submit it.
        """
        profile = dict(profile)
        profile.setdefault("kind", self.kind)
        request, environment = sites.check_submission(profile, overrides, len(jobs))
        directory = Path(directory).absolute()
        for job in jobs:
            render.condor_value(render.check_job_dir(Path(job.dir)))
        indices = render.task_indices(jobs)
        context = render.script_context(profile, request, environment, directory)
        script = directory / SCRIPT_FILE
        list_path = directory / render.LIST_FILE
        # The list file is named relative to the submission dir, where condor_submit runs:
        # `queue ... from PATH` would read a '|' in PATH as a command to run.
        context.update(script=str(script), list_file=list_path.name, n_jobs=len(jobs))
        script_text = render.render(profile.get("script_template", "condor.sh.j2"), context)
        submit_text = render.render(profile.get("template", "condor.sub.j2"), context)

        directory.mkdir(parents=True, exist_ok=True)
        render.write_list(directory, [(i, Path(j.dir)) for i, j in zip(indices, jobs)])
        script.write_text(script_text, encoding="utf-8")
        script.chmod(0o755)
        submit_file = directory / SUBMIT_FILE
        submit_file.write_text(submit_text, encoding="utf-8")

        planned = [{"index": str(i), "jobdir": str(j.dir)} for i, j in zip(indices, jobs)]
        items = parse_submit(submit_text, directory)
        if items is not None and items != planned:
            raise GridsearchError(
                message=f"{submit_file} yields {len(items)} jobs to HTCondor's parser, not the "
                f"{len(planned)} planned ones; please report this"
            )
        command = ["condor_submit", SUBMIT_FILE]  # run in the submission directory
        submission = Submission(
            kind=self.kind,
            directory=directory,
            files=[submit_file, script, list_path],
            command=command,
            dry_run=dry_run,
        )
        if dry_run:
            return submission
        try:
            proc = _run(command, cwd=directory)
        except FileNotFoundError:
            raise GridsearchError(
                message="condor_submit not found on PATH: submit from a machine of the pool (e.g. "
                "lxplus), or use --dry-run to only render the files"
            ) from None
        if proc.returncode != 0:
            raise GridsearchError(
                message=f"condor_submit refused {submit_file}: "
                f"{(proc.stderr or proc.stdout).strip()}"
            )
        m = re.search(r"(\d+) job\(s\) submitted to cluster (\d+)", proc.stdout)
        if not m:
            raise GridsearchError(
                message=f"condor_submit printed no cluster id: {proc.stdout.strip()!r}"
            )
        count, cluster = int(m.group(1)), m.group(2)
        if count != len(jobs):
            raise GridsearchError(
                message=f"condor_submit queued {count} jobs in cluster {cluster}, not {len(jobs)}: "
                f"check it with condor_q {cluster}"
            )
        submission.scheduler_ids.append(cluster)
        for proc_id, job in enumerate(jobs):
            submission.tasks[f"{cluster}.{proc_id}"] = job.id
        return submission

    def query(self, task_ids: list[str]) -> dict[str, SchedulerState]:
        """The pool's word on each ``ClusterId.ProcId``: condor_q, then condor_history."""
        wanted = [str(t) for t in task_ids]
        found: dict[str, SchedulerState] = {}
        for tool in ("condor_q", "condor_history"):
            missing = [t for t in wanted if t not in found]
            if not missing:
                break
            clusters = sorted({t.split(".")[0] for t in missing if t.split(".")[0].isdigit()})
            if not clusters:
                break
            constraint = " || ".join(f"ClusterId == {c}" for c in clusters)
            try:
                proc = _run([tool, "-json", "-attributes", _ATTRS, "-constraint", constraint])
            except (FileNotFoundError, subprocess.TimeoutExpired):
                continue
            if proc.returncode != 0:
                continue
            try:
                ads = json.loads(proc.stdout) if proc.stdout.strip() else []
            except ValueError:
                continue
            for ad in ads if isinstance(ads, list) else []:
                task = f"{ad.get('ClusterId')}.{ad.get('ProcId')}"
                if task in missing and task not in found:
                    state, reason, code = classify(ad)
                    found[task] = SchedulerState(task, state, reason, code)
        for t in wanted:
            found.setdefault(t, SchedulerState(t, "unknown", "not known to HTCondor"))
        return found
