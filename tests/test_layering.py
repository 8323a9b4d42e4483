"""The layering rules of docs/architecture.md, checked by reading every module's imports.

Layers, lowest first: ``hepae_core`` (the science; its ``contract`` module at the very
bottom), ``gridsearch`` (the orchestration), ``results`` (the summaries). A module may import
its own layer and the layers below, never one above; ``gridsearch`` reaches ``results``
only through its one plugin point, the command list of ``gridsearch.cli``
(``COMMAND_MODULES``, strings imported when the parser is built). Imports inside functions
count too: a lazy import is still a dependency, and a circle through one is still a circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("hepae_core", "gridsearch", "results")
LAYER = {"hepae_core": 0, "gridsearch": 1, "results": 2}
CONTRACT = "hepae_core.contract"
#: gridsearch's one way to results: the command modules its cli registers by name.
PLUGIN_POINT = "gridsearch.cli"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(p): p
        for pkg in PACKAGES
        for p in sorted((ROOT / pkg).rglob("*.py"))
        if "__pycache__" not in p.parts
    }


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The project module an import of ``name`` loads (``a.b.c`` -> ``a.b`` when ``c`` is
    a name in it), or None for anything outside the project."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path) -> set[str]:
    """The project modules ``module`` imports, anywhere in its body."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join([*package, base] if base else package)
            names = [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            target = _resolve(name)
            # importing a.b.c runs a/__init__ and a/b/__init__: not a dependency of a's own
            if target and target != module and not module.startswith(target + "."):
                found.add(target)
    return found


GRAPH = {m: _imports(m, p) for m, p in MODULES.items()}


def _layer(module: str) -> int:
    return LAYER[module.split(".")[0]]


def test_the_analysis_sees_the_project():
    assert {"hepae_core.job", "gridsearch.cli", "results.cmd_summarize", CONTRACT} <= set(GRAPH)
    assert "hepae_core.contract" in GRAPH["hepae_core.jobdir"]
    # a function-level import is seen too (gridsearch.backends.base imports the campaign late)
    assert "gridsearch.campaign" in GRAPH["gridsearch.backends.base"]


def test_no_module_imports_a_higher_layer():
    upward = sorted(
        f"{m} imports {d}" for m, deps in GRAPH.items() for d in deps if _layer(d) > _layer(m)
    )
    assert not upward, "imports from a lower layer to a higher one:\n" + "\n".join(upward)


def test_gridsearch_reaches_results_only_through_the_cli_plugin_point():
    import gridsearch.cli

    assert not [d for d in GRAPH[PLUGIN_POINT] if d.startswith("results")]
    plugins = [m for m in gridsearch.cli.COMMAND_MODULES if not m.startswith("gridsearch.")]
    assert plugins == ["results.cmd_summarize"]
    assert all(m in MODULES for m in gridsearch.cli.COMMAND_MODULES)


def test_results_reads_of_gridsearch_only_the_campaign_layout_and_the_sample():
    used = {d for m, deps in GRAPH.items() if m.startswith("results") for d in deps}
    assert {d for d in used if d.startswith("gridsearch")} <= {
        "gridsearch.campaign",
        "gridsearch.samples",
    }


def test_the_contract_imports_nothing_of_the_project():
    assert GRAPH[CONTRACT] == set()


def _cycles() -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(GRAPH[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    return out


def test_no_import_circles():
    cycles = _cycles()
    assert not cycles, "import circles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


#: hepae_core's top level: the floor its rooms and gridsearch stand on (docs/architecture.md).
FLOOR = {
    f"hepae_core.{m}"
    for m in (
        "contract", "config", "jobdir", "states", "errors", "variables", "text", "yamlio",
        "diskfull",
    )
}  # fmt: skip
ROOMS = ("data", "training", "codecs", "evaluation", "run", "cli")
#: The floor's only reaches into rooms: the config check asks the room that owns a syntax
#: (cut expressions, augmentation keys) to check it; both modules are plain Python at import.
FLOOR_CHECKERS = {
    ("hepae_core.config", "hepae_core.data.cuts"),
    ("hepae_core.config", "hepae_core.training.augment"),
}


def _room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "hepae_core" and len(parts) > 1 and parts[1] in ROOMS else None


def test_hepae_core_is_in_rooms_on_one_floor():
    loose = sorted(
        m for m in MODULES if m.startswith("hepae_core.") and _room(m) is None and m not in FLOOR
    )
    # the two `python -m` entry points rendered job scripts name; nothing else is loose
    assert loose == ["hepae_core.bundle", "hepae_core.job"]
    for entry in loose:
        assert GRAPH[entry] == {entry.replace("hepae_core.", "hepae_core.run.")}
    up = sorted(
        f"{m} imports {d}"
        for m in FLOOR
        for d in GRAPH[m]
        if d not in FLOOR and (m, d) not in FLOOR_CHECKERS
    )
    assert not up, "the floor imports a room:\n" + "\n".join(up)


def test_only_the_commands_import_the_cli_room():
    users = sorted(
        f"{m} imports {d}"
        for m, deps in GRAPH.items()
        for d in deps
        if _room(d) == "cli" and _room(m) != "cli"
    )
    assert not users, "\n".join(users)


def test_the_floor_checkers_load_neither_numpy_nor_torch():
    import subprocess
    import sys

    code = (
        "import sys, hepae_core.config, hepae_core.data.cuts, hepae_core.training.augment;"
        "print(sorted({'numpy', 'torch'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_gridsearch_imports_only_hepae_cores_floor():
    heavy = sorted(
        f"{m} imports {d}"
        for m, deps in GRAPH.items()
        if m.startswith("gridsearch")
        for d in deps
        if d.startswith("hepae_core") and d not in FLOOR
    )
    assert not heavy, "gridsearch must not load the science (torch, numpy):\n" + "\n".join(heavy)
