"""The built wheel carries the templates, site profiles and the bundled sample."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_wheel_contains_package_data(tmp_path):
    pytest.importorskip("setuptools")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    (wheel,) = tmp_path.glob("hepae_gridsearch-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "hepae_core/data/dijet_4d.root" in names
    assert "sites/local.yaml" in names
    for package in ("hepae_core", "gridsearch", "results", "jobs_templates", "sites"):
        assert f"{package}/__init__.py" in names
    # Every template and profile in the tree is shipped.
    for sub, pattern in (("jobs_templates", "*.j2"), ("sites", "*.yaml")):
        for f in (REPO / sub).glob(pattern):
            assert f"{sub}/{f.name}" in names
    assert not any(n.startswith("tests/") for n in names)
