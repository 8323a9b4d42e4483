"""Rendering of job scripts and submit descriptions from the jinja2 templates.

Templates are looked up first in the user's site directories (``--sites-dir``,
``$GRIDSEARCH_SITES``, ``~/.config/gridsearch/sites``), then in the ``jobs_templates``
package (a jinja ``ChoiceLoader``, as signac-flow does), so a site quirk is a small
template that ``{% extends "slurm.sh.j2" %}`` and overrides one block. ``base.sh.j2`` is
the one job script (cd into the job dir, set up and check the environment, run ``python -m
hepae_core.job``, forward signals); ``slurm.sh.j2`` and ``condor.sh.j2`` extend it through
blocks, and ``condor.sub.j2`` is the HTCondor submit description. The contract
(:mod:`hepae_core.contract`) reaches every template: the exit codes as ``exit_codes``, the
job-dir file names as ``files`` (``files.state``, ``files.log``, ``files.lock``) and the
environment variable names as ``env_names``, so no template spells a code, a job-dir file
or a variable name of its own (:func:`contract_context`; these are plain words).
Undefined variables are errors (``StrictUndefined``), and values reach a script only
through the filters below:

``q``
    quotes a value for the shell (``shlex.quote``): any string, including quotes, ``$()``,
    backticks and newlines, becomes one inert word.
``condor``
    a value for a submit description line: refused when HTCondor would read it as
    something else (newlines, any macro form: ``$`` followed by a letter, ``(`` or ``$``
    such as ``$(X)``, ``$$(X)``, ``$ENV(X)``, ``$RANDOM_CHOICE(...)``; surrounding spaces).
``oneline``
    a value for a comment line: refused when it holds a line break.

Templates, the user's included, are rendered in jinja's immutable sandbox
(:class:`~jinja2.sandbox.ImmutableSandboxedEnvironment`): a template may extend others,
fill blocks, loop and use the filters above, but it cannot reach Python
(``cycler.__init__.__globals__`` and other private attributes are refused) or change the
values it was given (``request.update(...)``), so a site directory shared with others
cannot run code at ``submit --dry-run``. Template names are plain file names
(``slurm.sh.j2``), looked up in the template directories only: no path, no ``..``.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import jinja2.sandbox

from gridsearch.errors import GridsearchError
from hepae_core.contract import ENV_NAMES, EXIT_CODES, JOB_FILES

LIST_FILE = "jobs.txt"


def shell_quote(value: Any) -> str:
    """``value`` as one shell word (``shlex.quote`` of its text)."""
    if value is None or isinstance(value, bool | dict | list | tuple):
        raise GridsearchError(message=f"cannot render {value!r} into a shell script")
    return shlex.quote(str(value))


#: What HTCondor expands in a submit description: ``$(X)``, ``$$(X)``, ``$ENV(X)``,
#: ``$RANDOM_CHOICE(...)``, ``$F(X)``... any ``$`` followed by a letter, ``(`` or ``$``.
CONDOR_MACRO = re.compile(r"\$[A-Za-z($]")


def condor_value(value: Any) -> str:
    """``value`` for the right-hand side of a submit description line, checked."""
    text = str(value)
    if "\n" in text or "\r" in text or CONDOR_MACRO.search(text) or text != text.strip():
        raise GridsearchError(
            message=f"{text!r} cannot be written into an HTCondor submit description (line breaks, "
            "macros such as '$(X)', '$$(X)' or '$ENV(X)', and surrounding spaces would change "
            "its meaning): move the campaign to a plainer path"
        )
    return text


def one_line(value: Any) -> str:
    """``value`` for a comment line: must not break the line."""
    text = str(value)
    if "\n" in text or "\r" in text:
        raise GridsearchError(message=f"{text!r} holds a line break and cannot be rendered")
    return text


#: A template name: one plain file name, looked up in the template directories only.
TEMPLATE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")


def check_template_name(name: Any, key: str = "template", source: str | None = None) -> str:
    """``name`` when it is a plain template file name (no directory, no ``..``), else raise.

    A name is looked up in the user's site directories and the packaged templates only, so
    ``template: /etc/passwd`` or ``../../x`` cannot render a file from elsewhere.
    """
    if not isinstance(name, str) or not TEMPLATE_NAME.match(name) or ".." in name:
        raise GridsearchError(
            message=f"{name!r} is not a template file name: give a plain name such as "
            "'slurm.sh.j2', found in the site directories or among the packaged templates "
            "(no directories, no '..')",
            source=source,
            key=key,
        )
    return name


def _load(name: str) -> str | None:
    if not TEMPLATE_NAME.match(name) or ".." in name:
        return None  # never outside the package (joinpath('/etc/passwd') is /etc/passwd)
    entry = resources.files("jobs_templates").joinpath(name)
    if not entry.is_file():
        return None
    return entry.read_text(encoding="utf-8")


def templates(search: list[Path] | None = None) -> list[str]:
    """Names of the templates: the user's (in ``search``) and the packaged ones."""
    names = {e.name for e in resources.files("jobs_templates").iterdir() if e.name.endswith(".j2")}
    for d in search or []:
        if Path(d).is_dir():
            names.update(p.name for p in Path(d).glob("*.j2"))
    return sorted(names)


def environment(search: list[Path] | None = None) -> jinja2.Environment:
    """The jinja2 environment: the user's template directories ``search`` first, then the
    packaged templates; StrictUndefined; the quoting filters.
    """
    loaders: list[jinja2.BaseLoader] = [
        jinja2.FileSystemLoader([str(d) for d in search or [] if Path(d).is_dir()]),
        jinja2.FunctionLoader(_load),
    ]
    # Sandboxed: a template cannot call into Python (see the module docstring).
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(
        loader=jinja2.ChoiceLoader(loaders),
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


def render(template: str, context: dict[str, Any], search: list[Path] | None = None) -> str:
    """Render ``template`` (looked up in ``search``, then among the packaged ones).

    Raises
    ------
    GridsearchError
        When the template is unknown or uses a value the context lacks.
    """
    check_template_name(template)
    try:
        text = environment(search).get_template(template).render(**context)
    except jinja2.TemplateNotFound as exc:
        known = ", ".join(templates(search))
        raise GridsearchError(
            message=f"no such template: {exc} (known: {known})", key="template"
        ) from None
    except jinja2.TemplateSyntaxError as exc:
        raise GridsearchError(
            message=f"template error at line {exc.lineno}: {exc.message}",
            source=exc.filename or template,
        ) from None
    except jinja2.UndefinedError as exc:
        raise GridsearchError(message=f"template {template} needs a value: {exc}") from None
    except jinja2.sandbox.SecurityError as exc:
        raise GridsearchError(
            message=f"template {template} reaches outside what templates may use ({exc}); "
            "templates may extend others, fill blocks and use the values and filters given",
            key="template",
        ) from None
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


def list_text(entries: Iterable[tuple[int, Path]]) -> str:
    """The text of ``jobs.txt``: one ``INDEX DIR`` line per job dir.

    A bundle (one task running several job dirs, ``--bundle K``) is several lines with the
    same INDEX, in the order the bundle runs them. Without bundles every index has one
    line and the job script runs the first line of its index.
    """
    return "".join(f"{int(index)} {check_job_dir(path)}\n" for index, path in entries)


def write_list(directory: Path, entries: Iterable[tuple[int, Path]]) -> Path:
    """Write ``jobs.txt`` (see :func:`list_text`) atomically."""
    from hepae_core.jobdir import atomic_write_text

    target = Path(directory) / LIST_FILE
    atomic_write_text(target, list_text(entries))
    return target


def read_list_all(path: Path) -> dict[int, list[str]]:
    """The task index -> job dirs map of a list file (several dirs: a bundle)."""
    out: dict[int, list[str]] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line:
            index, _, job_dir = line.partition(" ")
            out.setdefault(int(index), []).append(job_dir)
    return out


def read_list(path: Path) -> dict[int, str]:
    """The task index -> job dir map of a list file (the first dir of each index)."""
    return {i: dirs[0] for i, dirs in read_list_all(path).items()}


def task_indices(jobs: list[Any]) -> list[int]:
    """A stable task index per job: its campaign index (``job.index``, from the campaign's
    manifest through :class:`gridsearch.campaign.Campaign`) when every job has a distinct
    one (so a retry of jobs 3, 7 and 12 is the array ``3,7,12``), else its position.
    """
    indices = [getattr(j, "index", None) for j in jobs]
    if None not in indices and len(set(indices)) == len(indices):
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


def import_check_code(module: str) -> str:
    """Python code that fails, saying why, when the node cannot run ``module``.

    For ``package.module`` (``hepae_core.job``) it imports the package, which catches a
    missing or broken installation; a top-level module is only looked up, since
    importing it would run it.
    """
    top = module.split(".")[0]
    if "." in module:
        return f"import {top}"
    return (
        f"import importlib.util, sys; "
        f"sys.exit(importlib.util.find_spec({top!r}) is None and \"No module named '{top}'\")"
    )


def contract_context() -> dict[str, Any]:
    """The contract's facts every template receives: ``exit_codes``, ``files``, ``env_names``."""
    return {
        "exit_codes": dict(EXIT_CODES),
        "files": dict(JOB_FILES),
        "env_names": dict(ENV_NAMES),
    }


def script_context(
    profile: dict[str, Any], request: dict[str, Any], environment: dict[str, Any], directory: Path
) -> dict[str, Any]:
    """The values every job script template needs."""
    return {
        **contract_context(),
        "import_check": environment["module"].split(".")[0],
        "import_code": import_check_code(environment["module"]),
        "site": profile.get("name", "?"),
        "kind": profile.get("kind", "?"),
        "submit_dir": str(directory),
        "request": request,
        "python": environment["python"],
        "module": environment["module"],
        "env": environment["env"],
        "gpu_request": profile.get("gpu_request", "gres"),
        "job_name": job_name(directory),
        "bundle": int(request.get("bundle") or 1),
        "bundle_module": environment.get("bundle_module", "hepae_core.bundle"),
    }
