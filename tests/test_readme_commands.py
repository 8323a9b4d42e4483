"""Every command line of the README, the docs and the example headers runs as written.

Three levels, fastest first:

* every ``gridsearch`` and ``hepae-data`` line (code blocks, example headers, inline
  commands without placeholders' brackets) is accepted by the real argument parser;
* the code-block lines run for real in a scratch directory holding the examples, each
  submit to a scheduler (and each local submit of the docs) with ``--dry-run``, so that
  plan, status, show, sites, summarize and the rendering of every job script are real;
* the README's own sequence runs for real on the demo shrunk to a few thousand jets and
  two epochs, its schedule kept as it is: plan, submit, status, resubmit, watch, promote,
  summarize, and ``hepae-train`` on a one-job config.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gridsearch.cli import build_parser as gridsearch_parser
from hepae_core.cli.data import build_parser as data_parser

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
TOOLS = ("gridsearch", "hepae-data", "hepae-train")
SCHEDULERS = ("slurm", "kebnekaise", "aurora", "cosmos", "lxplus", "condor")


def _strip(line: str) -> str:
    """The command without its trailing ``# comment``."""
    return re.split(r"\s+#\s", line.strip(), maxsplit=1)[0].strip()


def block_commands(path: Path) -> list[tuple[str, str]]:
    """(where, command) of every tool line in the fenced code blocks of a markdown file."""
    out, inside = [], False
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip().startswith("```"):
            inside = not inside
            continue
        cmd = _strip(line)
        if inside and cmd.split(" ", 1)[0] in TOOLS:
            out.append((f"{path.name}:{i}", cmd))
    return out


def example_commands(path: Path) -> list[tuple[str, str]]:
    """(where, command) of the commands an example's header comment gives."""
    out = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.startswith("#"):
            break
        cmd = _strip(line.lstrip("#"))
        if cmd.split(" ", 1)[0] in TOOLS:
            out.append((f"{path.name}:{i}", re.split(r"\s{2,}", cmd)[0]))
    return out


def inline_commands(path: Path) -> list[tuple[str, str]]:
    """Inline `gridsearch ...` / `hepae-data ...` mentions outside the code blocks."""
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    found = re.finditer(r"`((?:gridsearch|hepae-data) [^`]*)`", text.replace("\n", " "))
    return [(path.name, " ".join(m.group(1).split())) for m in found]


def _synopsis(cmd: str) -> bool:
    """A usage line or a mention (placeholders in brackets, ``...``, alternatives)."""
    return bool(re.search(r"[\[\]|()]|\.\.\.|\bFLAGS\b|\boptions\b", cmd))


BLOCKS = [c for p in DOCS for c in block_commands(p)]
BLOCKS += [c for p in EXAMPLES for c in example_commands(p)]
INLINE = [c for p in DOCS for c in inline_commands(p)]
PARSERS = {"gridsearch": gridsearch_parser, "hepae-data": data_parser}


def test_there_are_commands_to_check():
    names = {w.split(":")[0] for w, _ in BLOCKS}
    assert {"README.md", "gridsearch.md", "clusters.md", "demo.yaml"} <= names
    assert len(BLOCKS) > 40 and len(INLINE) > 40


@pytest.mark.parametrize("where, cmd", BLOCKS, ids=[f"{w} {c}"[:90] for w, c in BLOCKS])
def test_every_command_line_parses(where, cmd, capsys):
    """A code-block line is accepted by the real parser (a usage line: its options exist)."""
    argv = shlex.split(cmd)
    if argv[0] not in PARSERS:
        pytest.skip("hepae-train runs for real in test_the_readme_runs_on_the_demo")
    if _synopsis(cmd):
        _options_exist(where, cmd)
        return
    try:
        PARSERS[argv[0]]().parse_args(argv[1:])
    except SystemExit:
        pytest.fail(f"{where}: '{cmd}' is refused: {capsys.readouterr().err.strip()}")


def _options_exist(where: str, cmd: str) -> None:
    argv = re.sub(r"[\[\]|()]", " ", cmd).split()
    if "error:" in argv:  # a quoted error message: the command before it
        argv = argv[: argv.index("error:")]
    parser = PARSERS[argv[0]]()
    if len(argv) < 2 or argv[1].startswith("-") or argv[1].isupper():
        return  # `hepae-data --help`, `hepae-data COMMAND --help`: nothing to look up
    verbs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    sub = verbs.choices.get(argv[1].split("/")[0].rstrip(":"))
    assert sub is not None, f"{where}: '{cmd}': no such command {argv[1:2]}"
    known = {o for a in sub._actions for o in a.option_strings}
    unknown = [a for a in argv[2:] if a.startswith("--") and a.split("=")[0] not in known]
    assert not unknown, f"{where}: '{cmd}': {argv[0]} {argv[1]} has no {unknown}"


@pytest.mark.parametrize("where, cmd", INLINE, ids=[f"{w} {c}"[:90] for w, c in INLINE])
def test_every_mentioned_command_and_option_exists(where, cmd):
    """`gridsearch submit --bundle K` in the prose: submit exists and has --bundle."""
    _options_exist(where, cmd)


# --------------------------------------------------------------------------- real runs


def _env(home: Path | None = None) -> dict[str, str]:
    bin_dir = Path(sys.executable).parent
    path = os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")])
    env = dict(os.environ, PATH=path, PYTHONPATH=str(REPO))
    if home is not None:
        env["HOME"] = str(home)
    return env


def heredoc_profiles(path: Path) -> dict[str, str]:
    """The user site profiles a doc's code blocks write (``cat > ~/.config/... <<'EOF'``)."""
    out = {}
    text = path.read_text(encoding="utf-8")
    pattern = r"cat > ~/(\.config/gridsearch/sites/\S+\.yaml) <<'EOF'\n(.*?)\nEOF\n"
    for m in re.finditer(pattern, text, flags=re.S):
        out[m.group(1)] = m.group(2) + "\n"
    return out


def _shrink(src: Path, dst: Path, epochs: int) -> None:
    """An example with a few thousand jets and ``epochs`` epochs; everything else as is."""
    data = yaml.safe_load(src.read_text(encoding="utf-8"))
    base = data.setdefault("base", {})
    base.setdefault("data", {})["max_jets"] = 3000
    base.setdefault("train", {})["epochs"] = epochs
    ev = base.setdefault("evaluate", {})
    ev.update(plots=False, timing_jets=1000, bits=[8, 12])
    dst.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def _scratch(tmp_path: Path, epochs: int = 2) -> Path:
    work = tmp_path / "work"
    (work / "examples").mkdir(parents=True)
    for ex in EXAMPLES:
        _shrink(ex, work / "examples" / ex.name, epochs)
    # the bundled sample where the README's compress line reads it (repository root)
    (work / "hepae_core" / "data").mkdir(parents=True)
    (work / "hepae_core" / "data" / "dijet_4d.root").symlink_to(
        REPO / "hepae_core" / "data" / "dijet_4d.root"
    )
    return work


def _run(cmd: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = _env(cwd / "home")
    return subprocess.run(
        shlex.split(cmd), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def _as_dry_run(cmd: str) -> str:
    """A submit to a scheduler (or any local submit of the docs) renders, queues nothing."""
    argv = cmd.split()
    if argv[:2] in (["gridsearch", "submit"], ["gridsearch", "resubmit"]) and (
        "--dry-run" not in argv
    ):
        return cmd + " --dry-run"
    return cmd


def _ok(proc: subprocess.CompletedProcess, cmd: str) -> bool:
    allowed = (0, 1) if " summarize " in f" {cmd} " else (0,)  # 1: nothing finished yet
    return proc.returncode in allowed


DRY = [(w, c) for w, c in BLOCKS if c.startswith("gridsearch ") and not _synopsis(c)]


def test_the_docs_lines_run_with_submits_as_dry_runs(tmp_path):
    """Each file's lines in order, in a scratch directory: plan, status, sites and show
    for real, every submit rendered (--dry-run), summarize on what there is."""
    work = _scratch(tmp_path)
    failed = []
    # the walk-throughs of docs/clusters.md write a user profile (with the account) first
    for doc in DOCS:
        for rel, text in heredoc_profiles(doc).items():
            (work / "home" / rel).parent.mkdir(parents=True, exist_ok=True)
            (work / "home" / rel).write_text(text, encoding="utf-8")
    assert (work / "home" / ".config/gridsearch/sites/kebnekaise.yaml").is_file()
    for where, cmd in DRY:
        if "promote" in cmd:
            continue  # needs done jobs: test_the_readme_runs_on_the_demo runs it for real
        if " --watch" in cmd:
            continue  # waits on jobs; run for real on the demo below
        cmd = _as_dry_run(cmd)
        proc = _run(cmd, work)
        if not _ok(proc, cmd):
            failed.append(f"{where}: {cmd}: exit {proc.returncode}: {proc.stderr.strip()[-300:]}")
    assert not failed, "\n".join(failed)


def test_the_readme_runs_on_the_demo(tmp_path):
    """The README's first block in order, for real, on the demo with 3000 jets and two
    epochs (its learning-rate schedule as in examples/demo.yaml): the promote line must
    work on the demo. Scheduler submits are dry runs; hepae-train runs a one-job config."""
    work = _scratch(tmp_path)
    readme = [c for _, c in block_commands(REPO / "README.md")]
    lines = readme[: readme.index("gridsearch sites") + 1]
    assert any(c.startswith("gridsearch promote runs/demo") for c in lines)
    assert any(c.startswith("hepae-data compress --model best --campaign runs/demo") for c in lines)
    done = []
    for cmd in lines:
        if any(f"--site {s}" in cmd for s in SCHEDULERS):
            cmd = _as_dry_run(cmd)
        proc = _run(cmd, work)
        assert _ok(proc, cmd), f"{cmd}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        done.append(cmd)
        if cmd.startswith("gridsearch promote"):
            assert "promot" in proc.stdout and "local run ended: 2 done" in proc.stdout, proc.stdout
        if cmd.startswith("hepae-data compress --model best"):
            assert "the summary's best run" in proc.stdout, proc.stdout
    assert (work / "runs" / "demo" / "summary" / "report.txt").is_file()
    report = (work / "runs" / "demo" / "summary" / "report.txt").read_text()
    assert report.splitlines()[2] == "Bottom line"
    # `hepae-train my_config.yaml --out runs/one` on a config like one demo job
    (cmd,) = [c for c in readme if c.startswith("hepae-train ")]
    job = yaml.safe_load((work / "examples" / "demo.yaml").read_text())["base"]
    job["model"]["latent"] = 3
    (work / "my_config.yaml").write_text(yaml.safe_dump(job), encoding="utf-8")
    proc = _run(cmd, work)
    assert proc.returncode == 0, proc.stderr
    assert (work / "runs" / "one" / "metrics.json").is_file()


def test_the_benchmarks_the_readme_names_exist():
    for _, cmd in [("README.md", c) for c in (REPO / "README.md").read_text().splitlines()]:
        m = re.match(r"python (benchmarks/\S+\.py)", cmd.strip())
        if m:
            assert (REPO / m.group(1)).is_file(), m.group(1)
    assert shutil.which("bash")
