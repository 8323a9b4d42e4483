"""Rendering of job scripts and submit descriptions from the jinja2 templates.

Templates live in the ``jobs_templates`` package: ``base.sh.j2`` is the one job script
(cd into the job dir, set up the environment, run ``python -m hepae_core.job``, forward
signals); ``slurm.sh.j2`` and ``condor.sh.j2`` extend it through blocks, and
``condor.sub.j2`` is the HTCondor submit description. Undefined variables are errors
(``StrictUndefined``), and values reach a script only through the filters below:

``q``
    quotes a value for the shell (``shlex.quote``): any string, including quotes, ``$()``,
    backticks and newlines, becomes one inert word.
``condor``
    a value for a submit description line: refused when HTCondor would read it as
    something else (newlines, ``$(`` macros, surrounding spaces).
``oneline``
    a value for a comment line: refused when it holds a line break.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from gridsearch.errors import GridsearchError

LIST_FILE = "jobs.txt"


def shell_quote(value: Any) -> str:
    """``value`` as one shell word (``shlex.quote`` of its text)."""
    if value is None or isinstance(value, bool | dict | list | tuple):
        raise GridsearchError(message=f"cannot render {value!r} into a shell script")
    return shlex.quote(str(value))


def condor_value(value: Any) -> str:
    """``value`` for the right-hand side of a submit description line, checked."""
    text = str(value)
    if "\n" in text or "\r" in text or "$(" in text or "$$(" in text or text != text.strip():
        raise GridsearchError(
            message=f"{text!r} cannot be written into an HTCondor submit description (line breaks, "
            "'$(' and surrounding spaces would change its meaning): move the campaign to a "
            "plainer path"
        )
    return text


def one_line(value: Any) -> str:
    """``value`` for a comment line: must not break the line."""
    text = str(value)
    if "\n" in text or "\r" in text:
        raise GridsearchError(message=f"{text!r} holds a line break and cannot be rendered")
    return text


def _load(name: str) -> str:
    entry = resources.files("jobs_templates").joinpath(name)
    if not entry.is_file():
        known = ", ".join(sorted(templates()))
        raise jinja2.TemplateNotFound(f"{name} (templates: {known})")
    return entry.read_text(encoding="utf-8")


def templates() -> list[str]:
    """Names of the packaged templates."""
    return sorted(
        e.name for e in resources.files("jobs_templates").iterdir() if e.name.endswith(".j2")
    )


def environment() -> jinja2.Environment:
    """The jinja2 environment: packaged templates, StrictUndefined, the quoting filters."""
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(_load),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["q"] = shell_quote
    env.filters["condor"] = condor_value
    env.filters["oneline"] = one_line
    return env


def render(template: str, context: dict[str, Any]) -> str:
    """Render the packaged template ``template`` with ``context``.

    Raises
    ------
    GridsearchError
        When the template is unknown or uses a value the context lacks.
    """
    try:
        text = environment().get_template(template).render(**context)
    except jinja2.TemplateNotFound as exc:
        raise GridsearchError(message=f"no such template: {exc}", key="template") from None
    except jinja2.UndefinedError as exc:
        raise GridsearchError(message=f"template {template} needs a value: {exc}") from None
    # Blank lines left where optional directives were skipped.
    return re.sub(r"\n{3,}", "\n\n", text)


def job_name(directory: Path) -> str:
    """A scheduler job name from the submission directory's name (plain characters only)."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(directory).name)[:60]
    return f"hepae-{name}" if name else "hepae"


def check_job_dir(path: Path) -> Path:
    """An absolute job directory that can stand on one line of the list file."""
    path = Path(path)
    text = str(path)
    if not path.is_absolute():
        raise GridsearchError(message=f"job directory {text!r} must be absolute")
    if "\n" in text or "\r" in text or text != text.strip():
        raise GridsearchError(
            message=f"job directory {text!r} holds a line break or surrounding spaces, "
            "which a list "
            "file cannot carry: move the campaign to a plainer path"
        )
    return path


def write_list(directory: Path, entries: Iterable[tuple[int, Path]]) -> Path:
    """Write ``jobs.txt``: one ``INDEX DIR`` line per job, the task index -> job dir map."""
    lines = [f"{int(index)} {check_job_dir(path)}\n" for index, path in entries]
    target = Path(directory) / LIST_FILE
    target.write_text("".join(lines), encoding="utf-8")
    return target


def read_list(path: Path) -> dict[int, str]:
    """The task index -> job dir map of a list file."""
    out: dict[int, str] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line:
            index, _, job_dir = line.partition(" ")
            out[int(index)] = job_dir
    return out


def task_indices(jobs: list[Any]) -> list[int]:
    """A stable task index per job: its index in the campaign's manifest.json when every
    job is listed there (so a retry of jobs 3, 7 and 12 is the array ``3,7,12``), else its
    position in ``jobs``.
    """
    import json

    if not jobs:
        return []
    manifest = Path(jobs[0].dir).parent.parent / "manifest.json"
    try:
        listed = json.loads(manifest.read_text(encoding="utf-8"))["jobs"]
        by_id = {str(j["id"]): int(j["index"]) for j in listed}
    except (OSError, ValueError, KeyError, TypeError):
        by_id = {}
    same_campaign = all(Path(j.dir).parent.parent == manifest.parent for j in jobs)
    indices = [by_id.get(j.id) for j in jobs]
    if same_campaign and None not in indices and len(set(indices)) == len(indices):
        return [int(i) for i in indices]  # type: ignore[arg-type]
    return list(range(len(jobs)))


def compact_ranges(indices: Iterable[int]) -> str:
    """``0-4,7,9-11`` for the sorted unique ``indices`` (Slurm's --array syntax)."""
    values = sorted(set(indices))
    parts: list[str] = []
    start = prev = None
    for v in values:
        if start is None:
            start = prev = v
        elif v == prev + 1:  # type: ignore[operator]
            prev = v
        else:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = prev = v
    if start is not None:
        parts.append(str(start) if start == prev else f"{start}-{prev}")
    return ",".join(parts)


def script_context(
    profile: dict[str, Any], request: dict[str, Any], environment: dict[str, Any], directory: Path
) -> dict[str, Any]:
    """The values every job script template needs."""
    return {
        "site": profile.get("name", "?"),
        "kind": profile.get("kind", "?"),
        "submit_dir": str(directory),
        "request": request,
        "python": environment["python"],
        "module": environment["module"],
        "env": environment["env"],
        "gpu_request": profile.get("gpu_request", "gres"),
        "job_name": job_name(directory),
    }
