"""``hepae-data``: generate a jet sample, inspect a data file, convert ROOT <-> HDF5.

    hepae-data generate --out dijet.root --events 20000 --seed 1
    hepae-data inspect FILE [--tree NAME] [--max-entries N]
    hepae-data convert IN -o OUT [--tree T] [--branches a,b] [--container P] [--leading N]
    hepae-data compress --model JOB_DIR IN -o OUT.h5   (and decompress, evaluate: see
    docs/compression.md)

Exit codes: 0 done, 2 bad input (the message names the file and what to change), 1 other
failures (a full disk, an interrupt, a damaged compressed file). Every error is one line
on stderr (argparse's too), with the user's file names (never a hidden temporary name)
and control characters escaped. ``convert`` writes to a temporary file and renames it: a
failure, Ctrl-C or SIGTERM leaves nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hepae_core.cli.data_guard import (
    OneLineParser,
    Terminated,
    atomic_output,
    check_output,
    check_terminated,
    hard_exit,
    option_words,
    positive_int,
    printable,
    signals_interrupt,
    user_text,
)
from hepae_core.diskfull import DiskFull, free_bytes, is_disk_full, writing
from hepae_core.errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, DataError, HepaeError


def _err(msg: str) -> None:
    # One line, the user's own file names (not a hidden temporary one), no terminal
    # control sequences from hostile names.
    print(f"error: {user_text(msg)}", file=sys.stderr)


# ---------------------------------------------------------------------------- generate


def cmd_generate(args: argparse.Namespace) -> int:
    from hepae_core.data.generate import GenSettings, generate

    out = Path(args.out)
    if out.exists() and not args.force:
        raise DataError(
            source=str(out), message="exists already; choose another --out or pass --force"
        )
    if not out.parent.is_dir():
        raise DataError(source=str(out), message="its directory does not exist")
    settings = GenSettings(
        process=args.process,
        n_events=args.events,
        seed=args.seed,
        pthat_min=args.pthat_min,
        bias_power=args.bias_power,
        jet_ptmin=args.jet_ptmin,
        jet_etamax=args.jet_etamax,
        extra=list(args.set or []),
    )
    step = max(1, args.events // 20)

    def progress(i: int, n: int) -> None:
        if i % step == 0 or i == n:
            print(f"  {i}/{n} events", file=sys.stderr, flush=True)

    generate(out, settings, progress=None if args.quiet else progress)
    return EXIT_OK


# ----------------------------------------------------------------------------- inspect


def _fmt(x: Any) -> str:
    try:
        return f"{float(x):.6g}"
    except (TypeError, ValueError):
        return str(x)


def _range(values: Any) -> str:
    """``min A, max B`` over the finite values, and how many are NaN or infinite."""
    import numpy as np

    a = np.asarray(values, dtype=np.float64)
    finite = a[np.isfinite(a)]
    text = (
        f"min {_fmt(finite.min())}, max {_fmt(finite.max())}" if finite.size else "no finite value"
    )
    n_nan, n_inf = int(np.isnan(a).sum()), int(np.isinf(a).sum())
    if n_nan:
        text += f", {n_nan} NaN"
    if n_inf:
        text += f", {n_inf} inf"
    return text


def _median_abs(values: Any) -> float:
    import numpy as np

    a = np.abs(np.asarray(values, dtype=np.float64))
    a = a[np.isfinite(a)]
    return float(np.median(a)) if a.size else 0.0


def _units_hint(name: str, median: float) -> str:
    short = name.rsplit(".", 1)[-1].rsplit("_", 1)[-1]
    if short.lower() in ("pt", "e", "m", "et") and median > 0:
        return "  (likely MeV)" if median > 1000 else "  (likely GeV)"
    return ""


def inspect_root(path: Path, tree: str | None, max_entries: int) -> list[str]:
    import awkward as ak
    import numpy as np

    from hepae_core.data.generate import read_metadata
    from hepae_core.data.readers.root import TREE_CLASSES, is_jagged, list_trees, open_root

    lines = [f"{path}: ROOT file"]
    f = open_root(path)
    with f:
        classes = {k.split(";")[0]: c for k, c in f.classnames().items()}
        trees = list_trees(f)
        others = {k: c for k, c in classes.items() if c not in TREE_CLASSES and "/" not in k}
        if tree is not None and tree not in trees:
            from hepae_core.data.readers import closest

            raise DataError(
                source=str(path),
                message=f"has no tree '{tree}'{closest(tree, trees)} (trees: {', '.join(trees)})",
                key="--tree",
            )
        if not trees:
            lines.append("  no TTree in this file")
        for name in [tree] if tree else trees:
            t = f[name]
            kind = "RNTuple" if classes.get(name) == "ROOT::RNTuple" else "tree"
            lines.append(f"  {kind} '{name}': {t.num_entries} entries, {len(t.keys())} branches")
            stop = min(t.num_entries, max_entries)
            note = "" if stop == t.num_entries else f" (ranges from the first {stop} entries)"
            lines.append(f"    {'branch':<60} {'type':<22} {'min':>12} {'max':>12}{note}")
            branch_names = t.keys()
            for b in branch_names:
                br = t[b]
                kind = str(br.typename)
                try:
                    arr = br.array(entry_stop=stop, library="ak")
                    jag = is_jagged(br)
                    flat = ak.to_numpy(ak.flatten(arr, axis=None)) if jag else ak.to_numpy(arr)
                    is_float = np.issubdtype(np.asarray(flat).dtype, np.floating)
                    flat = np.asarray(flat, dtype=np.float64)
                except Exception as exc:
                    if _is_damage(exc, br):
                        raise
                    lines.append(f"    {b:<60} {kind:<22} {'(not numeric)':>25}")
                    continue
                if flat.size:
                    finite = flat[np.isfinite(flat)]
                    lo, hi = (finite.min(), finite.max()) if finite.size else ("-", "-")
                    extra = f"  {flat.size} values" if jag else ""
                    n_nan = int(np.isnan(flat).sum())
                    extra += f"  {n_nan} NaN" if n_nan else ""
                    hint = _units_hint(b, _median_abs(flat)) if is_float else ""
                    lines.append(
                        f"    {b:<60} {kind:<22} {_fmt(lo):>12} {_fmt(hi):>12}{extra}{hint}"
                    )
                else:
                    lines.append(f"    {b:<60} {kind:<22} {'(empty)':>25}")
        for k, c in others.items():
            lines.append(f"  {c} '{k}'")
    meta = read_metadata(path)
    if meta:
        lines.append(f"  generator metadata: units {meta.get('units', '?')}, {meta}")
    return lines


def _is_damage(exc: BaseException, branch) -> bool:
    """A read that failed because the file is damaged, not because of the branch's type."""
    import zlib

    import uproot

    if isinstance(exc, OSError | zlib.error | uproot.deserialization.DeserializationError):
        return True
    # A branch of numbers that cannot be read is damaged, whatever the library raised.
    return getattr(branch, "interpretation", None) is not None and _is_numeric(branch)


def inspect_hdf5(path: Path, max_entries: int) -> list[str]:
    import h5py
    import numpy as np

    from hepae_core.data.readers.hdf5 import open_hdf5

    lines = [f"{path}: HDF5 file"]
    f = open_hdf5(path)
    with f:
        items: list[tuple[str, Any]] = []
        f.visititems(lambda n, o: items.append((n, o)))
        if not items:
            lines.append("  empty: no groups or datasets")
        for name, obj in items:
            if isinstance(obj, h5py.Group):
                lines.append(f"  group '{name}'")
                continue
            units = obj.attrs.get("units")
            head = f"  dataset '{name}': shape {obj.shape}, {obj.dtype}"
            lines.append(head + (f", units {units}" if units is not None else ""))
            if obj.shape and obj.shape[0]:
                data = obj[: min(obj.shape[0], max_entries)]
                fields = obj.dtype.names or [None]
                for fld in fields:
                    col = data[fld] if fld else data
                    try:
                        col = np.asarray(col, dtype=np.float64)
                    except (TypeError, ValueError):
                        continue
                    label = f"field '{fld}'" if fld else "values"
                    lines.append(
                        f"    {label}: {_range(col)}" + _units_hint(fld or name, _median_abs(col))
                    )
    return lines


def inspect_csv(path: Path, max_entries: int) -> list[str]:

    from hepae_core.data.readers.phenoml import parse_line, text_lines

    n_events = 0
    per_type: dict[str, int] = {}
    values: dict[str, list[float]] = {"E": [], "pt": [], "eta": [], "phi": [], "MET": []}
    processes: dict[str, int] = {}
    with open(path, encoding="utf-8") as fh:
        for lineno, line in text_lines(fh, path):
            if not line.strip():
                continue
            event, objects = parse_line(line, lineno, path)
            n_events += 1
            if n_events > max_entries:
                continue
            proc = line.split(";")[1]
            processes[proc] = processes.get(proc, 0) + 1
            values["MET"].append(event[1])
            for o in objects:
                per_type[o[0]] = per_type.get(o[0], 0) + 1
                for k, v in zip(("E", "pt", "eta", "phi"), o[1:]):
                    values[k].append(float(v))
    lines = [f"{path}: PhenoML CSV, {n_events} events"]
    if n_events == 0:
        lines.append("  empty: no events")
        return lines
    lines.append("  processes: " + ", ".join(f"{k} ({v})" for k, v in processes.items()))
    lines.append("  objects: " + ", ".join(f"{k}: {v}" for k, v in sorted(per_type.items())))
    for k, vals in values.items():
        if vals:
            hint = _units_hint(k if k != "MET" else "met_pt", _median_abs(vals))
            lines.append(f"  {k}: {_range(vals)}{hint}")
    return lines


def cmd_inspect(args: argparse.Namespace) -> int:
    from hepae_core.data.readers import check_file, detect_format, unreadable

    path = Path(args.file)
    check_file(path, key=None, hint="give a ROOT, HDF5 or PhenoML CSV file")
    fmt = detect_format(path, args.format)
    try:
        if fmt == "root":
            lines = inspect_root(path, args.tree, args.max_entries)
        elif fmt == "hdf5":
            lines = inspect_hdf5(path, args.max_entries)
        else:
            lines = inspect_csv(path, args.max_entries)
    except (DataError, MemoryError):
        raise
    except Exception as exc:  # a reader library failing on the file's content
        raise unreadable(path, exc) from None
    print("\n".join(lines))
    return EXIT_OK


# ----------------------------------------------------------------------------- convert


def _default_branches(path: Path, fmt: str, args: argparse.Namespace) -> dict[str, str]:
    """variable -> branch for convert when --branches is not given."""
    prefix = args.container or ""
    if args.branches:
        names = [b.strip() for b in args.branches.split(",") if b.strip()]
        return {n: prefix + n for n in names}
    if fmt == "csv":
        from hepae_core.variables import CSV_VARIABLES

        return {v: v for v in CSV_VARIABLES}
    if fmt == "hdf5":
        import h5py

        from hepae_core.data.readers.hdf5 import is_numeric, open_hdf5

        with open_hdf5(path) as f:
            node = f[args.key] if args.key and args.key in f else f
            if isinstance(node, h5py.Dataset) and node.dtype.names:
                return {n: n for n in node.dtype.names if is_numeric(node.dtype[n])}
            if isinstance(node, h5py.Group):
                return {
                    k: k
                    for k in node
                    if isinstance(node[k], h5py.Dataset)
                    and node[k].ndim == 1
                    and is_numeric(node[k].dtype)
                }
            return {}
    from hepae_core.data.readers.root import get_tree, is_jagged, open_root

    with open_root(path) as f:
        t = get_tree(f, path, args.tree)
        out = {}
        branch_names = t.keys()
        for b in branch_names:
            if prefix and not b.startswith(prefix):
                continue
            br = t[b]
            if not _is_numeric(br):
                continue
            if args.container and not is_jagged(br):
                continue
            out[b[len(prefix) :]] = b
        if not args.container:
            counters = {
                br.count_branch.name
                for br in (t[b] for b in out.values())
                if is_jagged(br) and getattr(br, "count_branch", None) is not None
            }
            flat = {v: b for v, b in out.items() if not is_jagged(t[b]) and b not in counters}
            if flat:
                return flat
            raise DataError(
                source=str(path),
                message=f"tree '{args.tree}' has only per-event (jagged) branches; choose "
                "the jets with "
                "--container PREFIX (e.g. jet_) or --branches",
                key="--container",
            )
        return out


def _is_numeric(branch) -> bool:
    """A branch of numbers, one per entry or jagged."""
    import numpy as np
    import uproot

    interp = branch.interpretation
    if isinstance(interp, uproot.interpretation.jagged.AsJagged):
        interp = interp.content
    return isinstance(interp, uproot.interpretation.numerical.AsDtype) and (
        np.issubdtype(interp.to_dtype, np.number) or interp.to_dtype == np.bool_
    )


CONVERT_ADVICE = "free space (or choose another output) and run again; nothing was written"

# Room kept free beyond a chunk's data while writing HDF5: the library's metadata and
# chunk index. HDF5 cannot recover from a failed write (its clean-up at exit then
# crashes the interpreter), so convert stops before the disk is full, not after.
HDF5_HEADROOM = 1 << 20


class _Hdf5WriteFailed(Exception):
    """HDF5 failed to write: its state is broken, the process must end without its finalisers."""


def _write_root(tmp: Path, chunks: Iterator[dict[str, Any]], tree: str) -> int:
    import numpy as np
    import uproot

    n = 0
    with uproot.recreate(tmp) as f:
        t = None
        for chunk in chunks:
            check_terminated()
            chunk = {k: np.ascontiguousarray(v) for k, v in chunk.items()}
            if t is None:
                t = f.mktree(tree, {k: v.dtype for k, v in chunk.items()})
            t.extend(chunk)
            n += len(next(iter(chunk.values())))
    return n


def _write_hdf5(tmp: Path, chunks: Iterator[dict[str, Any]], key: str | None, out: Path) -> int:
    import h5py
    import numpy as np

    n = 0
    try:
        with h5py.File(tmp, "w") as f:
            group = f.require_group(key) if key else f
            for chunk in chunks:
                check_terminated()
                chunk = {k: np.asarray(v) for k, v in chunk.items()}
                m = len(next(iter(chunk.values())))
                need = sum(v.nbytes for v in chunk.values()) + HDF5_HEADROOM
                if free_bytes(tmp.parent) < need:
                    raise DiskFull(out, CONVERT_ADVICE)
                for k, v in chunk.items():
                    if k not in group:
                        group.create_dataset(
                            k, shape=(0,), maxshape=(None,), dtype=v.dtype, chunks=True
                        )
                    ds = group[k]
                    ds.resize((n + m,))
                    ds[n : n + m] = v
                n += m
    except DiskFull:
        raise
    except (OSError, RuntimeError) as exc:  # h5py raises either for a failed write or close
        if is_disk_full(exc) or f"errno = {errno.ENOSPC}," in str(exc):
            raise _Hdf5WriteFailed(str(DiskFull(out, CONVERT_ADVICE))) from None
        raise
    return n


def _convert_output(args: argparse.Namespace) -> Path:
    """The output of convert: positional (``convert IN OUT``) or ``-o OUT``, not both."""
    if args.output and args.out_opt and args.output != args.out_opt:
        raise DataError(source="convert", message=f"two outputs given ({args.output} and -o "
                        f"{args.out_opt}): give one")  # fmt: skip
    out = args.output or args.out_opt
    if not out:
        raise DataError(source="convert", message="no output: give -o OUT.root (or .h5)")
    args.output = out
    return Path(out)


def cmd_convert(args: argparse.Namespace) -> int:
    from hepae_core.data.readers import (
        HDF5_SUFFIXES,
        ReadRequest,
        check_file,
        detect_format,
        iter_chunks,
        unreadable,
    )

    src = Path(args.input)
    out = _convert_output(args)
    check_file(src, key=None, hint="give a ROOT, HDF5 or PhenoML CSV file")
    check_output(out, inputs=[src], force=args.force, suffixes=(".root", *HDF5_SUFFIXES),
                 writes="a ROOT tree or HDF5 datasets", option="output")  # fmt: skip
    out_fmt = "root" if out.suffix.lower() == ".root" else "hdf5"
    fmt = detect_format(src, args.format)
    try:
        branches = _default_branches(src, fmt, args)
    except (DataError, MemoryError):
        raise
    except Exception as exc:  # a reader library failing on the file's content
        raise unreadable(src, exc) from None
    if not branches:
        raise DataError(
            source=str(src), message="has no numeric per-jet columns to convert", key="--branches"
        )
    req = ReadRequest(
        branches=branches,
        tree=args.tree,
        key=args.key,
        leading=args.leading,
        pt_branch=(args.container or "") + "pt",
        chunk_size=args.chunk_size,
        csv_objects=tuple(args.objects.split(",")),
    )
    chunks = iter_chunks(src, fmt, req)
    # A temporary file beside the output, with the umask's mode, renamed at the end only.
    with writing(out, CONVERT_ADVICE), atomic_output(out) as tmp:
        if out_fmt == "root":
            n = _write_root(tmp, chunks, args.out_tree)
        else:
            n = _write_hdf5(tmp, chunks, args.out_key, out)
        if n == 0:
            raise DataError(source=str(src), message="holds no jets to convert")
    print(printable(f"wrote {n} jets, {len(branches)} columns ({', '.join(branches)}) to {out}"))
    return EXIT_OK


# -------------------------------------------------------------------------------- main


def _add_generate(sub) -> None:
    g = sub.add_parser(
        "generate", help="generate a Pythia 8 jet sample (needs the gen extra)",
        description="Generate events with Pythia 8, cluster anti-kt R=0.4 jets and write them "
        "(one row per jet, GeV) with the generator settings to a ROOT file. Needs "
        "`pip install hepae-gridsearch[gen]`.",
    )  # fmt: skip
    g.add_argument("--out", required=True, help="output ROOT file")
    g.add_argument("--process", choices=("dijet", "ttbar"), default="dijet",
                   help="hard process (default dijet)")  # fmt: skip
    g.add_argument("--events", type=positive_int, default=10_000,
                   help="events to generate (default 10000)")  # fmt: skip
    g.add_argument("--seed", type=int, default=1, help="Pythia's random seed (default 1)")
    g.add_argument("--pthat-min", type=float, default=25.0, help="GeV (dijet)")
    g.add_argument("--bias-power", type=float, default=0.0, help="bias pT-hat by (pT-hat/min)^p")
    g.add_argument("--jet-ptmin", type=float, default=20.0, help="GeV")
    g.add_argument("--jet-etamax", type=float, default=4.5, help="largest |eta| of a jet")
    g.add_argument("--set", action="append", help="extra Pythia setting, e.g. 'Tune:pp = 14'")
    g.add_argument("--force", action="store_true", help="overwrite --out")
    g.add_argument("--quiet", action="store_true", help="no progress lines")
    g.set_defaults(func=cmd_generate, paths=("out",))


def _add_inspect(sub) -> None:
    i = sub.add_parser(
        "inspect", help="trees, branches, counts, units and ranges of a file",
        description="List the trees (or HDF5 datasets, or CSV objects) of a file with their "
        "branches, types, counts, ranges and likely energy units. Reads only.",
    )  # fmt: skip
    i.add_argument("file", help="ROOT, HDF5 or PhenoML CSV file")
    i.add_argument("--tree", default=None, help="only this tree")
    i.add_argument("--format", default="auto", choices=("auto", "root", "hdf5", "csv"),
                   help="the file's format (default: from its content)")  # fmt: skip
    i.add_argument("--max-entries", type=positive_int, default=1_000_000,
                   help="entries read for ranges")  # fmt: skip
    i.set_defaults(func=cmd_inspect, paths=("file",))


def _add_convert(sub) -> None:
    c = sub.add_parser(
        "convert", help="convert jets between ROOT, HDF5 (and from CSV)",
        description="Copy the per-jet columns of a ROOT tree (flat, or jagged with "
        "--container), an HDF5 file or a PhenoML CSV file into a ROOT tree or HDF5 datasets. "
        "The output is never the input; an existing one is replaced only with --force.",
    )  # fmt: skip
    c.add_argument("input", help="ROOT, HDF5 or PhenoML CSV file")
    c.add_argument("output", nargs="?", default=None,
                   help="ends in .root (TTree) or .h5/.hdf5 (datasets); or -o")  # fmt: skip
    c.add_argument("-o", "--output", dest="out_opt", default=None, metavar="OUTPUT",
                   help="the output, as with the other commands")  # fmt: skip
    c.add_argument("--format", default="auto", choices=("auto", "root", "hdf5", "csv"),
                   help="the input's format (default: from its content)")  # fmt: skip
    c.add_argument("--tree", default="jets", help="input tree (default jets)")
    c.add_argument("--key", default=None, help="input HDF5 group or table")
    c.add_argument("--branches", default=None, help="comma-separated columns (after prefix)")
    c.add_argument("--container", default=None, help="jagged branch prefix, e.g. jet_")
    c.add_argument("--leading", type=positive_int, default=None,
                   help="leading N jets per event")  # fmt: skip
    c.add_argument("--objects", default="j", help="CSV object types, e.g. j,b")
    c.add_argument("--chunk-size", type=positive_int, default=100_000,
                   help="jets read at a time (default 100000)")  # fmt: skip
    c.add_argument("--out-tree", default="jets", help="the output tree (default jets)")
    c.add_argument("--out-key", default=None, help="HDF5 group to write into")
    c.add_argument("--force", action="store_true", help="replace an existing output")
    c.set_defaults(func=cmd_convert, paths=("input", "output"))


#: One function per subcommand: it adds its parser and sets ``func`` (the command) and
#: ``paths`` (the arguments naming files, for error messages). Add new ones here.
def _add_codec(sub: argparse._SubParsersAction) -> None:
    from hepae_core.cli.compress import register  # compress, decompress, evaluate

    register(sub)


SUBCOMMANDS = [_add_generate, _add_inspect, _add_convert, _add_codec]


DESCRIPTION = """\
Jet data files for the autoencoders: make them, look into them, convert them, and
compress them with a trained model.

  generate    a Pythia 8 jet sample as a ROOT file (needs the gen extra)
  inspect     trees, branches, counts, units and ranges of a ROOT, HDF5 or CSV file
  convert     jets between ROOT and HDF5 (and from PhenoML CSV): convert IN -o OUT
  compress    jets -> latent codes with a finished job's model (HDF5 file)
  decompress  a compressed file -> ROOT tree or HDF5 datasets
  evaluate    a job's model measured on another sample, against its baselines

Results go to stdout, progress (on a terminal only) and errors to stderr. An error is one
line naming the file and what to do; exit 2 for bad input, 1 for other failures (a full
disk, an interrupt). Outputs are written to a temporary file and renamed: a failure,
Ctrl-C or SIGTERM leaves nothing behind, the output is never one of the inputs, and an
existing output is replaced only with --force. docs/data.md, docs/compression.md."""


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="hepae-data", description=DESCRIPTION,
                      formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(sub)
    return p


def _first_path(args: argparse.Namespace) -> str:
    """The file a command was given, for an error that does not name its own."""
    names = [getattr(args, a, None) for a in getattr(args, "paths", ())]
    return next((str(n) for n in names if n), "hepae-data")


def _output_path(args: argparse.Namespace) -> str:
    """The file a command writes, for a full disk: never the input, never a temporary name."""
    for name in ("output", "out_opt", "out"):
        value = getattr(args, name, None)
        if value:
            return str(value)
    return _first_path(args)


def _hdf5_failed() -> bool:
    """HDF5 may have failed to write or close a file: after that, its state is broken.

    Its errors come as OSError or RuntimeError with or without an errno, so any full disk
    while the library is loaded counts.
    """
    return "h5py" in sys.modules


def _disk_full(exc: BaseException) -> bool:
    return is_disk_full(exc) or f"errno = {errno.ENOSPC}," in str(exc)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # SIGTERM/SIGHUP unwind like Ctrl-C: the writers' temporary files are removed.
    with signals_interrupt():
        try:
            return args.func(args)
        except HepaeError as exc:
            _err(option_words(str(exc)))
            return exc.exit_code
        except BrokenPipeError:
            # The reader of stdout stopped (`| head`): the work is done, say nothing more.
            with contextlib.suppress(OSError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT_OK
        except (DiskFull, _Hdf5WriteFailed, OSError, RuntimeError) as exc:
            if not isinstance(exc, DiskFull | _Hdf5WriteFailed) and not _disk_full(exc):
                if isinstance(exc, RuntimeError):
                    raise
                _err(f"{exc.filename or _first_path(args)}: {exc.strerror or exc}")
                return EXIT_BAD_INPUT
            # Named after the output the user gave, whatever file the library was writing.
            _err(str(DiskFull(_output_path(args), CONVERT_ADVICE)))
            if _hdf5_failed():
                # After a failed write the HDF5 library's finalisers crash the interpreter
                # (exit 139); the temporary file is gone already, so end here.
                hard_exit(EXIT_FAILED)
            return EXIT_FAILED
        except KeyboardInterrupt as exc:
            what = exc.args[0] if isinstance(exc, Terminated) else "Ctrl-C"
            out = _output_path(args) if args.command not in ("inspect",) else None
            tail = f"; nothing written to {out}" if out and out != _first_path(args) else ""
            _err(f"interrupted ({what}){tail}")
            return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
