"""Hostile site directories and profiles: templates cannot run Python, template names
stay inside the template directories, every value reaching a submit description or a
job script is checked, and profile booleans are real booleans. Each case runs the real
command line and expects one ``error:`` line, exit 2, no traceback, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest_gs import cli, write

from gridsearch import render
from gridsearch.errors import GridsearchError


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture
def campaign(tmp_path, capsys):
    write(tmp_path / "s.yaml", "name: s\ngrid:\n  seed: [1, 2]\n")
    code, _, err = cli(capsys, "plan", tmp_path / "s.yaml", "-o", tmp_path / "c")
    assert code == 0, err
    return tmp_path / "c"


def _refused(capsys, campaign: Path, sites: Path, site: str, *needles: str) -> str:
    before = _tree(campaign.parent)
    code, out, err = cli(
        capsys, "submit", campaign, "--site", site, "--sites-dir", sites, "--dry-run"
    )
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    assert _tree(campaign.parent) == before  # nothing written, nothing changed
    return err


def test_a_site_template_cannot_run_python(tmp_path, capsys, campaign):
    sites = tmp_path / "sites"
    marker = tmp_path / "pwned"
    write(sites / "evil.yaml", "extends: slurm\ntemplate: evil.sh.j2\n")
    write(
        sites / "evil.sh.j2",
        '{% extends "slurm.sh.j2" %}{% block directives %}'
        f"{{{{ cycler.__init__.__globals__.os.system('touch {marker}') }}}}"
        "{% endblock %}",
    )
    _refused(capsys, campaign, sites, "evil", "template evil.sh.j2", "'template'")
    assert not marker.exists()


def test_a_site_template_may_extend_and_fill_blocks(tmp_path, capsys, campaign):
    sites = tmp_path / "sites"
    write(sites / "mine.yaml", "extends: slurm\ntemplate: mine.sh.j2\n")
    write(
        sites / "mine.sh.j2",
        '{% extends "slurm.sh.j2" %}{% block task %}{{ super() }}'
        "# mine: {{ request.extra | length }} extra, {{ site | q }}\n{% endblock %}",
    )
    code, out, err = cli(
        capsys, "submit", campaign, "--site", "mine", "--sites-dir", sites, "--dry-run"
    )
    assert code == 0, err
    script = next(campaign.rglob("job.sh"), None)
    text = script.read_text() if script else out
    assert "# mine: 0 extra, mine" in text, text[:2000]


@pytest.mark.parametrize("name", ["/etc/passwd", "../../../etc/passwd", "sub/x.j2", "..", ""])
def test_template_names_stay_in_the_template_directories(tmp_path, capsys, campaign, name):
    sites = tmp_path / "sites"
    write(sites / "evil.yaml", f"extends: slurm\ntemplate: {name!r}\n")
    err = _refused(capsys, campaign, sites, "evil", "'template'", "not a template file name")
    assert "root:" not in err


def test_script_template_name_is_checked_too(tmp_path, capsys, campaign):
    sites = tmp_path / "sites"
    write(sites / "evil.yaml", "extends: condor\nscript_template: /etc/passwd\n")
    _refused(capsys, campaign, sites, "evil", "'script_template'", "evil.yaml")


def test_packaged_loader_never_reads_outside_the_package():
    with pytest.raises(GridsearchError, match="not a template file name"):
        render.render("/etc/passwd", {})
    assert render._load("/etc/passwd") is None
    assert render._load("../sites/slurm.yaml") is None
    with pytest.raises(GridsearchError, match="no such template"):
        render.render("x.j2", {}, [Path("/nonexistent")])


def test_an_included_absolute_path_is_not_found(tmp_path):
    write(tmp_path / "inc.sh.j2", '{% include "/etc/passwd" %}')
    with pytest.raises(GridsearchError, match="no such template"):
        render.render("inc.sh.j2", {}, [tmp_path])


def test_condor_flavour_name_with_a_newline_is_refused(tmp_path, capsys, campaign):
    sites = tmp_path / "sites"
    marker = tmp_path / "touched"
    write(
        sites / "evil.yaml",
        "extends: condor\nflavours:\n"
        f'  "short\\"\\nexecutable = /bin/touch\\narguments = {marker}\\n#": "01:00:00"\n',
    )
    _refused(capsys, campaign, sites, "evil", "'flavours'", "walltime class name")
    assert not marker.exists()


def test_condor_extra_value_with_a_macro_is_refused(tmp_path, capsys, campaign):
    sites = tmp_path / "sites"
    write(sites / "evil.yaml", "extends: condor\nrequest:\n  extra: {requirements: '$ENV(HOME)'}\n")
    _refused(capsys, campaign, sites, "evil", "'request.extra.requirements'", "macros")


@pytest.mark.parametrize("value", ['"gres; touch pwned"', "gpus\\n", "true", "GRES"])
def test_gpu_request_must_be_gres_or_gpus(tmp_path, capsys, campaign, value):
    sites = tmp_path / "sites"
    write(sites / "evil.yaml", f"extends: slurm\ngpu_request: {value}\n")
    _refused(capsys, campaign, sites, "evil", "'gpu_request'", "gres")


@pytest.mark.parametrize("value", ["no", '"false"', "off", "0", '"true"'])
def test_module_purge_must_be_a_real_boolean(tmp_path, capsys, campaign, value):
    sites = tmp_path / "sites"
    write(sites / "evil.yaml", f"extends: slurm\nenv:\n  module_purge: {value}\n")
    _refused(capsys, campaign, sites, "evil", "'env.module_purge'", "true or false")


@pytest.mark.parametrize("purge", [True, False])
def test_module_purge_boolean_renders_as_meant(tmp_path, capsys, campaign, purge):
    sites = tmp_path / "sites"
    write(sites / "ok.yaml", f"extends: slurm\nenv:\n  module_purge: {str(purge).lower()}\n")
    code, out, err = cli(
        capsys, "submit", campaign, "--site", "ok", "--sites-dir", sites, "--dry-run"
    )
    assert code == 0, err
    text = "".join(p.read_text() for p in campaign.rglob("job.sh")) or out
    assert ("module purge" in text) is purge


@pytest.mark.parametrize("value", ['"x"', "0", "-2", "true", "1.5"])
def test_local_threads_must_be_a_positive_integer(tmp_path, capsys, campaign, value):
    sites = tmp_path / "sites"
    write(sites / "mylocal.yaml", f"extends: local\noptions: {{threads: {value}}}\n")
    _refused(capsys, campaign, sites, "mylocal", "'options.threads'", "positive integer")


def test_the_rung_script_takes_only_plain_scheduler_values(tmp_path, capsys, campaign):
    from gridsearch.backends.slurm import SlurmBackend
    from gridsearch.campaign import open_campaign
    from gridsearch.halving import rungs
    from gridsearch.sites import load_profile

    write(campaign / "space.yaml", "name: s\nhalving: {rungs: [2, 4]}\ngrid:\n  seed: [1, 2]\n")
    profile = load_profile("slurm")
    with pytest.raises(GridsearchError, match=r"'request\.account'"):
        rungs.queue_next(
            open_campaign(campaign), "slurm", profile, SlurmBackend(), ["1"],
            overrides={"account": "proj\n#SBATCH --wrap=touch pwned"}, dry_run=True,
        )  # fmt: skip
    assert not (campaign / "submit").exists()


@pytest.mark.parametrize(
    "body, key",
    [("request: [1, 2]", "'request'"), ("limits: 5", "'limits'"), ("required: 5", "'required'"),
     ("env: 5", "'env'"),
     ("request: {partition: a}\nlimits: {partitions: [a]}", "'limits.partitions'"),
     ("request: {partition: a}\nlimits: {partitions: {a: 5}}", "'limits.partitions'"),
     ("request: {gpus: 1}\nlimits: {max_gpus: x}", "'limits.max_gpus'"),
     ("request: {partition: a}\nlimits: {partitions: {a: {gpus_per_node: x}}}",
      "'limits.partitions.a.gpus_per_node'"),
     ("request: {gpu_type: a}\nlimits: {gpu_types: 5}", "'limits.gpu_types'")],
)  # fmt: skip
def test_profile_shapes_are_one_line(tmp_path, capsys, campaign, body, key):
    sites = tmp_path / "sites"
    write(sites / "odd.yaml", f"extends: slurm\n{body}\n")
    _refused(capsys, campaign, sites, "odd", key, "odd.yaml")


def test_a_template_cannot_change_the_values_it_is_given(tmp_path):
    write(tmp_path / "m.j2", "{{ request.update({'account': 'x'}) }}{{ request.account }}")
    with pytest.raises(GridsearchError, match="reaches outside"):
        render.render("m.j2", {"request": {"account": "proj"}}, [tmp_path])
