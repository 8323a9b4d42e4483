"""Run a campaign's jobs on this machine through submitit's LocalExecutor.

Each job runs as ``python -m hepae_core.job DIR`` in a process of its own (inside a
submitit task), at most ``workers`` at a time, each with ``threads`` CPU threads, so that
``workers x threads`` never exceeds this machine's cores. ``submit`` shows a progress bar
and returns when every job has ended (this backend is ``blocking``).

Ctrl-C (or SIGTERM) asks the running jobs to checkpoint (SIGTERM: they exit 75,
``interrupted``), waits for them a little, and raises :class:`Interrupted`, which carries
the :class:`~gridsearch.backends.base.Submission` of what had started.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gridsearch import bundles, render
from gridsearch.backends.base import (
    Backend,
    Chunk,
    JobRef,
    Order,
    Prepared,
    SchedulerState,
    Submission,
    jobs_list,
    task_value,
)
from gridsearch.campaign import MANIFEST
from gridsearch.errors import GridsearchError
from gridsearch.units import parse_memory, parse_walltime
from hepae_core import contract
from hepae_core.contract import SCHEDULER_ID_ENV, THREAD_ENVS, JobState, TaskState, exit_outcome

JOB_MODULE = "hepae_core.job"  # what runs a job dir; profiles may name another (tests do)
DEFAULT_TIMEOUT_MIN = 60 * 24 * 30  # no limit unless --time is given: 30 days
_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)


def cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def resources(profile: dict[str, Any], overrides: dict[str, Any] | None) -> dict[str, Any]:
    """Workers, threads per job and time limit, with workers x threads <= cores."""
    opts = dict(profile.get("options") or {})
    over = {k: v for k, v in (overrides or {}).items() if v is not None}
    n = cores()
    workers = over.get("workers", opts.get("workers"))
    threads = over.get("threads")
    for name, value in (("workers", workers), ("threads", threads)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise GridsearchError(message=f"must be a positive integer, got {value!r}", key=name)
    notes = []
    if workers is not None and workers > n:
        notes.append(f"{workers} workers asked, this machine has {n} cores: using {n}")
        workers = n
    if threads is None:
        threads = max(1, n // workers) if workers else int(opts.get("threads") or 1)
    threads = min(threads, n)
    if workers is None:
        workers = max(1, n // threads)
    if workers * threads > n:
        threads = max(1, n // workers)
    time_min = over.get("time", opts.get("time"))
    timeout = (
        parse_walltime(time_min, "--time") / 60 if time_min is not None else DEFAULT_TIMEOUT_MIN
    )
    if over.get("mem") is not None:
        parse_memory(over["mem"], "--mem")  # refused when it is no memory size, as elsewhere
        notes.append("--mem is not enforced for local runs")
    return {"workers": workers, "threads": threads, "timeout_min": timeout, "notes": notes}


def _import_roots() -> list[str]:
    """Directories holding hepae_core and gridsearch, when they are not installed."""
    import site

    installed = {os.path.realpath(p) for p in site.getsitepackages()}
    roots = []
    for name in ("hepae_core", "gridsearch"):
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin:
            continue
        root = os.path.realpath(Path(spec.origin).parent.parent)
        if root not in installed and root not in roots:
            roots.append(root)
    return roots


@contextlib.contextmanager
def _pythonpath(roots: list[str]) -> Iterator[None]:
    """Put ``roots`` on PYTHONPATH for the processes started meanwhile."""
    old = os.environ.get("PYTHONPATH")
    parts = roots + ([old] if old else [])
    if roots:
        os.environ["PYTHONPATH"] = os.pathsep.join(parts)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


def run_job(
    job_dir: str | list[str],
    threads: int,
    task_id: str,
    python: str,
    cuda: str | None,
    module: str,
    task_log: str | None = None,
) -> int:
    """Run one job, or a bundle of them (``job_dir`` a list, ``module`` the bundle's), in a
    child process (the body of a submitit task); return its exit code.

    A bundle writes to ``task_log``; each member's lines are then appended to its job.log.
    The child runs in a session of its own, so a Ctrl-C at the terminal reaches it only as
    the SIGTERM this function forwards (the job then checkpoints and exits 75).
    """
    bundle = job_dir if isinstance(job_dir, list) else None
    if bundle is not None:
        start = _announce_bundle(bundle, task_id, str(task_log))
    env = dict(os.environ)
    for var in THREAD_ENVS:
        env[var] = str(threads)
    env[SCHEDULER_ID_ENV] = task_id
    if cuda is None:
        env.pop("CUDA_VISIBLE_DEVICES", None)
    else:
        env["CUDA_VISIBLE_DEVICES"] = cuda
    child: list[subprocess.Popen] = []

    def forward(signum: int, frame: Any) -> None:
        for proc in child:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)

    for sig in _SIGNALS:
        signal.signal(sig, forward)
    log_path = str(task_log) if bundle is not None else os.path.join(str(job_dir), contract.LOG)
    with open(log_path, "ab") as log:
        log.write(f"=== gridsearch local task {task_id}: {time.ctime()} ===\n".encode())
        log.flush()
        child.append(
            subprocess.Popen(
                [python, "-m", module, *(bundle if bundle is not None else [str(job_dir)])],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=os.path.dirname(log_path),
                env=env,
                start_new_session=True,
            )
        )
        code = child[0].wait()
    if bundle is not None:
        copy_member_lines(log_path, start, bundle)
    return code


def _announce_bundle(job_dirs: list[str], task_id: str, task_log: str) -> int:
    """Say in each member's job.log where the bundle's output goes; return the task log's
    size (where this run's lines start)."""
    stamp = time.ctime()
    for d in job_dirs:
        with open(os.path.join(d, contract.LOG), "a", encoding="utf-8") as log:
            log.write(
                f"=== gridsearch local task {task_id}: {stamp}: bundle of {len(job_dirs)} jobs, "
                f"output in {task_log} ===\n"
            )
    os.makedirs(os.path.dirname(task_log), exist_ok=True)
    return os.path.getsize(task_log) if os.path.exists(task_log) else 0


def copy_member_lines(task_log: str, start: int, job_dirs: list[str]) -> None:
    """Append each member's lines of a bundle's log (from byte ``start``) to its job.log."""
    try:
        with open(task_log, "rb") as f:
            f.seek(start)
            lines = f.read().decode("utf-8", "replace").splitlines(keepends=True)
    except OSError:
        return
    for d in job_dirs:
        name = os.path.basename(os.path.normpath(d))
        mine = [ln for ln in lines if ln.startswith((f"[{name}] ", f"bundle: {name}: "))]
        with open(os.path.join(d, contract.LOG), "a", encoding="utf-8") as log:
            log.writelines(mine)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a local run; ``submission`` says what had started."""

    def __init__(self, submission: Submission) -> None:
        super().__init__("interrupted")
        self.submission = submission


class LocalBackend(Backend):
    """This machine; see the module docstring."""

    kind = "local"
    blocking = True
    submit_tool = "python"

    def query(self, task_ids: list[str]) -> dict[str, SchedulerState]:
        """A local run has ended when its ledger record exists: nothing is in flight."""
        return {t: SchedulerState(t, TaskState.UNKNOWN) for t in task_ids}

    def _prepare(self, order: Order) -> Prepared:
        """Workers, threads and time limit, checked; ``local.json`` says what will run."""
        jobs, profile, directory = order.jobs, order.profile, order.directory
        if not jobs:
            raise GridsearchError(message="nothing to submit: no jobs given")
        overrides = dict(order.overrides)
        wanted = overrides.pop("bundle", None)
        res = resources(profile, overrides)
        opts = profile.get("options") or {}
        res["module"] = str(opts.get("job_module") or JOB_MODULE)
        res["python"] = sys.executable
        res["site"] = str(profile.get("name") or self.kind)
        k = bundles.choose_size(
            wanted, res["threads"], 0, len(jobs), opts.get("bundle", profile.get("bundle"))
        )
        notes = list(res.pop("notes"))
        if k > 1:
            pairs = bundles.make_bundles(jobs, k)
            res["bundle"] = k
            res["module"] = str(opts.get("bundle_module") or bundles.BUNDLE_MODULE)
            if res["timeout_min"] != DEFAULT_TIMEOUT_MIN:
                res["timeout_min"] *= k  # the time is per job; members run one after another
            notes.append(
                f"bundles of {k}: {len(jobs)} jobs in {pairs[-1][0] + 1} tasks, "
                f"{res['workers']} at a time with {res['threads']} thread(s) each"
            )
            listed_pairs = pairs
        else:
            pairs = list(enumerate(jobs))
            listed_pairs = list(zip(render.task_indices(jobs), jobs))
        chunk = Chunk("local.json", pairs, bundled=k > 1)
        tasks = self._task_ids(directory.name, chunk)
        text = json.dumps(
            {
                "workers": res["workers"],
                "threads": res["threads"],
                "timeout_min": res["timeout_min"],
                "cores": cores(),
                "bundle": k,
                "command": [res["python"], "-m", res["module"], "DIR" if k == 1 else "DIR..."],
                "jobs": {
                    t: [str(r.dir) for r in refs] if k > 1 else str(refs[0].dir)
                    for t, refs in zip(tasks, chunk.tasks().values())
                },
            },
            indent=1,
        )
        listed = jobs_list(listed_pairs)
        files = {"local.json": (text + "\n", 0o644), render.LIST_FILE: (listed, 0o644)}
        return Prepared(directory, files, [chunk], [], res, {}, notes)

    def _display_command(self, prepared: Prepared) -> list[str]:
        return [prepared.request["python"], "-m", prepared.request["module"], "DIR"]

    def _task_ids(self, job_id: str, chunk: Chunk) -> dict[str, str | list[str]]:
        return {
            f"{job_id}_{i}": task_value(refs, chunk.bundled) for i, refs in chunk.tasks().items()
        }

    def _execute(self, prepared: Prepared, sub: Submission) -> None:
        """Run the jobs here, ``workers`` at a time; return when all have ended."""
        for note in prepared.notes:
            print(f"note: {note}", file=sys.stderr)
        tasks = list(prepared.chunks[0].tasks().values())
        sub.scheduler_ids = [prepared.directory.name]
        sub.tasks = self._task_ids(prepared.directory.name, prepared.chunks[0])
        res = prepared.request
        stage = _stage_of(prepared.directory, [r for t in tasks for r in t])
        res["stage"] = stage
        # Said before the jobs run (they may take hours), not once they have ended.
        n = sum(len(t) for t in tasks)
        print(
            f"{f'stage {stage!r}: ' if stage else ''}submitted {n} jobs to {res.get('site')} "
            f"(local) as {prepared.directory.name}; files in {prepared.directory}",
            flush=True,
        )
        print(
            f"running them here, {res['workers']} at a time with {res['threads']} thread(s) "
            "each; this command returns when all have ended",
            flush=True,
        )
        self._run(tasks, res, prepared.directory, res["python"], sub)

    def _run(
        self,
        tasks: list[list[JobRef]],
        res: dict[str, Any],
        directory: Path,
        python: str,
        sub: Submission,
    ) -> Submission:
        """Run ``tasks`` (each one job, or a bundle when ``res['bundle']`` > 1)."""
        import submitit
        from tqdm import tqdm

        executor = submitit.LocalExecutor(folder=directory / "submitit")
        signal_delay = int(min(120, max(10, res["timeout_min"] * 6)))  # a tenth, 10 s..2 min
        executor.update_parameters(timeout_min=res["timeout_min"], signal_delay_s=signal_delay)
        cuda = os.environ.get("CUDA_VISIBLE_DEVICES")
        bundled = int(res.get("bundle") or 1) > 1
        n_jobs = sum(len(t) for t in tasks)
        pending = list(enumerate(tasks))
        pending.reverse()
        running: dict[str, tuple[Any, list[JobRef]]] = {}
        started: dict[str, str | list[str]] = {}
        tally = {"done": 0, "failed": 0, "interrupted": 0}
        old_term = signal.getsignal(signal.SIGTERM)

        def on_term(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt

        stage = res.get("stage")
        where = f"stage {stage}" if stage else "local"
        bar = tqdm(
            total=n_jobs,
            unit="job",
            desc=f"{where} {res['workers']}x{res['threads']} threads",
            file=sys.stderr,
            dynamic_ncols=True,
            disable=None,  # a bar on a terminal; one line per finished job otherwise
        )
        try:
            signal.signal(signal.SIGTERM, on_term)
            with _pythonpath(_import_roots()):
                while pending or running:
                    while pending and len(running) < res["workers"]:
                        i, refs = pending.pop()
                        task_id = f"{directory.name}_{i}"
                        # the controller inherits an ignored SIGINT, so a Ctrl-C at the
                        # terminal reaches the jobs only through our SIGTERM (no tracebacks)
                        old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
                        try:
                            job = executor.submit(
                                run_job,
                                [str(r.dir) for r in refs] if bundled else str(refs[0].dir),
                                res["threads"],
                                task_id,
                                python,
                                cuda,
                                res["module"],
                                str(directory / "logs" / f"bundle-{i}.log") if bundled else None,
                            )
                        finally:
                            signal.signal(signal.SIGINT, old_int)
                        running[task_id] = (job, refs)
                        started[task_id] = task_value(refs, bundled)
                    _collect(running, bundled, tally, bar, stage, n_jobs)
                    time.sleep(0.1)
        except KeyboardInterrupt:
            bar.close()
            _stop(running)
            sub.tasks = started
            raise Interrupted(sub) from None
        finally:
            signal.signal(signal.SIGTERM, old_term)
            bar.close()
        return sub


def _stop(running: dict[str, tuple[Any, list[JobRef]]]) -> None:
    """Ask the running jobs to checkpoint (SIGTERM through submitit's controllers, which
    forward it), wait for their state, then for the controllers."""
    controllers = [getattr(job, "_process", None) for job, _ in running.values()]
    for proc in controllers:
        if proc is not None:  # submitit's controller forwards SIGTERM to the job
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
    _wait_checkpoints([r for _, refs in running.values() for r in refs])
    for proc in controllers:
        if proc is not None:
            with contextlib.suppress(Exception):
                proc.wait(timeout=5)


def _collect(
    running: dict[str, tuple[Any, list[JobRef]]],
    bundled: bool,
    tally: dict[str, int],
    bar: Any,
    stage: str | None,
    n_jobs: int,
) -> None:
    """Take the ended tasks out of ``running``; count and show what became of their jobs
    (a bar on a terminal, one line per job otherwise)."""
    for task_id, (job, refs_done) in list(running.items()):
        if not job.done():
            continue
        del running[task_id]
        try:
            code = job.result()
        except Exception:  # the task itself failed (see submitit logs)
            code = -1
        for ref_done, outcome in _outcomes(refs_done, code, bundled):
            tally[outcome.split(" ")[0]] += 1
            bar.set_postfix(tally, refresh=False)
            bar.update(1)
            if bar.disable:
                n = sum(tally.values())
                tag = f"{stage} " if stage else ""
                print(
                    f"[{tag}{n}/{n_jobs}] {ref_done.id} {outcome} (exit {code})",
                    file=sys.stderr,
                    flush=True,
                )


def _stage_of(directory: Path, refs: list[JobRef]) -> str | None:
    """The stage these jobs belong to (one stage per submission), from the campaign's
    manifest two levels above the submission directory; None for an unstaged campaign."""
    try:
        manifest = json.loads((directory.parent.parent / MANIFEST).read_text("utf-8"))
        stages = {j.get("id"): j.get("stage") for j in manifest.get("jobs") or []}
    except (OSError, ValueError, AttributeError):
        return None
    found = {stages.get(r.id) for r in refs}
    return str(found.pop()) if len(found) == 1 and None not in found else None


def _outcomes(refs: list[JobRef], code: int, bundled: bool) -> list[tuple[JobRef, str]]:
    """What became of each job of a task that exited with ``code``: a single job by its
    exit code, a bundle's members by their state.json (the bundle's code sums them up)."""
    if not bundled:
        return [(refs[0], exit_outcome(code))]
    from hepae_core.jobdir import read_state

    out = []
    for ref in refs:
        state = str((read_state(ref.dir) or {}).get("state") or JobState.FAILED.word)
        kept = (JobState.DONE.word, JobState.INTERRUPTED.word)
        out.append((ref, state if state in kept else JobState.FAILED.word))
    return out


def _wait_checkpoints(refs: list[JobRef], limit_s: float = 60.0) -> None:
    """Wait until interrupted jobs have written their state (they checkpoint on SIGTERM)."""
    from gridsearch.status import pid_alive
    from hepae_core.jobdir import read_state

    if refs:
        print(
            f"waiting up to {limit_s:.0f} s for {len(refs)} running job(s) to checkpoint...",
            file=sys.stderr,
        )
    deadline = time.monotonic() + limit_s
    while refs and time.monotonic() < deadline:
        left = []
        for ref in refs:
            st = read_state(ref.dir) or {}
            if st.get("state") == JobState.RUNNING.word and pid_alive(st.get("pid")):
                left.append(ref)
        refs = left
        time.sleep(0.2)
