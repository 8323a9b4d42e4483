"""``hepae-data`` as a careless or hostile user meets it: nothing the user has is lost,
every nonsense value is refused with one line, no traceback, and the inputs stay as they
were (byte for byte). Most cases run the real command in a subprocess."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import uproot
from conftest import REPO, TINY_JOB, write_job

from hepae_core.cli.data import build_parser, main
from hepae_core.cli.data_guard import check_max_error, printable, untemp
from hepae_core.data.jets import bundled_path
from hepae_core.errors import HepaeError
from hepae_core.run.job import run_job

VARS = ["pt", "eta", "phi", "E"]
ENV = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def hepae_data(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``hepae-data ARGS`` as a user would (its own process, stdout and stderr apart)."""
    return subprocess.run(
        [sys.executable, "-m", "hepae_core.cli.data", *map(str, args)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=timeout,
    )


def one_line(err: str, code: int, got: int, *words: str) -> str:
    """The refusal: exit ``code``, one line on stderr holding ``words``, no traceback."""
    assert got == code, err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


def refused(proc: subprocess.CompletedProcess, code: int, *words: str) -> str:
    return one_line(proc.stderr, code, proc.returncode, *words)


def digest(*paths: Path) -> dict[Path, str]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def write_root(path: Path, cols: dict[str, np.ndarray]) -> Path:
    with uproot.recreate(path) as f:
        f.mktree("jets", {k: v.dtype for k, v in cols.items()})
        if len(next(iter(cols.values()))):
            f["jets"].extend(cols)
    return path


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = copy.deepcopy(TINY_JOB)
    cfg["evaluate"]["bits"] = [8, 12]
    d = write_job(tmp_path_factory.mktemp("safety") / "job", cfg)
    assert run_job(d) == 0
    return d


@pytest.fixture(scope="module")
def cols() -> dict[str, np.ndarray]:
    with uproot.open(bundled_path("dijet_4d")) as f:
        return {v: f["jets"][v].array(library="np")[:3000] for v in VARS}


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory, cols) -> Path:
    return write_root(tmp_path_factory.mktemp("in") / "jets.root", cols)


@pytest.fixture
def work(tmp_path: Path, sample: Path) -> Path:
    """A directory holding a copy of the sample (``jets.root``) to run commands in."""
    (tmp_path / "jets.root").write_bytes(sample.read_bytes())
    return tmp_path


# ------------------------------------------------------------ nothing the user has is lost


def test_output_equal_to_input_is_refused_even_with_force(work: Path, job: Path) -> None:
    src = work / "jets.root"
    (work / "link.h5").hardlink_to(src)  # the same file under another name
    (work / "sym.h5").symlink_to(src)
    model_files = [job / "model.pt", job / "metrics.json", job / "config.yaml"]
    before = digest(src, *model_files)
    for out in ("link.h5", "sym.h5"):
        p = hepae_data("compress", "--model", job, src, "-o", work / out, "--force")
        line = refused(p, 2, str(work / out), f"is the input {src}")
        assert "--force" not in line  # the refusal never suggests what it refuses
    p = hepae_data("convert", src, "-o", src, "--force")
    refused(p, 2, "is the input")
    p = hepae_data("convert", src, work / "link.h5", "--force")
    refused(p, 2, "is the input")
    # evaluate's JSON never replaces the sample or the job's own files
    for out in (work / "sym.h5", job / "metrics.json"):
        p = hepae_data("evaluate", "--model", job, src, "-o", out, "--force")
        refused(p, 2, "is the input")
    assert digest(src, *model_files) == before
    assert sorted(p.name for p in work.iterdir()) == ["jets.root", "link.h5", "sym.h5"]


def test_decompress_onto_its_input_is_refused(work: Path, job: Path, capsys) -> None:
    c = work / "c.h5"
    assert main(["compress", "--model", str(job), str(work / "jets.root"), "-o", str(c)]) == 0
    capsys.readouterr()
    before = digest(c)
    assert main(["decompress", str(c), "-o", str(c), "--force"]) == 2
    line = one_line(capsys.readouterr().err, 2, 2, "is the input")
    assert "--force" not in line
    assert digest(c) == before


def test_no_command_overwrites_an_existing_file_without_force(work: Path, job: Path, capsys):
    src = work / "jets.root"
    taken = {name: work / name for name in ("c.h5", "r.root", "v.h5", "m.json")}
    for p in taken.values():
        p.write_bytes(b"the user's own file")
    c2 = work / "c2.h5"
    assert main(["compress", "--model", str(job), str(src), "-o", str(c2)]) == 0
    capsys.readouterr()
    before = digest(src, c2, *taken.values())
    runs = [
        ["compress", "--model", str(job), str(src), "-o", str(taken["c.h5"])],
        ["decompress", str(c2), "-o", str(taken["r.root"])],
        ["convert", str(src), "-o", str(taken["v.h5"])],
        ["evaluate", "--model", str(job), str(src), "-o", str(taken["m.json"])],
    ]
    for argv in runs:
        assert main(argv) == 2, argv
        one_line(capsys.readouterr().err, 2, 2, "exists already", "--force")
    assert digest(src, c2, *taken.values()) == before
    # with --force the output is replaced (and only the output)
    assert main([*runs[3], "--force"]) == 0
    assert json.loads(taken["m.json"].read_text())["sample_jets"] == 3000
    assert digest(src, c2) == {k: v for k, v in before.items() if k in (src, c2)}


def test_evaluate_writes_json_only(work: Path, job: Path, cols) -> None:
    """`evaluate -o SAMPLE.root` overwrote the sample: -o must end in .json."""
    other = write_root(work / "other.root", cols)
    before = digest(work / "jets.root", other)
    for out in (other, work / "new.root"):
        p = hepae_data("evaluate", "--model", job, work / "jets.root", "-o", out, "--force")
        refused(p, 2, str(out), "must end in .json")
    assert digest(work / "jets.root", other) == before
    assert not (work / "new.root").exists()


def test_compress_writes_hdf5_under_an_hdf5_name_only(work: Path, job: Path) -> None:
    p = hepae_data("compress", "--model", job, work / "jets.root", "-o", work / "x.root")
    refused(p, 2, "x.root", "must end in .h5 or .hdf5")
    assert sorted(x.name for x in work.iterdir()) == ["jets.root"]


def test_zero_jets_are_refused_and_nothing_replaced(work: Path, job: Path) -> None:
    """Chosen: compress refuses a file of no jets (one line), so no empty file stands in
    for data; an existing output is left as it was, even with --force."""
    empty = write_root(work / "empty.root", {v: np.zeros(0, np.float32) for v in VARS})
    out = work / "c.h5"
    out.write_bytes(b"kept")
    p = hepae_data("compress", "--model", job, empty, "-o", out, "--force")
    refused(p, 2, "empty.root", "no jets")
    assert out.read_bytes() == b"kept"
    assert sorted(x.name for x in work.iterdir()) == ["c.h5", "empty.root", "jets.root"]


# ------------------------------------------------------------ nonsense refused, one line


@pytest.mark.parametrize(
    "argv, words",
    [
        (["compress", "--chunk-size", "-5"], ["--chunk-size", "'-5'", ">= 1"]),
        (["compress", "--chunk-size", "0"], ["--chunk-size", ">= 1"]),
        (["convert", "--chunk-size", "0"], ["--chunk-size", ">= 1"]),
        (["convert", "--leading", "-1"], ["--leading"]),
        (["evaluate", "--max-jets", "-3"], ["--max-jets", "'-3'", ">= 1"]),
        (["evaluate", "--max-jets", "x"], ["--max-jets", "not a whole number"]),
        (["compress"], ["required"]),
        (["compress", "--bogus"], ["unrecognized arguments: --bogus"]),
        (["bogus"], ["invalid choice: 'bogus'"]),
    ],
)
def test_bad_options_are_one_line(argv, words, work: Path, job: Path) -> None:
    """argparse's errors were 9-line usage blocks; counts < 1 wrote 0 jets with exit 0."""
    cmd, *rest = argv
    files = {
        "compress": ["--model", job, work / "jets.root", "-o", work / "c.h5"],
        "convert": [work / "jets.root", "-o", work / "c.h5"],
        "evaluate": ["--model", job, work / "jets.root"],
        "bogus": [],
    }[cmd]
    before = digest(work / "jets.root")
    p = hepae_data(cmd, *(files if argv != ["compress"] else []), *rest)
    line = refused(p, 2, *words)
    assert line.startswith("hepae-data") and line.endswith("--help)")
    assert p.stdout == "" and digest(work / "jets.root") == before
    assert sorted(x.name for x in work.iterdir()) == ["jets.root"]


@pytest.mark.parametrize(
    "bound, words",
    [
        ("pt=inf", ["'pt'", "'inf'", "finite number > 0"]),
        ("pt=nan", ["'nan'", "finite number > 0"]),
        ("pt=-1e-3", ["'-1e-3'"]),
        ("pt=0", ["'0'"]),
        ("eta=1e-3,pt=0.01,eta=2e-3", ["'eta'", "given twice"]),
        ("pt", ["write VARIABLE=BOUND"]),
    ],
)
def test_max_error_nonsense_is_refused(bound, words, work: Path, job: Path) -> None:
    p = hepae_data("compress", "--model", job, work / "jets.root", "-o", work / "c.h5",
                   "--max-error", bound)  # fmt: skip
    refused(p, 2, "--max-error", *words)
    assert sorted(x.name for x in work.iterdir()) == ["jets.root"]


def test_max_error_check_leaves_units_to_the_codec() -> None:
    check_max_error("pt=1e-3,eta=0.5,E=0.5GeV,m=2%")  # the number is checked, not the unit
    for bad in ("pt=infGeV", "pt=-0.5GeV", "pt=1,pt=1"):
        with pytest.raises(HepaeError):
            check_max_error(bad)


def test_evaluate_with_no_usable_jet_is_one_line(work: Path, job: Path, cols) -> None:
    """Was a ZeroDivisionError traceback."""
    bad = {v: c[:10].copy() for v, c in cols.items()}
    bad["pt"][:] = -1.0  # no log of it: every jet is outside the normalisation's domain
    src = write_root(work / "bad.root", bad)
    before = digest(src)
    p = hepae_data("evaluate", "--model", job, src, "-o", work / "m.json")
    refused(p, 2, "bad.root", "nothing to evaluate", "all 10 jets")
    assert digest(src) == before and not (work / "m.json").exists()


def test_evaluate_says_nothing_through_numpy_warnings(work: Path, job: Path, cols) -> None:
    odd = {v: c.copy() for v, c in cols.items()}
    odd["phi"][5] = 1e30  # inside the normaliser's domain, nonsense for phi
    odd["eta"][2] = np.nan
    src = write_root(work / "odd.root", odd)
    p = hepae_data("evaluate", "--model", job, src)
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""  # was "RuntimeWarning: invalid value encountered in remainder"
    assert "1 outside the normalisation's domain" in p.stdout


# ------------------------------------------------------------------------------ messages


def test_messages_never_name_a_hidden_temporary_file(work: Path, job: Path) -> None:
    """`-o nodir/b.h5` said `.b.h5.dth3xxpn.h5: No such file or directory`."""
    for cmd in (["compress", "--model", job, work / "jets.root"], ["convert", work / "jets.root"]):
        out = work / "nodir" / "b.h5"
        p = hepae_data(*cmd, "-o", out)
        line = refused(p, 2, str(out), "does not exist")
        assert ".b.h5." not in line
    assert untemp("/x/.b.h5.dth3xxpn.h5: No such file or directory") == (
        "/x/b.h5: No such file or directory"
    )
    assert untemp("..b.h5.dth3xxpn.h5.a_0q9zzz.h5 and .c.root.abcdefgh.root") == ("b.h5 and c.root")
    assert untemp("a .hidden.h5 file, v1.2.3") == "a .hidden.h5 file, v1.2.3"
    assert untemp("my.b.h5.abcdefgh.h5 '.c.h5.abcdefgh.h5'") == "my.b.h5.abcdefgh.h5 'c.h5'"
    assert untemp("/r/.m.json.z87viwdg.tmp: Read-only file system") == (
        "/r/m.json: Read-only file system"
    )
    assert untemp("(gen.root.a1b2c3d4.tmp)") == "(gen.root)"


def test_terminal_escapes_in_user_names_are_shown_escaped(work: Path, job: Path) -> None:
    evil = work / "e\x1b[2Jvil\x07.root"
    p = hepae_data("compress", "--model", job, evil, "-o", work / "c.h5")
    line = refused(p, 2, "e\\x1b[2Jvil\\x07.root")
    assert "\x1b" not in p.stderr and "\x07" not in p.stderr
    p = hepae_data("compress", "--model", job, work / "jets.root", "-o", work / "c.h5",
                   "--max-error", "p\x1b]0;owned\x07t=1")  # fmt: skip
    line = refused(p, 2, "--max-error")
    assert "\x1b" not in line and "\\x1b]0;owned\\x07" in line
    p = hepae_data("evaluate", "--model", job, work / "jets.root", "--max-jets", "\x1b[31m")
    line = refused(p, 2, "--max-jets", "\\x1b[31m")
    assert "\x1b" not in p.stderr
    assert printable("a\nb\tc\u202e") == "a\\nb\\tc\\u202e"


# --------------------------------------------------------------------------- issue 21


def test_convert_takes_dash_o_like_every_command(work: Path, capsys) -> None:
    src = work / "jets.root"
    assert main(["convert", str(src), "-o", str(work / "a.h5")]) == 0
    assert main(["convert", str(src), str(work / "b.h5")]) == 0  # positional still works
    out = capsys.readouterr().out
    assert f"to {work / 'a.h5'}" in out and f"to {work / 'b.h5'}" in out
    assert main(["convert", str(src), str(work / "c.h5"), "-o", str(work / "d.h5")]) == 2
    one_line(capsys.readouterr().err, 2, 2, "two outputs")
    assert main(["convert", str(src)]) == 2
    one_line(capsys.readouterr().err, 2, 2, "no output", "-o")
    assert sorted(x.name for x in work.iterdir()) == ["a.h5", "b.h5", "jets.root"]


def test_results_on_stdout_one_speed_no_bar_off_a_terminal(work: Path, job: Path) -> None:
    c = work / "c.h5"
    p = hepae_data("compress", "--model", job, work / "jets.root", "-o", c, "--chunk-size", "1000")
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""  # no progress bar into a pipe or a log
    lines = p.stdout.splitlines()
    assert lines[0].startswith(f"{c}: 3000 jets, 36.0 bits a jet (12 per latent value)")
    assert (p.stdout + p.stderr).count("jets/s") == 1
    assert "outside the training domain" in p.stdout
    p = hepae_data("decompress", c, "-o", work / "r.root")
    assert p.returncode == 0 and p.stderr == "" and p.stdout == f"{work / 'r.root'}: 3000 jets\n"


def test_help_describes_every_verb_and_option() -> None:
    parser = build_parser()
    text = parser.format_help()
    for verb in ("generate", "inspect", "convert", "compress", "decompress", "evaluate"):
        assert f"\n  {verb} " in text, verb
    sub = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    ev = sub["evaluate"].format_help()
    for opt in ("--tree", "--units", "--force", "--max-jets", "--key", "--branches"):
        assert opt in ev
    assert "the sample's energy units" in ev and "the ROOT tree to read" in ev
    for verb, parser_ in sub.items():
        for action in parser_._actions:
            if action.option_strings and action.dest not in ("help",):
                assert action.help, (verb, action.option_strings)
        assert parser_.description, verb


def test_jets_outside_the_training_domain_are_counted(work: Path, job: Path, cols) -> None:
    """A harder sample (pt and E x 3): compress and evaluate say how many jets lie beyond
    the training ranges, and evaluate's JSON keeps the counts."""
    hard = {v: c.copy() for v, c in cols.items()}
    hard["pt"] *= 3.0
    hard["E"] *= 3.0
    src = write_root(work / "hard.root", hard)
    m_path = work / "m.json"
    p = hepae_data("evaluate", "--model", job, src, "-o", m_path)
    assert p.returncode == 0, p.stderr
    m = json.loads(m_path.read_text())
    pt_max = float(m["train_max.pt"])
    expect_pt = int((hard["pt"] > pt_max).sum() + (hard["pt"] < m["train_min.pt"]).sum())
    assert m["outside_training.pt"] == expect_pt > 100
    assert m["outside_training"] >= m["outside_training.pt"]
    assert m["sample_max.pt"] == pytest.approx(float(hard["pt"].max()))
    assert m["latent_saturated"] > 0
    line = next(x for x in p.stdout.splitlines() if "outside the training domain" in x)
    assert f"{m['outside_training']} jets beyond the training ranges" in line
    assert f"{m['latent_saturated']} on a saturated latent code" in line
    # the job's own kind of jets: few outside
    p = hepae_data("evaluate", "--model", job, work / "jets.root", "-o", work / "own.json")
    own = json.loads((work / "own.json").read_text())
    assert own["outside_training"] < m["outside_training"] / 10
    p = hepae_data("compress", "--model", job, src, "-o", work / "c.h5")
    assert p.returncode == 0, p.stderr
    assert "outside the training domain: " in p.stdout
    n = int(p.stdout.split("outside the training domain: ")[1].split()[0])
    assert n > 0


# ------------------------------------------------------------------------ signals


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 4 M jets: long enough to be stopped in the middle even on a fast, idle machine
    (a convert of 2 M jets could end within the pause after its temporary file appears)."""
    with uproot.open(bundled_path("dijet_4d")) as f:
        cols = {v: f["jets"][v].array(library="np") for v in VARS}
    path = tmp_path_factory.mktemp("big") / "big.root"
    with uproot.recreate(path) as f:
        f.mktree("jets", {k: v.dtype for k, v in cols.items()})
        for _ in range(24):
            f["jets"].extend(cols)
    return path


def _stop_midway(argv: list, out_dir: Path, signum: int) -> subprocess.CompletedProcess:
    """Start ``hepae-data ARGV``; once its temporary output exists, send ``signum``."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "hepae_core.cli.data", *map(str, argv)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if any(p.name.startswith(".") for p in out_dir.iterdir()):
            break
        time.sleep(0.05)
    time.sleep(0.05)  # inside the writing, well before its end
    assert proc.poll() is None, "the command ended before it could be stopped"
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.parametrize(
    "cmd, signum",
    [
        ("compress", signal.SIGTERM),
        ("compress", signal.SIGINT),
        ("convert", signal.SIGTERM),
        ("convert-root", signal.SIGTERM),
        ("decompress", signal.SIGTERM),
    ],
)
def test_a_signal_leaves_no_temporary_file(cmd, signum, big: Path, job: Path, tmp_path: Path):
    """SIGTERM (what schedulers send) cleans up as Ctrl-C does: it left up to 60 MB."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    packed = big.parent / "big.h5"
    if cmd == "decompress" and not packed.exists():
        from hepae_core.codecs.codec import compress

        compress(job, big, packed)
    before = digest(big)
    argv = {
        "compress": ["compress", "--model", job, big, "-o", out_dir / "c.h5"],
        # Small chunks: the write takes seconds, not the fraction of one it takes at the
        # default size on a fast machine.
        "convert": ["convert", big, "-o", out_dir / "c.h5", "--chunk-size", "2000"],
        "convert-root": ["convert", big, "-o", out_dir / "c.root", "--chunk-size", "50000"],
        "decompress": ["decompress", packed, "-o", out_dir / "r.root"],
    }[cmd]
    p = _stop_midway(argv, out_dir, signum)
    name = "SIGTERM" if signum == signal.SIGTERM else "Ctrl-C"
    line = refused(p, 1, f"interrupted ({name})", "nothing written to")
    assert str(out_dir) in line
    assert list(out_dir.iterdir()) == []
    assert digest(big) == before


def test_messages_use_the_command_lines_words(work: Path, job: Path) -> None:
    """The readers speak of config keys (data.branches, data.source): hepae-data users
    gave options."""
    junk = work / "junk.root"
    junk.write_bytes(b"not a ROOT file")
    p = hepae_data("compress", "--model", job, junk, "-o", work / "c.h5")
    line = refused(p, 2, "junk.root", "is neither a ROOT file")
    assert "data.source" not in line
    two = write_root(work / "two.root", {"pt": np.ones(3), "eta": np.zeros(3)})
    p = hepae_data("compress", "--model", job, two, "-o", work / "c.h5")
    line = refused(p, 2, "two.root", "no branch 'phi'", "--branches")
    assert "data.branches" not in line and "data.container" not in line


def test_progress_bar_on_a_terminal_shows_no_second_speed(work: Path, job: Path) -> None:
    """On a terminal (a pseudo-terminal, 100 columns) the bar counts jets and time, is
    erased at the end, and the result line gives the one speed."""
    import fcntl
    import pty
    import struct
    import termios

    argv = [sys.executable, "-m", "hepae_core.cli.data", "compress", "--model", str(job),
            str(work / "jets.root"), "-o", str(work / "c.h5"), "--chunk-size", "500"]  # fmt: skip
    pid, fd = pty.fork()
    if pid == 0:  # the child: wait for the window size, then run the command
        time.sleep(0.3)
        os.execve(sys.executable, argv, ENV)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    out = b""
    while True:
        try:
            data = os.read(fd, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        out += data
    _, status = os.waitpid(pid, 0)
    text = out.decode()
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert "\rcompress: " in text and "jets [00:" in text  # the bar was there
    assert text.count("/s") == 1 and text.count("jets/s") == 1
    assert f"{work / 'c.h5'}: 3000 jets" in text


def test_evaluate_reads_a_mev_sample_with_units(work: Path, job: Path, cols, capsys) -> None:
    mev = {v: c * 1000.0 if v in ("pt", "E") else c for v, c in cols.items()}
    src = write_root(work / "mev.root", mev)
    assert main(["evaluate", "--model", str(job), str(work / "jets.root"), "-o",
                 str(work / "gev.json")]) == 0  # fmt: skip
    assert main(["evaluate", "--model", str(job), str(src), "--units", "MeV", "-o",
                 str(work / "mev.json")]) == 0  # fmt: skip
    gev = json.loads((work / "gev.json").read_text())
    m = json.loads((work / "mev.json").read_text())
    assert m["sample_units"] == "MeV" and m["sample_jets"] == 3000
    for v in VARS:
        assert m[f"ae.{v}.width"] == pytest.approx(gev[f"ae.{v}.width"], rel=1e-3)
    # float32 MeV values divided back differ in the last bit: jets on the training range's
    # edge (the sample holds training jets) may fall either side
    assert abs(m["outside_training"] - gev["outside_training"]) <= 10
    # read as GeV, the same file is far outside the training domain
    assert main(["evaluate", "--model", str(job), str(src)]) == 0
    out = capsys.readouterr().out
    n = int(out.split("outside the training domain: ")[-1].split()[0])
    assert n > 2000


def test_a_sigterm_lost_in_a_finaliser_still_stops_the_rename(tmp_path: Path) -> None:
    """Python drops an exception raised in a finaliser (a weakref callback in h5py, a
    __del__): convert once went on and wrote its output after SIGTERM. The signal is
    remembered, and the output is not renamed into place."""
    from hepae_core.cli.data_guard import Terminated, atomic_output, signals_interrupt

    class Finalised:
        def __del__(self) -> None:
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):  # the handler runs here, inside the finaliser
                pass

    out = tmp_path / "o.txt"
    went_on: list[bool] = []
    shown: list[object] = []  # what Python would print as "Exception ignored in ..."
    hook, sys.unraisablehook = sys.unraisablehook, shown.append
    try:
        with pytest.raises(Terminated), signals_interrupt(), atomic_output(out) as tmp:
            tmp.write_text("half")
            obj = Finalised()
            del obj
            went_on.append(True)
    finally:
        sys.unraisablehook = hook
    assert went_on == [True]  # the exception was lost in __del__ ...
    assert list(tmp_path.iterdir()) == []  # ... and still nothing was written
    assert shown == []  # and no traceback of it on the terminal
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
